"""The one repository over the catalog tables.

Every method takes the team it acts for: an ID that belongs to another team is answered
exactly like an ID that does not exist. Methods that change several rows do it in one
transaction, so an interrupted command leaves the catalog as it was before or as it is
after, never in between.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from datakeep.catalog import schema as t
from datakeep.catalog.database import create_catalog_engine, migrate
from datakeep.domain import ids
from datakeep.domain.models import Dataset, StorageProvider, Tag, Version, mask_config
from datakeep.domain.refs import LATEST, DatasetRef
from datakeep.errors import (
    AlreadyExists,
    Conflict,
    DatasetNotFound,
    InUse,
    NotFound,
    StorageProviderNotFound,
    TagNotFound,
    VersionCommitted,
    VersionNotFound,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class Catalog:
    """Typed access to the catalog database; migrates it on first use."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or create_catalog_engine(url)
        migrate(self.engine)
        self.ensure_team(t.LOCAL_TEAM_ID, "local")

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self.engine.begin() as connection:
            yield connection

    # TEAMS

    def ensure_team(self, team_id: str, name: str) -> None:
        with self.begin() as c:
            if c.execute(select(t.teams.c.id).where(t.teams.c.id == team_id)).first() is None:
                c.execute(insert(t.teams).values(id=team_id, name=name, created=utcnow()))

    # STORAGE PROVIDERS

    def _provider_from_row(self, row: Any, *, reveal: bool = False) -> StorageProvider:
        config = dict(row.config or {})
        return StorageProvider(
            id=row.id,
            name=row.name,
            type=row.type,
            config=config if reveal else mask_config(config),
            is_default=bool(row.is_default),
            created=_aware(row.created),
            modified=_aware(row.modified),
        )

    def insert_provider(
        self,
        team_id: str,
        *,
        name: str,
        type: str,
        config: dict[str, Any],
        is_default: bool = False,
        provider_id: str | None = None,
    ) -> StorageProvider:
        now = utcnow()
        new_id = provider_id or ids.new_storage_provider_id()
        with self.begin() as c:
            c.execute(
                insert(t.storage_providers).values(
                    id=new_id,
                    team_id=team_id,
                    name=name,
                    type=type,
                    config=config,
                    is_default=is_default,
                    created=now,
                    modified=now,
                )
            )
        return self.get_provider(team_id, new_id)

    def get_provider(self, team_id: str, provider_id: str, *, reveal: bool = False) -> StorageProvider:
        """``reveal`` returns the stored config (secrets still encrypted on a server), for internal use."""
        with self.begin() as c:
            row = c.execute(
                select(t.storage_providers).where(
                    t.storage_providers.c.id == provider_id, t.storage_providers.c.team_id == team_id
                )
            ).first()
        if row is None:
            raise StorageProviderNotFound(
                f"Storage provider not found: {provider_id}",
                hint="List them with: datakeep storageProviders list",
            )
        return self._provider_from_row(row, reveal=reveal)

    def default_provider(self, team_id: str) -> StorageProvider | None:
        with self.begin() as c:
            row = c.execute(
                select(t.storage_providers)
                .where(t.storage_providers.c.team_id == team_id, t.storage_providers.c.is_default.is_(True))
                .limit(1)
            ).first()
        return None if row is None else self._provider_from_row(row)

    def list_providers(
        self, team_id: str, *, limit: int | None = None, offset: int = 0
    ) -> list[StorageProvider]:
        query = (
            select(t.storage_providers)
            .where(t.storage_providers.c.team_id == team_id)
            .order_by(t.storage_providers.c.name, t.storage_providers.c.id)
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.begin() as c:
            return [self._provider_from_row(r) for r in c.execute(query)]

    def update_provider(
        self, team_id: str, provider_id: str, *, name: str | None = None, config: dict[str, Any] | None = None
    ) -> StorageProvider:
        """``config`` is the complete new config (the caller merges and encrypts)."""
        self.get_provider(team_id, provider_id)
        values: dict[str, Any] = {"modified": utcnow()}
        if name is not None:
            values["name"] = name
        if config is not None:
            values["config"] = config
        with self.begin() as c:
            c.execute(
                update(t.storage_providers).where(t.storage_providers.c.id == provider_id).values(**values)
            )
        return self.get_provider(team_id, provider_id)

    def delete_provider(self, team_id: str, provider_id: str) -> None:
        self.get_provider(team_id, provider_id)
        with self.begin() as c:
            used = c.execute(
                select(func.count())
                .select_from(t.datasets)
                .where(t.datasets.c.storage_provider_id == provider_id)
            ).scalar_one()
            if used:
                raise InUse(
                    f"Storage provider {provider_id} still holds {used} dataset(s)",
                    hint="Delete those datasets first (datakeep datasets list)",
                )
            c.execute(delete(t.blobs).where(t.blobs.c.storage_provider_id == provider_id))
            c.execute(delete(t.storage_providers).where(t.storage_providers.c.id == provider_id))

    # DATASETS

    def _dataset_query(self, team_id: str) -> Any:
        # The provider is read once per distinct ID by _dataset_from_row; the foreign key keeps it there.
        return select(t.datasets).where(t.datasets.c.team_id == team_id)

    def _dataset_from_row(self, c: Connection, row: Any, providers: dict[str, StorageProvider]) -> Dataset:
        provider = providers.get(row.storage_provider_id)
        if provider is None:
            sp_row = c.execute(
                select(t.storage_providers).where(t.storage_providers.c.id == row.storage_provider_id)
            ).one()
            provider = providers[row.storage_provider_id] = self._provider_from_row(sp_row)
        return Dataset(
            id=row.id,
            name=row.name,
            description=row.description,
            storage_provider=provider,
            created=_aware(row.created),
            modified=_aware(row.modified),
        )

    def insert_dataset(
        self, team_id: str, *, name: str, storage_provider_id: str, description: str | None = None
    ) -> Dataset:
        self.get_provider(team_id, storage_provider_id)
        now = utcnow()
        new_id = ids.new_dataset_id()
        try:
            with self.begin() as c:
                c.execute(
                    insert(t.datasets).values(
                        id=new_id,
                        team_id=team_id,
                        name=name,
                        description=description,
                        storage_provider_id=storage_provider_id,
                        created=now,
                        modified=now,
                    )
                )
        except SAIntegrityError as exc:
            self.get_provider(team_id, storage_provider_id)  # deleted meanwhile: say that instead
            raise AlreadyExists(
                f"A dataset named {name!r} already exists",
                hint="Choose another --name, or use the existing dataset (datakeep datasets list)",
            ) from exc
        return self.get_dataset(team_id, new_id)

    def get_dataset(self, team_id: str, dataset_id: str) -> Dataset:
        with self.begin() as c:
            row = c.execute(self._dataset_query(team_id).where(t.datasets.c.id == dataset_id)).first()
            if row is None:
                raise DatasetNotFound(
                    f"Dataset not found: {dataset_id}", hint="List datasets with: datakeep datasets list"
                )
            return self._dataset_from_row(c, row, {})

    def list_datasets(self, team_id: str, *, limit: int | None = None, offset: int = 0) -> list[Dataset]:
        query = self._dataset_query(team_id).order_by(t.datasets.c.name, t.datasets.c.id).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self.begin() as c:
            providers: dict[str, StorageProvider] = {}
            return [self._dataset_from_row(c, r, providers) for r in c.execute(query)]

    def update_dataset(
        self, team_id: str, dataset_id: str, *, name: str | None = None, description: str | None = None
    ) -> Dataset:
        self.get_dataset(team_id, dataset_id)
        values: dict[str, Any] = {"modified": utcnow()}
        if name is not None:
            values["name"] = name
        if description is not None:
            values["description"] = description
        try:
            with self.begin() as c:
                c.execute(update(t.datasets).where(t.datasets.c.id == dataset_id).values(**values))
        except SAIntegrityError as exc:
            raise AlreadyExists(
                f"A dataset named {name!r} already exists", hint="Choose another --name"
            ) from exc
        return self.get_dataset(team_id, dataset_id)

    def delete_dataset(self, team_id: str, dataset_id: str) -> None:
        """Removes the dataset, its versions and tags; the bytes stay until garbage collection."""
        self.get_dataset(team_id, dataset_id)
        with self.begin() as c:
            c.execute(delete(t.tags).where(t.tags.c.dataset_id == dataset_id))
            c.execute(delete(t.versions).where(t.versions.c.dataset_id == dataset_id))
            c.execute(delete(t.datasets).where(t.datasets.c.id == dataset_id))

    # VERSIONS

    def _tags_by_version(
        self, c: Connection, dataset_id: str, versions: Sequence[str] | None
    ) -> dict[str, list[str]]:
        query = select(t.tags.c.version, t.tags.c.name).where(t.tags.c.dataset_id == dataset_id)
        if versions is not None:
            query = query.where(t.tags.c.version.in_(list(versions)))
        result: dict[str, list[str]] = {}
        for version, name in c.execute(query.order_by(t.tags.c.name)):
            result.setdefault(version, []).append(name)
        return result

    @staticmethod
    def _version_from_row(row: Any, tags: list[str]) -> Version:
        return Version(
            dataset_id=row.dataset_id,
            version=row.version,
            message=row.message,
            is_committed=bool(row.is_committed),
            tags=tags,
            created=_aware(row.created),
            modified=_aware(row.modified),
            committed=_aware(row.committed),
            file_count=row.file_count,
            size=row.size,
            root=row.root,
            parent=row.parent,
            job_id=row.job_id,
        )

    def insert_version(
        self,
        team_id: str,
        dataset_id: str,
        *,
        message: str | None = None,
        root: str | None = None,
        file_count: int = 0,
        size: int = 0,
        parent: str | None = None,
        job_id: str | None = None,
        commit: bool = False,
    ) -> Version:
        """Create a version; with ``commit`` it is created committed, in the same transaction."""
        self.get_dataset(team_id, dataset_id)
        for _attempt in range(20):
            version_id = ids.new_version_id()
            now = utcnow()
            try:
                with self.begin() as c:
                    taken = c.execute(
                        select(t.tags.c.name).where(
                            t.tags.c.dataset_id == dataset_id, t.tags.c.name == version_id
                        )
                    ).first()
                    if taken:
                        continue
                    values: dict[str, Any] = dict(
                        dataset_id=dataset_id,
                        version=version_id,
                        message=message,
                        is_committed=False,
                        created=now,
                        modified=now,
                        root=root,
                        file_count=file_count,
                        size=size,
                        parent=parent,
                        job_id=job_id,
                    )
                    if commit:
                        values.update(
                            is_committed=True, committed=now, commit_seq=self._next_seq(c, dataset_id)
                        )
                    c.execute(insert(t.versions).values(**values))
                return self.get_version(team_id, dataset_id, version_id)
            except SAIntegrityError:
                # A clash of random IDs, or the dataset was deleted meanwhile: say the latter
                # as "not found" rather than retrying into a misleading "could not allocate".
                self.get_dataset(team_id, dataset_id)
                continue
        raise AlreadyExists(f"Could not allocate a version ID in {dataset_id}", hint="Try again")

    @staticmethod
    def _next_seq(c: Connection, dataset_id: str) -> int:
        current = c.execute(
            select(func.max(t.versions.c.commit_seq)).where(t.versions.c.dataset_id == dataset_id)
        ).scalar_one()
        return int(current or 0) + 1

    def get_version(self, team_id: str, dataset_id: str, version: str) -> Version:
        self.get_dataset(team_id, dataset_id)
        with self.begin() as c:
            row = c.execute(
                select(t.versions).where(
                    t.versions.c.dataset_id == dataset_id, t.versions.c.version == version
                )
            ).first()
            if row is None:
                raise VersionNotFound(
                    f"Version not found: {dataset_id}:{version}",
                    hint=f"List versions with: datakeep datasets versions list --id={dataset_id}",
                )
            return self._version_from_row(
                row, self._tags_by_version(c, dataset_id, [version]).get(version, [])
            )

    def latest_version(self, team_id: str, dataset_id: str) -> Version | None:
        """The most recently committed version: jobs make their output ``latest`` by committing it."""
        self.get_dataset(team_id, dataset_id)
        with self.begin() as c:
            row = c.execute(
                select(t.versions)
                .where(t.versions.c.dataset_id == dataset_id, t.versions.c.is_committed.is_(True))
                .order_by(t.versions.c.commit_seq.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            return self._version_from_row(
                row, self._tags_by_version(c, dataset_id, [row.version]).get(row.version, [])
            )

    def resolve(self, team_id: str, ref: DatasetRef) -> Version:
        """Turn ``ID``/``ID:latest``/``ID:VERSION``/``ID:TAG`` into a version. A version ID wins over a tag."""
        if ref.selector is None or ref.selector == LATEST:
            latest = self.latest_version(team_id, ref.dataset_id)
            if latest is None:
                raise VersionNotFound(
                    f"Dataset {ref.dataset_id} has no committed version yet, so '{ref.dataset_id}:latest' names nothing",
                    hint=f"Create one with: datakeep datasets versions create --id={ref.dataset_id} --source-path=DIR",
                )
            return latest
        with self.begin() as c:
            row = c.execute(
                select(t.versions.c.version).where(
                    t.versions.c.dataset_id == ref.dataset_id, t.versions.c.version == ref.selector
                )
            ).first()
            if row is None:
                row = c.execute(
                    select(t.tags.c.version).where(
                        t.tags.c.dataset_id == ref.dataset_id, t.tags.c.name == ref.selector
                    )
                ).first()
        if row is None:
            self.get_dataset(team_id, ref.dataset_id)
            raise VersionNotFound(
                f"No version or tag {ref.selector!r} in dataset {ref.dataset_id}",
                hint=f"See: datakeep datasets versions list --id={ref.dataset_id}",
            )
        return self.get_version(team_id, ref.dataset_id, row[0])

    def list_versions(
        self,
        team_id: str,
        dataset_id: str,
        *,
        is_committed: bool | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Version]:
        self.get_dataset(team_id, dataset_id)
        query = select(t.versions).where(t.versions.c.dataset_id == dataset_id)
        if is_committed is not None:
            query = query.where(t.versions.c.is_committed.is_(is_committed))
        query = query.order_by(t.versions.c.created.desc(), t.versions.c.version).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self.begin() as c:
            rows = list(c.execute(query))
            tags = self._tags_by_version(c, dataset_id, [r.version for r in rows])
            return [self._version_from_row(r, tags.get(r.version, [])) for r in rows]

    def _refuse_if_committed(self, version: Version, action: str) -> None:
        if version.is_committed:
            raise VersionCommitted(
                f"Dataset version {version.ref} is committed and cannot be changed ({action})",
                hint=f"Create a new version instead: datakeep datasets versions create --id={version.dataset_id}",
            )

    def update_version_message(self, team_id: str, dataset_id: str, version: str, message: str) -> Version:
        current = self.get_version(team_id, dataset_id, version)
        self._refuse_if_committed(current, "message")
        with self.begin() as c:
            changed = c.execute(
                update(t.versions)
                .where(
                    t.versions.c.dataset_id == dataset_id,
                    t.versions.c.version == version,
                    t.versions.c.is_committed.is_(False),
                )
                .values(message=message, modified=utcnow())
            ).rowcount
        if not changed:
            self._refuse_if_committed(self.get_version(team_id, dataset_id, version), "message")
        return self.get_version(team_id, dataset_id, version)

    def swap_root(
        self,
        team_id: str,
        dataset_id: str,
        version: str,
        *,
        expected_root: str | None,
        root: str | None,
        file_count: int,
        size: int,
    ) -> bool:
        """Point an uncommitted version at new content, if nobody else changed it meanwhile.

        Returns False when another writer moved the root first (the caller merges again).
        Raises :class:`VersionCommitted` if the version was committed.
        """
        current = self.get_version(team_id, dataset_id, version)
        self._refuse_if_committed(current, "files")
        root_matches = (
            t.versions.c.root.is_(None) if expected_root is None else t.versions.c.root == expected_root
        )
        with self.begin() as c:
            changed = c.execute(
                update(t.versions)
                .where(
                    t.versions.c.dataset_id == dataset_id,
                    t.versions.c.version == version,
                    t.versions.c.is_committed.is_(False),
                    root_matches,
                )
                .values(root=root, file_count=file_count, size=size, modified=utcnow())
            ).rowcount
        if not changed:
            self._refuse_if_committed(self.get_version(team_id, dataset_id, version), "files")
            return False
        return True

    def commit_version(self, team_id: str, dataset_id: str, version: str) -> Version:
        """Freeze the version and make it ``latest``; exactly once, even with racing committers."""
        current = self.get_version(team_id, dataset_id, version)
        self._refuse_if_committed(current, "commit")
        now = utcnow()
        with self.begin() as c:
            changed = c.execute(
                update(t.versions)
                .where(
                    t.versions.c.dataset_id == dataset_id,
                    t.versions.c.version == version,
                    t.versions.c.is_committed.is_(False),
                )
                .values(
                    is_committed=True, committed=now, modified=now, commit_seq=self._next_seq(c, dataset_id)
                )
            ).rowcount
        if not changed:
            self._refuse_if_committed(self.get_version(team_id, dataset_id, version), "commit")
        return self.get_version(team_id, dataset_id, version)

    def delete_version(self, team_id: str, dataset_id: str, version: str) -> None:
        """Removes the version and the tags on it; its bytes stay until garbage collection."""
        self.get_version(team_id, dataset_id, version)
        with self.begin() as c:
            c.execute(delete(t.tags).where(t.tags.c.dataset_id == dataset_id, t.tags.c.version == version))
            c.execute(
                delete(t.versions).where(
                    t.versions.c.dataset_id == dataset_id, t.versions.c.version == version
                )
            )

    # TAGS

    def set_tag(self, team_id: str, dataset_id: str, name: str, version: str) -> Tag:
        """Create or move a tag (idempotent, like Gradient's PUT)."""
        self.get_version(team_id, dataset_id, version)
        for _attempt in range(3):
            now = utcnow()
            try:
                with self.begin() as c:
                    moved = c.execute(
                        update(t.tags)
                        .where(t.tags.c.dataset_id == dataset_id, t.tags.c.name == name)
                        .values(version=version, modified=now)
                    ).rowcount
                    if not moved:
                        c.execute(
                            insert(t.tags).values(
                                dataset_id=dataset_id, name=name, version=version, created=now, modified=now
                            )
                        )
                return self.get_tag(team_id, dataset_id, name)
            except SAIntegrityError:
                # Another command created the same tag first (move it on the next pass), or
                # the version was deleted meanwhile (then this says "not found").
                self.get_version(team_id, dataset_id, version)
        raise Conflict(f"Tag {name!r} keeps changing under this command", hint="Try again")

    def get_tag(self, team_id: str, dataset_id: str, name: str) -> Tag:
        self.get_dataset(team_id, dataset_id)
        with self.begin() as c:
            row = c.execute(
                select(t.tags, t.versions.c.message)
                .join(
                    t.versions,
                    and_(
                        t.versions.c.dataset_id == t.tags.c.dataset_id,
                        t.versions.c.version == t.tags.c.version,
                    ),
                )
                .where(t.tags.c.dataset_id == dataset_id, t.tags.c.name == name)
            ).first()
        if row is None:
            raise TagNotFound(
                f"Tag not found: {dataset_id}:{name}",
                hint=f"List tags with: datakeep datasets tags list --id={dataset_id}",
            )
        return Tag(
            dataset_id=row.dataset_id,
            name=row.name,
            version=row.version,
            message=row.message,
            created=_aware(row.created),
            modified=_aware(row.modified),
        )

    def list_tags(
        self, team_id: str, dataset_id: str, *, limit: int | None = None, offset: int = 0
    ) -> list[Tag]:
        self.get_dataset(team_id, dataset_id)
        query = (
            select(t.tags, t.versions.c.message)
            .join(
                t.versions,
                and_(
                    t.versions.c.dataset_id == t.tags.c.dataset_id, t.versions.c.version == t.tags.c.version
                ),
            )
            .where(t.tags.c.dataset_id == dataset_id)
            .order_by(t.tags.c.name)
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.begin() as c:
            return [
                Tag(
                    dataset_id=r.dataset_id,
                    name=r.name,
                    version=r.version,
                    message=r.message,
                    created=_aware(r.created),
                    modified=_aware(r.modified),
                )
                for r in c.execute(query)
            ]

    def delete_tag(self, team_id: str, dataset_id: str, name: str) -> None:
        self.get_tag(team_id, dataset_id, name)
        with self.begin() as c:
            c.execute(delete(t.tags).where(t.tags.c.dataset_id == dataset_id, t.tags.c.name == name))

    # TEAMS AND API KEYS (the server's access control)

    def insert_team(self, name: str) -> dict[str, Any]:
        team_id = ids.new_team_id()
        try:
            with self.begin() as c:
                c.execute(insert(t.teams).values(id=team_id, name=name, created=utcnow()))
        except SAIntegrityError as exc:
            raise AlreadyExists(f"A team named {name!r} already exists", hint="Choose another name") from exc
        return self.get_team(team_id)

    def get_team(self, team_or_name: str) -> dict[str, Any]:
        with self.begin() as c:
            row = c.execute(
                select(t.teams).where((t.teams.c.id == team_or_name) | (t.teams.c.name == team_or_name))
            ).first()
        if row is None:
            raise NotFound(
                f"Team not found: {team_or_name}", hint="List teams with: datakeep admin teams list"
            )
        return {"id": row.id, "name": row.name, "created": _aware(row.created)}

    def list_teams(self) -> list[dict[str, Any]]:
        with self.begin() as c:
            rows = c.execute(select(t.teams).order_by(t.teams.c.name))
            return [{"id": r.id, "name": r.name, "created": _aware(r.created)} for r in rows]

    def insert_api_key(
        self, team_id: str, *, key_id: str, name: str | None, key_hash: str, prefix: str
    ) -> None:
        with self.begin() as c:
            c.execute(
                insert(t.api_keys).values(
                    id=key_id, team_id=team_id, name=name, key_hash=key_hash, prefix=prefix, created=utcnow()
                )
            )

    def list_api_keys(self, team_id: str | None = None) -> list[dict[str, Any]]:
        query = select(t.api_keys).order_by(t.api_keys.c.created)
        if team_id is not None:
            query = query.where(t.api_keys.c.team_id == team_id)
        with self.begin() as c:
            return [
                {
                    "id": r.id,
                    "team_id": r.team_id,
                    "name": r.name,
                    "prefix": r.prefix,
                    "created": _aware(r.created),
                    "revoked": _aware(r.revoked),
                    "last_used": _aware(r.last_used),
                }
                for r in c.execute(query)
            ]

    def revoke_api_key(self, key_id: str) -> None:
        with self.begin() as c:
            changed = c.execute(
                # An already revoked key keeps the time it was first revoked.
                update(t.api_keys)
                .where(t.api_keys.c.id == key_id)
                .values(revoked=func.coalesce(t.api_keys.c.revoked, utcnow()))
            ).rowcount
        if not changed:
            raise NotFound(f"API key not found: {key_id}", hint="List keys with: datakeep admin keys list")

    def team_for_key_hash(self, key_hash: str) -> str | None:
        """The team a live (not revoked) key belongs to, or None."""
        with self.begin() as c:
            row = c.execute(
                select(t.api_keys.c.id, t.api_keys.c.team_id).where(
                    t.api_keys.c.key_hash == key_hash, t.api_keys.c.revoked.is_(None)
                )
            ).first()
        return None if row is None else str(row.team_id)
