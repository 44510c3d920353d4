"""Dataset references: ``ID``, ``ID:latest``, ``ID:VERSION`` and ``ID:TAG``.

Parsing is purely syntactic; which version a reference names is decided by the catalog
(:meth:`datakeep.catalog.store.Catalog.resolve`), because a tag and a version share the
part after the colon. A tag may never look like a version ID, so the version always wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from datakeep.domain.ids import DATASET_ID, VERSION_ID
from datakeep.errors import InvalidReference, ReservedName

LATEST = "latest"
EXAMPLE_ID = "dsr8k5qzn401lb5"
EXAMPLE_VERSION = "klfoyy9"

#: Tags: a letter or digit, then letters, digits, ``.``, ``_`` or ``-``; at most 64 in all.
TAG_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


@dataclass(frozen=True)
class DatasetRef:
    """A parsed reference. ``selector`` is ``None`` for a bare dataset ID."""

    dataset_id: str
    selector: str | None = None

    def __str__(self) -> str:
        return self.dataset_id if self.selector is None else f"{self.dataset_id}:{self.selector}"


def parse_ref(text: str, *, option: str = "--id", require_selector: bool = False) -> DatasetRef:
    """Parse ``ID`` or ``ID:SELECTOR``; with ``require_selector``, the ``:part`` must be present.

    The error messages follow Gradient's client-side checks, with the fix added.
    """
    if not isinstance(text, str) or text == "":
        raise InvalidReference(
            f"The '{option}' option is missing the dataset ID",
            hint=f"Use e.g. {option}={EXAMPLE_ID}:{EXAMPLE_VERSION}",
        )
    if text != text.strip() or any(c.isspace() for c in text):
        raise InvalidReference(f"Dataset reference {text!r} contains white space", hint="Remove the spaces")
    if not text.isascii():
        raise InvalidReference(
            f"Dataset reference {text!r} contains non-ASCII characters",
            hint=f"Use e.g. {option}={EXAMPLE_ID}:{EXAMPLE_VERSION}",
        )
    parts = text.split(":")
    if len(parts) > 2:
        raise InvalidReference(
            f"Dataset reference {text!r} has more than one ':'",
            hint=f"Use ID, ID:VERSION, ID:TAG or ID:latest, e.g. {EXAMPLE_ID}:{EXAMPLE_VERSION}",
        )
    dataset_id = parts[0]
    if not dataset_id:
        raise InvalidReference(
            f"The '{option}' option is missing the dataset ID",
            hint=f"Use e.g. {option}={EXAMPLE_ID}:{EXAMPLE_VERSION}",
        )
    if not DATASET_ID.match(dataset_id):
        raise InvalidReference(
            f"{dataset_id!r} is not a dataset ID",
            hint=f"Dataset IDs look like {EXAMPLE_ID} (see: datakeep datasets list)",
        )
    if len(parts) == 1:
        if require_selector:
            raise InvalidReference(
                f"The '{option}' option is missing the version",
                hint=f"Use e.g. {option}={dataset_id}:{EXAMPLE_VERSION} or {dataset_id}:latest",
            )
        return DatasetRef(dataset_id)
    selector = parts[1]
    if not selector:
        raise InvalidReference(
            f"The '{option}' option is missing the version",
            hint=f"Use e.g. {option}={dataset_id}:{EXAMPLE_VERSION} or {dataset_id}:latest",
        )
    if selector != LATEST and not TAG_NAME.match(selector):
        raise InvalidReference(
            f"{selector!r} is neither a version ID nor a valid tag name",
            hint="Versions are 7 lowercase letters or digits; tags are letters, digits, '.', '_' or '-'",
        )
    return DatasetRef(dataset_id, selector)


def parse_bare_dataset_id(text: str, *, option: str = "--id") -> str:
    """A place where Gradient wants a dataset, not a version."""
    ref = parse_ref(text, option=option)
    if ref.selector is not None:
        raise InvalidReference(
            f"The '{option}' option should not have a version/tag",
            hint=f"Use the dataset ID alone, e.g. {option}={ref.dataset_id}",
        )
    return ref.dataset_id


def check_tag_name(name: str) -> str:
    """Refuse tag names that are reserved or that could be read as a version ID."""
    if name == LATEST:
        raise ReservedName(
            "The tag name 'latest' is reserved: it always means the newest committed version",
            hint="Choose another tag name",
        )
    if not TAG_NAME.match(name):
        raise InvalidReference(
            f"Invalid tag name {name!r}",
            hint="Tags start with a letter or digit and use letters, digits, '.', '_' or '-' (at most 64)",
        )
    if VERSION_ID.match(name):
        raise ReservedName(
            f"The tag name {name!r} could be read as a version ID, and versions win over tags",
            hint="Use a name that is not 7 lowercase letters/digits, e.g. add a '-' or a capital letter",
        )
    return name
