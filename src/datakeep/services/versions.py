"""Dataset versions: created empty or from local folders, changed while uncommitted, then frozen."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from datakeep.domain.models import Change, Version
from datakeep.domain.refs import parse_bare_dataset_id, parse_ref
from datakeep.errors import InvalidInput, VersionCommitted
from datakeep.services.context import Context
from datakeep.services.datasets import check_text

if TYPE_CHECKING:
    from datakeep.storage.content import ContentStore

logger = logging.getLogger(__name__)


def check_sources(source_paths: Sequence[str | Path]) -> list[str]:
    """Check every source exists before anything is uploaded (Gradient's message).

    Sources stay strings: ``d/`` (contents of d) and ``d`` (d itself) differ, and ``Path``
    would drop the trailing separator.
    """
    checked = []
    for source in source_paths:
        raw = os.fspath(source)
        # lexists: a broken link is "found" here and named precisely by the storage scan.
        if not os.path.lexists(os.path.expanduser(raw)):
            raise InvalidInput(f"Source path not found: {raw}", hint="Check the --source-path value")
        checked.append(os.path.expanduser(raw))
    return checked


def _record(content: ContentStore, version: Version) -> None:
    """Write the recovery record of a version the catalog has already committed.

    The commit has happened by then, so failing the command would report an error for a version
    that exists and is usable; the record only serves ``admin rebuild-catalog``. Warn instead.
    """
    try:
        content.write_version_record(version)
    except OSError as exc:
        logger.warning(
            "Committed %s, but could not write its recovery record to storage (%s); "
            "the version is usable, the record only serves rebuilding the catalog from storage",
            version.ref,
            exc,
        )


def forget_records(content: ContentStore, dataset_id: str, version: str | None = None) -> None:
    """Remove the recovery records of a deleted version (or of every version of a deleted dataset).

    The catalog row is gone by then: a stale record would let ``admin rebuild-catalog`` bring the
    version back and stops ``admin gc`` (it cannot tell a deleted version from a lost catalog).
    A failure is a warning, for the same reason as in :func:`_record`; ``admin gc`` names what is left.
    """
    try:
        content.delete_version_records(dataset_id, version)
    except OSError as exc:
        logger.warning(
            "Deleted %s from the catalog, but could not remove its recovery record from storage (%s)",
            f"{dataset_id}:{version}" if version else dataset_id,
            exc,
        )


class VersionsService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def list(
        self, dataset_id: str, *, is_committed: bool | None = True, limit: int | None = None, offset: int = 0
    ) -> list[Version]:
        return self._ctx.catalog.list_versions(
            self._ctx.team_id,
            parse_bare_dataset_id(dataset_id),
            is_committed=is_committed,
            limit=limit,
            offset=offset,
        )

    def get(self, ref: str) -> Version:
        """Resolve ``ID:VERSION``, ``ID:TAG``, ``ID:latest`` or a bare ID (= latest)."""
        return self._ctx.catalog.resolve(self._ctx.team_id, parse_ref(ref))

    def literal(self, ref: str) -> Version:
        """The version named exactly (``ID:VERSION``); tags also resolve, ``latest`` too."""
        return self._ctx.catalog.resolve(self._ctx.team_id, parse_ref(ref, require_selector=True))

    def create(
        self,
        dataset_id: str,
        *,
        message: str | None = None,
        source_paths: Sequence[str | Path] = (),
        job_id: str | None = None,
        commit: bool = True,
    ) -> Version:
        """Create a version. With sources, their content is uploaded first and the version is
        inserted (committed unless ``commit=False``) in one catalog transaction at the end, so an
        interrupted create leaves no version behind and a rerun skips what was uploaded."""
        dataset_id = parse_bare_dataset_id(dataset_id)
        check_text(message, what="message", option="--message")
        dataset = self._ctx.catalog.get_dataset(self._ctx.team_id, dataset_id)
        if not source_paths:
            return self._ctx.catalog.insert_version(
                self._ctx.team_id, dataset_id, message=message, job_id=job_id
            )
        sources = check_sources(source_paths)
        parent = self._ctx.catalog.latest_version(self._ctx.team_id, dataset_id)
        content = self._ctx.content(dataset)
        summary = content.snapshot(sources, target="/", hint_root=parent.root if parent else None)
        version = self._ctx.catalog.insert_version(
            self._ctx.team_id,
            dataset_id,
            message=message,
            root=summary.root,
            file_count=summary.file_count,
            size=summary.size,
            parent=parent.version if parent else None,
            job_id=job_id,
            commit=commit,
        )
        if commit:
            _record(content, version)
        return version

    def update(self, ref: str, *, message: str) -> Version:
        check_text(message, what="message", option="--message")
        version = self.literal(ref)
        return self._ctx.catalog.update_version_message(
            self._ctx.team_id, version.dataset_id, version.version, message
        )

    def commit(self, ref: str) -> Version:
        """Freeze a version for good. Raises :class:`VersionCommitted` if it already is."""
        version = self.literal(ref)
        if version.is_committed:
            raise VersionCommitted(f"Dataset version {version.ref} is already committed")
        committed = self._ctx.catalog.commit_version(self._ctx.team_id, version.dataset_id, version.version)
        dataset = self._ctx.catalog.get_dataset(self._ctx.team_id, version.dataset_id)
        _record(self._ctx.content(dataset), committed)
        return committed

    def delete(self, ref: str) -> Version:
        version = self.literal(ref)
        self._ctx.catalog.delete_version(self._ctx.team_id, version.dataset_id, version.version)
        dataset = self._ctx.catalog.get_dataset(self._ctx.team_id, version.dataset_id)
        forget_records(self._ctx.content(dataset), version.dataset_id, version.version)
        return version

    def diff(self, old_ref: str, new_ref: str) -> Iterator[Change]:
        """Added, removed and modified files between two versions; equal subtrees are skipped."""
        old = self.get(old_ref)
        new = self.get(new_ref)
        dataset = self._ctx.catalog.get_dataset(self._ctx.team_id, new.dataset_id)
        return self._ctx.content(dataset).diff(old.root, new.root)
