"""What every service shares: settings, the catalog, the team it acts for, open providers."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from datakeep.catalog import Catalog
from datakeep.catalog.schema import LOCAL_TEAM_ID
from datakeep.config import Settings
from datakeep.domain.models import Dataset, StorageProvider
from datakeep.secretbox import SecretBox

if TYPE_CHECKING:
    from datakeep.providers.base import Provider
    from datakeep.storage.content import ContentStore

DEFAULT_PROVIDER_NAME = "default"


@dataclass
class Context:
    settings: Settings
    catalog: Catalog
    team_id: str = LOCAL_TEAM_ID
    #: ``None``: progress bars when stderr is a terminal; ``False``: never (the server).
    progress: bool | None = None
    _providers: dict[str, Provider] = field(default_factory=dict)
    _secretbox: SecretBox | None = None

    @property
    def secretbox(self) -> SecretBox:
        if self._secretbox is None:
            self._secretbox = SecretBox(self.settings)
        return self._secretbox

    def ensure_default_provider(self) -> StorageProvider:
        """The embedded default: a ``local`` provider named ``default`` under the data home."""
        existing = self.catalog.default_provider(self.team_id)
        if existing is not None:
            return existing
        path = self.settings.default_storage_path
        if self.team_id != LOCAL_TEAM_ID:
            path = path / self.team_id
        Path(path).mkdir(parents=True, exist_ok=True)
        return self.catalog.insert_provider(
            self.team_id,
            name=DEFAULT_PROVIDER_NAME,
            type="local",
            config={"path": str(path)},
            is_default=True,
        )

    def revealed_provider(self, provider_id: str) -> StorageProvider:
        """The provider with its real config (decrypted secrets): never hand this to a user."""
        stored = self.catalog.get_provider(self.team_id, provider_id, reveal=True)
        return replace(stored, config=self.secretbox.open_config(stored.config))

    def provider(self, provider_id: str) -> Provider:
        if provider_id not in self._providers:
            from datakeep.providers.registry import open_provider

            self._providers[provider_id] = open_provider(self.revealed_provider(provider_id), self.settings)
        return self._providers[provider_id]

    def forget_provider(self, provider_id: str) -> None:
        """Drop an opened provider whose config changed or that is gone, so it is not reused."""
        self._providers.pop(provider_id, None)

    def content(self, dataset: Dataset) -> ContentStore:
        from datakeep.storage.content import ContentStore

        provider_id = dataset.storage_provider.id
        return ContentStore(
            self.catalog, self.provider(provider_id), provider_id, self.settings, progress=self.progress
        )
