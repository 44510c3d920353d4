"""Gradient's legacy ``--dataset*`` experiment options, turned into dataset specifications.

Gradient grouped these options by position: the nth ``--datasetName`` belongs to the nth
dataset, wherever it sits on the command line, and the literal ``none`` keeps a slot empty.
Scripts written for it still exist, so the grouping, the ``none`` rule and the error texts
are kept as Gradient had them (reference §6); only the fix hints are ours.

Everything here is pure: no I/O except reading the YAML options file, so the rules can be
tested exhaustively and reused by the CLI, the library and the server.
"""

from __future__ import annotations

import enum
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import zip_longest
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from datakeep.domain.models import SECRET_MASK
from datakeep.errors import InvalidInput
from datakeep.sizes import parse_size

#: Dynamic volumes get this much room unless ``--datasetVolumeSize`` says otherwise.
DEFAULT_DYNAMIC_SIZE = "5Gi"

#: Longest first, so ``x.tar.gz`` is recognised as ``.tar.gz`` and not as ``.gz``.
ARCHIVE_EXTENSIONS: tuple[str, ...] = tuple(
    sorted(
        (".zip", ".tar", ".tar.bz2", ".tar.gz", ".tar.gz2", ".tar.xz", ".tbz", ".tbz2", ".tgz", ".txz"),
        key=len,
        reverse=True,
    )
)

#: The option names, without ``--``, in the order Gradient's help lists them, mapped to
#: the field of :class:`DatasetSpec` they fill. The YAML object form uses the right column
#: in lower camel case (``awsAccessKeyId``), which is the option name minus ``dataset``.
OPTION_FIELDS: dict[str, str] = {
    "datasetId": "id",
    "datasetUri": "uri",
    "datasetName": "name",
    "datasetAwsAccessKeyId": "aws_access_key_id",
    "datasetAwsSecretAccessKey": "aws_secret_access_key",
    "datasetAwsEndpoint": "aws_endpoint",
    "datasetVersionId": "version_id",
    "datasetEtag": "etag",
    "datasetVolumeKind": "volume_kind",
    "datasetVolumeSize": "volume_size",
}
#: Key of each option in the YAML ``datasets:`` object form (``datasetAwsEndpoint`` -> ``awsEndpoint``).
OBJECT_KEYS: dict[str, str] = {
    opt: opt[len("dataset")].lower() + opt[len("dataset") + 1 :] for opt in OPTION_FIELDS
}

_NONE = "none"
_BAD_NAME_CHARS = re.compile(r"[/\x00]")


class VolumeKind(enum.StrEnum):
    SHARED = "shared"
    DYNAMIC = "dynamic"


@dataclass(frozen=True)
class S3Location:
    """An ``s3://bucket/key`` URI split up. ``key`` is ``""`` for a whole bucket."""

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.key else f"s3://{self.bucket}"

    @property
    def looks_like_folder(self) -> bool:
        """True when the URI alone says it is a folder; ``s3://b/dir`` needs a look at the bucket."""
        return self.key == "" or self.key.endswith("/")


@dataclass(frozen=True)
class DatasetSpec:
    """One experiment dataset, after grouping, ``none`` handling and name derivation.

    ``uri`` and ``id`` are mutually exclusive sources: an S3 location, or a datakeep dataset
    reference (``ds…:version``). ``warnings`` carries advice found while parsing (ignored
    options) for the caller to show; parsing never prints.
    """

    name: str
    uri: str | None = None
    id: str | None = None
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_endpoint: str | None = None
    version_id: str | None = None
    etag: str | None = None
    volume_kind: VolumeKind = VolumeKind.SHARED
    volume_size: int | None = None
    warnings: tuple[str, ...] = ()

    @property
    def location(self) -> S3Location:
        if self.uri is None:
            raise InvalidInput(f"Dataset {self.name!r} has no S3 URI")
        return parse_s3_uri(self.uri)

    @property
    def dynamic_size(self) -> int:
        """The room a dynamic volume gets, in bytes."""
        return self.volume_size if self.volume_size is not None else parse_size(DEFAULT_DYNAMIC_SIZE)

    @property
    def has_explicit_keys(self) -> bool:
        return bool(self.aws_access_key_id or self.aws_secret_access_key)

    def as_folder(self) -> DatasetSpec:
        """The same dataset once the bucket said its URI is a folder: ETag and VersionId dropped."""
        notes = list(self.warnings)
        for label, value in (("versionId", self.version_id), ("etag", self.etag)):
            if value is not None:
                notes.append(
                    f"Dataset {self.name!r}: {self.uri} is a folder, so its {label} {value!r} is ignored"
                )
        return replace(self, version_id=None, etag=None, warnings=tuple(notes))

    def redacted(self) -> dict[str, Any]:
        """What a run record may keep: everything but the keys (the key ID is only marked as set)."""
        return {
            "name": self.name,
            "uri": self.uri,
            "id": self.id,
            "awsAccessKeyId": SECRET_MASK if self.aws_access_key_id else None,
            "awsSecretAccessKey": SECRET_MASK if self.aws_secret_access_key else None,
            "awsEndpoint": self.aws_endpoint,
            "versionId": self.version_id,
            "etag": self.etag,
            "volumeKind": self.volume_kind.value,
            "volumeSize": self.volume_size,
        }


