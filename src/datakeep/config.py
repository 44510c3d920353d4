"""Every environment variable datakeep reads, read in one place.

:class:`Settings` is a frozen snapshot of the environment; pass it explicitly instead of
reading ``os.environ`` deep inside the code, so tests can build their own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

#: Where the catalog, the default storage provider's bytes and the cache live.
ENV_HOME = "DATAKEEP_HOME"
#: A SQLAlchemy URL; a ``postgresql://`` one makes the catalog use PostgreSQL.
ENV_DATABASE_URL = "DATAKEEP_DATABASE_URL"
#: The shared-storage cache directory (may be on NFS, shared by a cluster's machines).
ENV_CACHE = "DATAKEEP_CACHE"
#: Cap on the cache size in bytes (suffixes such as ``50Gi`` accepted).
ENV_CACHE_MAX = "DATAKEEP_CACHE_MAX_SIZE"
#: Shared storage for experiment datasets (``<shared>/data/NAME-ETAG-VERSIONID``).
ENV_SHARED_STORAGE = "DATAKEEP_SHARED_STORAGE"
#: Set both to talk to a datakeep server instead of the embedded catalog.
ENV_API_URL = "DATAKEEP_API_URL"
ENV_API_KEY = "DATAKEEP_API_KEY"
#: The server's key for encrypting storage provider secrets at rest (or a file holding it).
ENV_SERVER_KEY = "DATAKEEP_SERVER_KEY"
ENV_SERVER_KEY_FILE = "DATAKEEP_SERVER_KEY_FILE"
#: ``1`` shows tracebacks instead of one-line errors.
ENV_DEBUG = "DATAKEEP_DEBUG"


def debug_enabled(environ: dict[str, str] | None = None) -> bool:
    """``DATAKEEP_DEBUG``: read here too (not only in :class:`Settings`) because the CLI needs it
    even when building the settings is what failed."""
    value = (os.environ if environ is None else environ).get(ENV_DEBUG, "")
    return value not in ("", "0", "false", "no")


def _default_home() -> Path:
    return Path.home() / ".datakeep"


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=_default_home)
    database_url: str | None = None
    cache_dir: Path | None = None
    cache_max_size: int | None = None
    shared_storage: Path | None = None
    api_url: str | None = None
    api_key: str | None = None
    server_key: str | None = None
    debug: bool = False

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        home = Path(env[ENV_HOME]).expanduser() if env.get(ENV_HOME) else _default_home()
        server_key = env.get(ENV_SERVER_KEY)
        if not server_key and env.get(ENV_SERVER_KEY_FILE):
            server_key = _read_key_file(Path(env[ENV_SERVER_KEY_FILE]).expanduser())
        cache_max = env.get(ENV_CACHE_MAX)
        return cls(
            home=home,
            database_url=env.get(ENV_DATABASE_URL) or None,
            cache_dir=Path(env[ENV_CACHE]).expanduser() if env.get(ENV_CACHE) else None,
            cache_max_size=_parse_size(cache_max) if cache_max else None,
            shared_storage=(
                Path(env[ENV_SHARED_STORAGE]).expanduser() if env.get(ENV_SHARED_STORAGE) else None
            ),
            api_url=env.get(ENV_API_URL) or None,
            api_key=env.get(ENV_API_KEY) or None,
            server_key=server_key or None,
            debug=debug_enabled(env),
        )

    @property
    def catalog_url(self) -> str:
        """The database URL: the configured one, else SQLite under the data home."""
        return self.database_url or f"sqlite:///{self.home / 'catalog.db'}"

    @property
    def default_storage_path(self) -> Path:
        """Where the embedded ``default`` local provider keeps its bytes."""
        return self.home / "storage"

    @property
    def cache_path(self) -> Path:
        return self.cache_dir or self.home / "cache"

    @property
    def shared_storage_path(self) -> Path:
        """Gradient's ``/storage``: experiment datasets go to ``<this>/data/``."""
        return self.shared_storage or self.home / "shared"

    @property
    def runs_path(self) -> Path:
        """Job and experiment logs and scratch space."""
        return self.home / "runs"

    @property
    def is_remote(self) -> bool:
        return self.api_url is not None


def _read_key_file(path: Path) -> str:
    """The server key from its file; a missing or empty file is an error, never a silent fallback
    to another key (secrets stored with the real key would become unreadable)."""
    from datakeep.errors import InvalidInput

    try:
        key = path.read_text().strip()
    except OSError as exc:
        raise InvalidInput(
            f"Cannot read {ENV_SERVER_KEY_FILE}={path} ({exc.strerror or exc})",
            hint=f"Point {ENV_SERVER_KEY_FILE} at a readable file holding the server key, or unset it",
        ) from exc
    if not key:
        raise InvalidInput(
            f"{ENV_SERVER_KEY_FILE}={path} is empty",
            hint="Write the server key into it (any long random string), or unset the variable",
        )
    return key


def _parse_size(text: str) -> int:
    from datakeep.errors import InvalidInput
    from datakeep.sizes import parse_size

    try:
        return parse_size(text)
    except InvalidInput as exc:
        raise InvalidInput(f"{ENV_CACHE_MAX}={text!r} is not a size", hint=exc.hint) from exc
