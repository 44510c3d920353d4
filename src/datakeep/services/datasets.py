"""Datasets: named, versioned collections of files on one storage provider."""

from __future__ import annotations

import unicodedata

from datakeep.domain import ids
from datakeep.domain.models import Dataset
from datakeep.domain.refs import parse_bare_dataset_id
from datakeep.errors import InvalidInput
from datakeep.services.context import Context

#: The catalog's column width for names (datasets and storage providers).
MAX_NAME = 200


def check_name(name: str | None, *, what: str, option: str = "--name") -> str:
    """Refuse names every catalog cannot store alike, or that would garble tables.

    PostgreSQL rejects a name longer than the column while SQLite stores it, so the limit is
    checked here, the same for both; control characters (a newline) would break the tables.
    """
    if name is None or not name.strip():
        raise InvalidInput(f"A {what} needs a name", hint=f"Pass {option} NAME")
    if len(name) > MAX_NAME:
        raise InvalidInput(
            f"A {what} name can be at most {MAX_NAME} characters (this one has {len(name)})",
            hint=f"Pass a shorter {option}",
        )
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise InvalidInput(
            f"A {what} name cannot contain control characters such as newlines or tabs",
            hint=f"Pass a {option} of printable characters",
        )
    return name


def check_text(text: str | None, *, what: str, option: str) -> str | None:
    """Free text (a description, a message) may hold anything but NUL: PostgreSQL refuses it in a
    text column while SQLite stores it, so the two catalogs would disagree."""
    if text is not None and "\x00" in text:
        raise InvalidInput(f"A {what} cannot contain a NUL character", hint=f"Remove it from {option}")
    return text


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
        check_name(name, what="dataset")
        check_text(description, what="description", option="--description")
        if storage_provider_id is None:
            storage_provider_id = self._ctx.ensure_default_provider().id
        else:
            ids.check_storage_provider_id(storage_provider_id, option="--storageProviderId")
        return self._ctx.catalog.insert_dataset(
            self._ctx.team_id, name=name, storage_provider_id=storage_provider_id, description=description
        )

    def update(self, dataset_id: str, *, name: str | None = None, description: str | None = None) -> Dataset:
        if name is not None:
            check_name(name, what="dataset")
        check_text(description, what="description", option="--description")
        return self._ctx.catalog.update_dataset(
            self._ctx.team_id, parse_bare_dataset_id(dataset_id), name=name, description=description
        )

    def delete(self, dataset_id: str) -> None:
        """Removes the dataset, its versions and tags; the bytes stay until ``admin gc``."""
        from datakeep.services.versions import forget_records

        dataset = self.get(dataset_id)
        self._ctx.catalog.delete_dataset(self._ctx.team_id, dataset.id)
        forget_records(self._ctx.content(dataset), dataset.id)
