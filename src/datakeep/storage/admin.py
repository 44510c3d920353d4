"""Recovery and checking: rebuild the catalog from a provider alone, and fsck a provider's versions.

Both rely only on what the engine writes to the provider: self-describing packs (their footers
say which digest is where), whole blobs named by digest, tree packs, and one JSON record per
committed version (``versions/<dataset>/<version>.json``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from datakeep.catalog import schema as t
from datakeep.catalog.store import Catalog, utcnow
from datakeep.config import Settings
from datakeep.errors import DatakeepError, InvalidInput
from datakeep.providers.base import Provider
from datakeep.storage import manifest, objects
from datakeep.storage.hashing import EMPTY_DIGEST, digest_bytes, digest_file
from datakeep.storage.index import Index, Location, insert_ignore

_WHOLE_READ_MAX = 64 * 1024 * 1024


@dataclass
class RebuildReport:
    packs: int = 0
    blobs: int = 0
    trees: int = 0
    datasets: int = 0
    versions: int = 0
    skipped_versions: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class FsckReport:
    versions: int = 0
    files: int = 0
    objects: int = 0
    bytes_verified: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _read_pack_index(provider: Provider, key: str, size: int) -> list[objects.PackEntry]:
    tail = provider.read(key, size - objects.TRAILER_SIZE, objects.TRAILER_SIZE)
    length = objects.parse_trailer(tail)
    raw = provider.read(key, size - objects.TRAILER_SIZE - length, length)
    return objects.parse_index(raw)


def rebuild_catalog(
    catalog: Catalog,
    provider: Provider,
    provider_id: str,
    *,
    team_id: str = t.LOCAL_TEAM_ID,
    log: Callable[[str], None] = lambda _msg: None,
) -> RebuildReport:
    """Recreate the blobs, trees, datasets and committed versions the provider holds.

    Idempotent: rows that exist are left alone, so it can also repair a partly damaged catalog.
    Tags are not recorded on storage (they move); ``latest`` follows from commit order.
    """
    report = RebuildReport()
    index = Index(catalog, provider_id)
    locations: list[Location] = []
    for info in provider.list(objects.PACKS):
        if not info.key.endswith(".pack"):
            continue
        try:
            entries = _read_pack_index(provider, info.key, info.size)
        except (OSError, ValueError) as exc:
            report.problems.append(f"unreadable pack {info.key}: {exc}")
            continue
        report.packs += 1
        locations.extend(Location(e.digest, info.key, e.offset, e.size) for e in entries)
    for info in provider.list(objects.BLOBS):
        digest = objects.digest_from_blob_key(info.key)
        if digest is not None:
            locations.append(Location(digest, info.key, 0, info.size))
    trees: dict[str, bytes] = {}
    for info in provider.list(objects.TREES):
        if not info.key.endswith(".pack"):
            continue
        try:
            body = provider.read(info.key)
            entries = objects.parse_pack(body)
        except (OSError, ValueError) as exc:
            report.problems.append(f"unreadable tree pack {info.key}: {exc}")
            continue
        report.packs += 1
        for e in entries:
            data = body[e.offset : e.offset + e.size]
            if digest_bytes(data) != e.digest:
                report.problems.append(f"corrupt manifest node {e.digest} in {info.key}")
                continue
            trees[e.digest] = data
            locations.append(Location(e.digest, info.key, e.offset, e.size))
    index.add_blobs(locations)
    index.add_trees(trees)
    report.blobs = len(locations) - len(trees)
    report.trees = len(trees)
    log(f"Indexed {report.blobs} blobs and {report.trees} manifest nodes from {report.packs} packs")

    records: list[dict[str, Any]] = []
    for info in provider.list(objects.VERSIONS):
        if not info.key.endswith(".json"):
            continue
        try:
            records.append(json.loads(provider.read(info.key)))
        except (OSError, ValueError) as exc:
            report.problems.append(f"unreadable version record {info.key}: {exc}")
    records.sort(key=lambda r: (str(r["version"].get("committed") or ""), r["version"]["version"]))
    for record in records:
        _restore_version(catalog, index, provider_id, team_id, record, report)
    return report


def _parse_time(value: str | None) -> datetime:
    return datetime.fromisoformat(value) if value else utcnow()


def _restore_version(
    catalog: Catalog,
    index: Index,
    provider_id: str,
    team_id: str,
    record: dict[str, Any],
    report: RebuildReport,
) -> None:
    ds = record["dataset"]
    ver = record["version"]
    root = ver.get("root")
    if root and not index.get_trees([root]):
        report.problems.append(
            f"{ds['id']}:{ver['version']}: its manifest root {root} is not on the provider"
        )
        report.skipped_versions += 1
        return
    with catalog.begin() as c:
        if c.execute(select(t.datasets.c.id).where(t.datasets.c.id == ds["id"])).first() is None:
            name = ds.get("name") or ds["id"]
            taken = c.execute(
                select(t.datasets.c.id).where(t.datasets.c.team_id == team_id, t.datasets.c.name == name)
            ).first()
            if taken is not None:
                name = f"{name}-restored-{ds['id']}"
            now = utcnow()
            c.execute(
                t.datasets.insert().values(
                    id=ds["id"],
                    team_id=team_id,
                    name=name,
                    description=ds.get("description"),
                    storage_provider_id=provider_id,
                    created=now,
                    modified=now,
                )
            )
            report.datasets += 1
        exists = c.execute(
            select(t.versions.c.version).where(
                t.versions.c.dataset_id == ds["id"], t.versions.c.version == ver["version"]
            )
        ).first()
        if exists is not None:
            return
        seq = c.execute(
            select(func.max(t.versions.c.commit_seq)).where(t.versions.c.dataset_id == ds["id"])
        ).scalar_one()
        insert_ignore(
            c,
            t.versions,
            [
                {
                    "dataset_id": ds["id"],
                    "version": ver["version"],
                    "message": ver.get("message"),
                    "is_committed": True,
                    "created": _parse_time(ver.get("created")),
                    "modified": _parse_time(ver.get("modified")),
                    "committed": _parse_time(ver.get("committed")),
                    "commit_seq": int(seq or 0) + 1,
                    "root": root,
                    "file_count": int(ver.get("file_count") or 0),
                    "size": int(ver.get("size") or 0),
                    "parent": ver.get("parent"),
                    "job_id": ver.get("job_id"),
                }
            ],
        )
        report.versions += 1


def fsck(
    catalog: Catalog,
    provider: Provider,
    provider_id: str,
    *,
    verify_content: bool = True,
    log: Callable[[str], None] = lambda _msg: None,
) -> FsckReport:
    """Check that every object the committed versions on this provider need exists and matches its digest."""
    from datakeep.storage.content import ContentStore

    report = FsckReport()
    index = Index(catalog, provider_id)
    # Only its tree loading is used: the settings (stat cache location) never come into play.
    loader = ContentStore(catalog, provider, provider_id, Settings(), progress=False)
    with catalog.begin() as c:
        rows = c.execute(
            select(t.versions.c.dataset_id, t.versions.c.version, t.versions.c.root)
            .join(t.datasets, t.datasets.c.id == t.versions.c.dataset_id)
            .where(t.datasets.c.storage_provider_id == provider_id, t.versions.c.is_committed.is_(True))
            .order_by(t.versions.c.dataset_id, t.versions.c.commit_seq)
        ).all()
    needed: dict[str, str] = {}  # digest -> first "ds:ver path" needing it
    for dataset_id, version, root in rows:
        report.versions += 1
        if not root:
            continue
        ref = f"{dataset_id}:{version}"
        try:
            for tree in manifest.walk_trees(loader.load_node, root):
                needed.setdefault(tree, f"{ref} (manifest)")
            for path, entry in manifest.walk(loader.load_node, root):
                report.files += 1
                needed.setdefault(entry.digest, f"{ref} {path}")
        except (DatakeepError, OSError, ValueError) as exc:
            report.problems.append(f"{ref}: manifest unreadable: {exc}")
    needed.pop(EMPTY_DIGEST, None)
    located = index.locate(needed)
    by_key: dict[str, list[Location]] = {}
    for digest, what in needed.items():
        loc = located.get(digest)
        if loc is None:
            report.problems.append(f"{what}: content {digest} is not recorded on this provider")
        else:
            by_key.setdefault(loc.key, []).append(loc)
    for key, locs in sorted(by_key.items()):
        report.objects += 1
        try:
            info = provider.stat(key)
        except FileNotFoundError:
            for loc in locs:
                report.problems.append(f"{needed[loc.digest]}: object {key} is missing")
            continue
        except OSError as exc:
            report.problems.append(f"object {key}: {exc}")
            continue
        end = max(loc.offset + loc.size for loc in locs)
        if info.size < end:
            report.problems.append(f"object {key} is truncated ({info.size} bytes, needs {end})")
            continue
        if verify_content:
            _verify_object(provider, key, info.size, locs, needed, report)
    log(f"Checked {report.versions} versions, {report.files} files, {report.objects} objects")
    return report


def _verify_object(
    provider: Provider, key: str, size: int, locs: list[Location], needed: dict[str, str], report: FsckReport
) -> None:
    try:
        if len(locs) == 1 and locs[0].whole and size > _WHOLE_READ_MAX:
            with tempfile.TemporaryDirectory(prefix="dk-fsck-") as tmp:
                path = Path(tmp) / "blob"
                provider.download(key, path)
                actual = {locs[0].digest: digest_file(path)}
                report.bytes_verified += os.path.getsize(path)
        else:
            data = provider.read(key)
            report.bytes_verified += len(data)
            actual = {loc.digest: digest_bytes(data[loc.offset : loc.offset + loc.size]) for loc in locs}
    except OSError as exc:
        report.problems.append(f"object {key} unreadable: {exc}")
        return
    for loc in locs:
        if actual[loc.digest] != loc.digest:
            report.problems.append(f"{needed[loc.digest]}: bytes in {key} do not match digest {loc.digest}")


@dataclass
class GcReport:
    live_digests: int = 0
    objects: list[str] = field(default_factory=list)  # garbage object keys (deleted unless dry run)
    bytes: int = 0
    forgotten_rows: int = 0
    dry_run: bool = True


def gc(
    catalog: Catalog,
    provider: Provider,
    provider_id: str,
    *,
    older_than: timedelta = timedelta(days=1),
    dry_run: bool = True,
) -> GcReport:
    """Delete the objects no version (committed or not) of any dataset on this provider needs.

    Only whole objects go: a pack is deleted when none of its entries is live (packs are never
    rewritten). Objects younger than ``older_than`` are kept, so a create running now keeps what it
    has stored but not yet pointed a version at. Run it when no create is running: a create that
    found a blob in the index just before gc removed it would name bytes that are gone (``fsck``
    would tell). The index rows go before the objects, so an interrupted gc never leaves a row
    pointing at a deleted object.
    """
    from datakeep.storage.content import ContentStore

    report = GcReport(dry_run=dry_run)
    with catalog.begin() as c:
        present = {(d, v) for d, v in c.execute(select(t.versions.c.dataset_id, t.versions.c.version))}
    unknown = []
    for info in provider.list(objects.VERSIONS):
        dataset_id, _, name = info.key[len(objects.VERSIONS) :].partition("/")
        if name.endswith(".json") and (dataset_id, name[: -len(".json")]) not in present:
            unknown.append(f"{dataset_id}:{name[: -len('.json')]}")
    if unknown:
        # The catalog does not know versions the provider recorded: it may have been lost or be another
        # one. Collecting now would delete their content.
        raise InvalidInput(
            f"The provider holds {len(unknown)} committed version(s) the catalog does not know "
            f"(for example {unknown[0]})",
            hint="Run: datakeep admin rebuild-catalog first (versions deleted with datakeep remove their record)",
        )
    index = Index(catalog, provider_id)
    loader = ContentStore(catalog, provider, provider_id, Settings(), progress=False)
    with catalog.begin() as c:
        roots = [
            r[0]
            for r in c.execute(
                select(t.versions.c.root)
                .join(t.datasets, t.datasets.c.id == t.versions.c.dataset_id)
                .where(t.datasets.c.storage_provider_id == provider_id, t.versions.c.root.is_not(None))
            )
        ]
    live: set[str] = set()
    for root in set(roots):
        for tree in manifest.walk_trees(loader.load_node, root):
            live.add(tree)
            live.update(e.digest for e in loader.load_node(tree) if not e.is_dir)
    report.live_digests = len(live)
    cutoff = utcnow() - older_than
    by_key: dict[str, list[Location]] = {}
    for loc in index.all_blobs():
        by_key.setdefault(loc.key, []).append(loc)
    with catalog.begin() as c:
        young = {
            k
            for (k,) in c.execute(
                select(t.blobs.c.key).where(
                    t.blobs.c.storage_provider_id == provider_id, t.blobs.c.created >= cutoff
                )
            )
        }
    garbage = [
        k for k, locs in by_key.items() if k not in young and not any(loc.digest in live for loc in locs)
    ]
    # Objects no row names at all: left by a create killed between storing them and indexing them.
    # The listing also gives every object's size, so counting the garbage needs no request per object.
    sizes: dict[str, int] = {}
    for folder in (objects.PACKS, objects.BLOBS, objects.TREES):
        for info in provider.list(folder):
            if info.is_dir:
                continue
            sizes[info.key] = info.size
            if info.key in by_key:
                continue
            modified = info.modified
            if modified is not None and modified.tzinfo is None:
                modified = modified.replace(tzinfo=UTC)
            if modified is not None and modified < cutoff:
                garbage.append(info.key)
    for key in sorted(garbage):
        report.objects.append(key)
        report.bytes += sizes.get(key, 0)  # 0: indexed, but no longer on the provider
    if dry_run:
        return report
    doomed = [loc.digest for key in garbage for loc in by_key.get(key, [])]
    index.forget_blobs(doomed)
    report.forgotten_rows = len(doomed)
    for key in report.objects:
        provider.delete(key)
    return report