def parse_s3_uri(uri: str) -> S3Location:
    """Split ``s3://bucket[/key]``; anything else is refused with the form that works."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise InvalidInput(
            f"Dataset URI {uri!r} is not an S3 URI",
            hint="Use s3://BUCKET, s3://BUCKET/FOLDER/ or s3://BUCKET/KEY "
            "(and --datasetAwsEndpoint for other S3-compatible stores)",
        )
    if parts.query or parts.fragment:
        raise InvalidInput(
            f"Dataset URI {uri!r} has a query or fragment", hint="Remove the part after ? or #"
        )
    return S3Location(bucket=parts.netloc, key=parts.path.lstrip("/"))


def archive_extension(filename: str) -> str | None:
    """The recognised archive extension ``filename`` ends with (case-insensitive), if any."""
    lower = filename.lower()
    return next((ext for ext in ARCHIVE_EXTENSIONS if lower.endswith(ext)), None)


def derive_name(uri: str) -> str:
    """Gradient's default name: the basename of the last path item, minus an archive extension.

    ``s3://b/mnist.zip`` gives ``mnist``, ``s3://b/a/dir/`` gives ``dir`` and ``s3://b`` gives
    ``b``. Other extensions stay (``data.csv`` keeps its name), since only an archive's
    contents, not the file, end up under ``/data/NAME``.
    """
    loc = parse_s3_uri(uri)
    base = posixpath.basename(loc.key.rstrip("/")) or loc.bucket
    ext = archive_extension(base)
    if ext and len(base) > len(ext):
        base = base[: -len(ext)]
    return base


def check_name(name: str) -> str:
    """A dataset name becomes a directory under ``/data``: it must be one path component."""
    if name in ("", ".", "..") or _BAD_NAME_CHARS.search(name) or name != name.strip():
        raise InvalidInput(
            f"Invalid dataset name {name!r}",
            hint="A name is mounted at /data/NAME: use one path component, without '/' or surrounding spaces",
        )
    return name


def _clean(value: Any) -> str | None:
    """Gradient's rule: the literal ``none`` (any case) is no value; YAML ``null`` is too."""
    if value is None:
        return None
    text = str(value)
    return None if text.strip().lower() == _NONE else text


