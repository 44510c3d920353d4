"""Files of a version: list and get any version; put and delete only while uncommitted."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from datakeep.domain.models import FileEntry, Version
from datakeep.domain.refs import parse_ref
from datakeep.errors import InvalidInput, VersionCommitted
from datakeep.services.context import Context
from datakeep.services.versions import check_sources

if TYPE_CHECKING:
    from datakeep.storage.content import ContentStore, TreeSummary


class FilesService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def _resolve(self, ref: str) -> tuple[Version, ContentStore]:
        version = self._ctx.catalog.resolve(self._ctx.team_id, parse_ref(ref, require_selector=True))
        dataset = self._ctx.catalog.get_dataset(self._ctx.team_id, version.dataset_id)
        return version, self._ctx.content(dataset)

    def list(self, ref: str, *, path: str = "/", recursive: bool = False) -> list[FileEntry]:
        version, content = self._resolve(ref)
        return content.list(version.root, path, recursive=recursive)

    def get(self, ref: str, *, target_path: str | Path, source_paths: Sequence[str] | None = None) -> int:
        """Download the whole version, or the named files and prefixes, into ``target_path``.

        Content already in the shared-storage cache (fetched by an earlier job) is copied from
        there, verified, instead of being read from the provider again.
        """
        from datakeep.cache.store import Cache

        version, content = self._resolve(ref)
        target = Path(target_path).expanduser()
        if target.exists() and not target.is_dir():
            raise InvalidInput(
                f"{target_path} already exists and is not a directory", hint="Pass a directory"
            )
        target.mkdir(parents=True, exist_ok=True)
        paths = None if not source_paths or list(source_paths) == ["/"] else list(source_paths)
        cache = Cache.from_settings(self._ctx.settings)

        def cached(digest: str) -> str | None:
            path = cache.blob_path(digest)
            return str(path) if path.is_file() else None

        return content.get(version.root, target, paths, local_blobs=cached)

    def _change(self, ref: str, make: Callable[[ContentStore, str | None], TreeSummary]) -> Version:
        """Apply a change to an uncommitted version, retrying if another writer moved it first."""
        for _attempt in range(50):
            version, content = self._resolve(ref)
            summary = make(content, version.root)
            if self._ctx.catalog.swap_root(
                self._ctx.team_id,
                version.dataset_id,
                version.version,
                expected_root=version.root,
                root=summary.root,
                file_count=summary.file_count,
                size=summary.size,
            ):
                return self._ctx.catalog.get_version(self._ctx.team_id, version.dataset_id, version.version)
        raise InvalidInput(f"Version {ref} keeps changing under this command", hint="Try again")

    def _check_writable(self, ref: str) -> None:
        """Refuse a committed version before any work (the catalog would refuse the swap anyway)."""
        version = self._ctx.catalog.resolve(self._ctx.team_id, parse_ref(ref, require_selector=True))
        if version.is_committed:
            raise VersionCommitted(
                f"Dataset version {version.ref} is committed and cannot be changed (files)",
                hint=f"Create a new version instead: datakeep datasets versions create --id={version.dataset_id}",
            )

    def put(self, ref: str, *, source_paths: Sequence[str | Path], target_path: str = "/") -> Version:
        if not source_paths:
            raise InvalidInput("Nothing to upload", hint="Pass at least one --source-path")
        sources = check_sources(source_paths)
        self._check_writable(ref)
        return self._change(
            ref, lambda content, root: content.snapshot(sources, target=target_path, base_root=root)
        )

    def link(self, ref: str, entries: Sequence[tuple[str, str, int]]) -> Version:
        """Lay files the storage provider already holds into an uncommitted version, by digest.

        ``entries`` are ``(path, digest, size)``. The server calls this for the remote client,
        which uploads only the content the provider lacks and links the rest: a file's bytes cross
        the network at most once per provider. Retries if another writer moves the version first.
        """
        self._check_writable(ref)
        items = list(entries)
        return self._change(ref, lambda content, root: content.graft(root, items))

    def delete(self, ref: str, *, paths: Sequence[str] | None = None, all: bool = False) -> Version:
        """Without paths, refuses unless ``all``: Gradient silently deleted every file."""
        if not paths and not all:
            raise InvalidInput(
                "No --path given: this would delete every file in the version",
                hint="Pass --path PATH (repeatable), or --all to really delete everything",
            )
        self._check_writable(ref)
        targets = list(paths) if paths else ["/"]
        return self._change(ref, lambda content, root: content.remove(root, targets))
