"""``datakeep.Client``: the whole library behind one object.

>>> client = Client()                       # embedded: SQLite under ~/.datakeep, local storage
>>> ds = client.datasets.create(name="mnist")
>>> v = client.versions.create(ds.id, source_paths=["./some-data/"])
>>> client.files.list(v.ref)

:func:`connect` returns a remote client instead when ``DATAKEEP_API_URL`` is set; both have
the same attributes and methods.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from datakeep.catalog import Catalog
from datakeep.catalog.schema import LOCAL_TEAM_ID
from datakeep.config import Settings
from datakeep.services.context import Context
from datakeep.services.datasets import DatasetsService
from datakeep.services.files import FilesService
from datakeep.services.storage_providers import StorageProvidersService
from datakeep.services.tags import TagsService
from datakeep.services.versions import VersionsService

if TYPE_CHECKING:
    from datakeep.services.admin import AdminService
    from datakeep.services.cache import CacheService
    from datakeep.services.experiments import ExperimentsService
    from datakeep.services.jobs import JobsService


class Client:
    """The embedded client: the catalog and the storage are reached directly."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        team_id: str = LOCAL_TEAM_ID,
        progress: bool | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.catalog = catalog or Catalog(self.settings.catalog_url)
        if team_id != LOCAL_TEAM_ID:
            self.catalog.ensure_team(team_id, team_id)
        self.ctx = Context(settings=self.settings, catalog=self.catalog, team_id=team_id, progress=progress)
        self.ctx.ensure_default_provider()
        self.storage_providers = StorageProvidersService(self.ctx)
        self.datasets = DatasetsService(self.ctx)
        self.versions = VersionsService(self.ctx)
        self.tags = TagsService(self.ctx)
        self.files = FilesService(self.ctx)

    # Services of the later layers load on first use, so a plain `datasets list` stays fast.

    @cached_property
    def jobs(self) -> JobsService:
        from datakeep.services.jobs import JobsService

        return JobsService(self.ctx)

    @cached_property
    def experiments(self) -> ExperimentsService:
        from datakeep.services.experiments import ExperimentsService

        return ExperimentsService(self.ctx)

    @cached_property
    def cache(self) -> CacheService:
        from datakeep.services.cache import CacheService

        return CacheService(self.ctx)

    @cached_property
    def admin(self) -> AdminService:
        from datakeep.services.admin import AdminService

        return AdminService(self.ctx)

    def for_team(self, team_id: str) -> Client:
        """The same catalog, acting for another team (the server builds one per request)."""
        return Client(self.settings, team_id=team_id, progress=False, catalog=self.catalog)

    def close(self) -> None:
        self.catalog.close()


def connect(settings: Settings | None = None, **kwargs: Any) -> Any:
    """An embedded :class:`Client`, or a remote one when ``DATAKEEP_API_URL`` is set."""
    settings = settings or Settings.from_env()
    if settings.is_remote:
        from datakeep.remote.client import RemoteClient

        return RemoteClient(settings, **kwargs)
    return Client(settings, **kwargs)
