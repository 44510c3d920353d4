"""Datasets: named, versioned collections of files on one storage provider."""

from __future__ import annotations

from datakeep.domain import ids
from datakeep.domain.models import Dataset
from datakeep.domain.refs import parse_bare_dataset_id
from datakeep.errors import InvalidInput
from datakeep.services.context import Context


class DatasetsService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def list(self, *, limit: int | None = None, offset: int = 0) -> list[Dataset]:
        return self._ctx.catalog.list_datasets(self._ctx.team_id, limit=limit, offset=offset)

    def get(self, dataset_id: str) -> Dataset:
        return self._ctx.catalog.get_dataset(self._ctx.team_id, parse_bare_dataset_id(dataset_id))

    def create(
        self, *, name: str, storage_provider_id: str | None = None, description: str | None = None
    ) -> Dataset:
        """Without ``storage_provider_id`` the dataset goes to the team's default provider."""
        if not name or not name.strip():
            raise InvalidInput("A dataset needs a name", hint="Pass --name NAME")
        if storage_provider_id is None:
            storage_provider_id = self._ctx.ensure_default_provider().id
        else:
            ids.check_storage_provider_id(storage_provider_id, option="--storageProviderId")
        return self._ctx.catalog.insert_dataset(
            self._ctx.team_id, name=name, storage_provider_id=storage_provider_id, description=description
        )

    def update(self, dataset_id: str, *, name: str | None = None, description: str | None = None) -> Dataset:
        if name is not None and not name.strip():
            raise InvalidInput("A dataset name cannot be empty", hint="Pass a non-empty --name")
        return self._ctx.catalog.update_dataset(
            self._ctx.team_id, parse_bare_dataset_id(dataset_id), name=name, description=description
        )

    def delete(self, dataset_id: str) -> None:
        self._ctx.catalog.delete_dataset(self._ctx.team_id, parse_bare_dataset_id(dataset_id))