def group_dataset_options(options: Mapping[str, Sequence[Any] | None]) -> list[DatasetSpec]:
    """Group repeated ``--dataset*`` options into datasets, by position.

    ``options`` maps option names (``datasetUri``…, see :data:`OPTION_FIELDS`) to the values
    in the order given. The dataset count is set by ``--datasetUri`` and ``--datasetId``;
    any other option given more often than that is Gradient's "Too many dataset parameter
    sets" error, because a shorter list would silently shift values onto the wrong dataset.
    """
    unknown = set(options) - set(OPTION_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown dataset option(s): {', '.join(sorted(unknown))}")
    lists = {opt: list(options.get(opt) or []) for opt in OPTION_FIELDS}
    count = max(len(lists["datasetUri"]), len(lists["datasetId"]))
    longest = max((len(v) for k, v in lists.items() if k not in ("datasetUri", "datasetId")), default=0)
    if longest > count:
        # The fix is part of the message: Gradient's text ends in "?", which the usual
        # "message. hint" form would follow with a stray full stop.
        raise InvalidInput(
            f"Too many dataset parameter sets ({longest}) for {count} dataset URIs. "
            "Forgot to add one more dataset URI? Give every dataset option once per --datasetUri, "
            "using 'none' for an empty slot"
        )
    rows = zip_longest(*(lists[opt] for opt in OPTION_FIELDS), fillvalue=None)
    fields = list(OPTION_FIELDS.values())
    specs = [_build_spec({f: _clean(v) for f, v in zip(fields, row, strict=True)}) for row in rows]
    seen: dict[str, int] = {}
    for position, spec in enumerate(specs, start=1):
        if spec.name in seen:
            raise InvalidInput(
                f"Datasets {seen[spec.name]} and {position} are both named {spec.name!r}",
                hint="Each dataset is mounted at /data/NAME: give one of them another --datasetName",
            )
        seen[spec.name] = position
    return specs


def _build_spec(values: dict[str, str | None]) -> DatasetSpec:
    uri, ref = values["uri"], values["id"]
    if uri is None and ref is None:
        raise InvalidInput(
            "id or uri key is required", hint="Give --datasetUri s3://… or --datasetId ID:VERSION"
        )
    if uri is not None and ref is not None:
        raise InvalidInput(
            f"Dataset {uri!r} has both a URI and an ID ({ref!r})",
            hint="Give one source per dataset; use 'none' to leave the other slot empty",
        )
    name = values["name"]
    if name is None:
        name = derive_name(uri) if uri is not None else _name_from_ref(ref or "")
    check_name(name)
    if uri is not None:
        parse_s3_uri(uri)

    kind_text = (values["volume_kind"] or VolumeKind.SHARED.value).lower()
    try:
        kind = VolumeKind(kind_text)
    except ValueError:
        raise InvalidInput(
            f"Invalid volume kind {values['volume_kind']!r} for dataset {name!r}",
            hint="Use --datasetVolumeKind dynamic or shared",
        ) from None
    size_text = values["volume_size"]
    size = parse_size(size_text) if size_text is not None else None
    notes: list[str] = []
    if size is not None and kind is VolumeKind.SHARED:
        notes.append(f"Dataset {name!r}: --datasetVolumeSize only applies to dynamic volumes; ignored")
    if size is not None and size <= 0:
        raise InvalidInput(f"Volume size for dataset {name!r} must be more than 0 bytes")

    key_id, secret = values["aws_access_key_id"], values["aws_secret_access_key"]
    if bool(key_id) != bool(secret):
        raise InvalidInput(
            f"Dataset {name!r} has only one of the AWS access key ID and secret access key",
            hint="Give both, or neither to use AWS_* environment variables, a profile, or anonymous access",
        )
    spec = DatasetSpec(
        name=name,
        uri=uri,
        id=ref,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_endpoint=values["aws_endpoint"],
        version_id=values["version_id"],
        etag=_normalize_etag(values["etag"]),
        volume_kind=kind,
        volume_size=size,
        warnings=tuple(notes),
    )
    if ref is not None and (spec.version_id or spec.etag or spec.aws_endpoint or spec.has_explicit_keys):
        notes.append(
            f"Dataset {name!r} comes from datakeep; S3 options (keys, endpoint, versionId, etag) are ignored"
        )
        spec = replace(
            spec,
            version_id=None,
            etag=None,
            aws_endpoint=None,
            aws_access_key_id=None,
            aws_secret_access_key=None,
            warnings=tuple(notes),
        )
    if uri is not None and spec.location.looks_like_folder and (spec.version_id or spec.etag):
        spec = spec.as_folder()
    return spec


def _name_from_ref(ref: str) -> str:
    """A datakeep reference ``dsID:version`` is named after its dataset ID."""
    return ref.split(":", 1)[0]


def _normalize_etag(etag: str | None) -> str | None:
    """ETags are shown quoted by S3 and unquoted by most tools; compare them unquoted."""
    return etag.strip().strip('"') if etag is not None else None


def dataset_options_from_yaml(data: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The dataset options in a Gradient ``--optionsFile``, as parallel lists.

    Two forms exist: parallel lists keyed by option name (``datasetUri: [a, b]``), or
    ``datasets:`` holding one object per dataset keyed by the option name without its
    ``dataset`` prefix (``uri``, ``awsAccessKeyId``…). A scalar counts as a one-item list.
    """
    result: dict[str, list[Any]] = {}
    for opt in OPTION_FIELDS:
        if opt in data and data[opt] is not None:
            value = data[opt]
            result[opt] = list(value) if isinstance(value, list) else [value]
    objects = data.get("datasets")
    if objects is None:
        return result
    if not isinstance(objects, list) or not all(isinstance(o, Mapping) for o in objects):
        raise InvalidInput(
            "'datasets' in the options file must be a list of objects", hint="See the options-file example in docs/experiments.md"
        )
    if result:
        raise InvalidInput(
            "The options file gives datasets both as 'datasets:' objects and as dataset* lists",
            hint="Use one form",
        )
    allowed = {key: opt for opt, key in OBJECT_KEYS.items()}
    for position, obj in enumerate(objects, start=1):
        unknown = set(obj) - set(allowed)
        if unknown:
            raise InvalidInput(
                f"Dataset {position} in the options file has unknown key(s): {', '.join(sorted(unknown))}",
                hint=f"Known keys: {', '.join(allowed)}",
            )
    for key, opt in allowed.items():
        if any(key in obj for obj in objects):
            result[opt] = [obj.get(key) for obj in objects]
    # Every object is one dataset, even one that only has an ``id``: pad the URI list so the
    # count check sees them all (a missing source is still reported as "id or uri key is required").
    if "datasetUri" not in result and "datasetId" not in result:
        result["datasetUri"] = [None] * len(objects)
    return result


def load_options_file(path: Path) -> dict[str, Any]:
    """Read a Gradient YAML options file (keys are option names without ``--``)."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InvalidInput(f"Cannot read options file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise InvalidInput(f"Options file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput(f"Options file {path} must hold a mapping of option names to values")
    return data
