"""Value objects returned by the library, by both the embedded and the remote client.

They are frozen dataclasses: a caller holding a :class:`Version` holds a snapshot, not a
live row. ``to_dict`` gives the ``--json`` form (snake_case); the server maps them to
Gradient's camelCase JSON itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SECRET_MASK = "********"
#: Config keys whose values are secrets: masked on read, encrypted at rest on the server.
SECRET_KEYS = frozenset(
    {"secretAccessKey", "secret_access_key", "sessionToken", "accountKey", "serviceAccountKey"}
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class _Serializable:
    def to_dict(self) -> dict[str, Any]:
        result = _jsonable(self)
        assert isinstance(result, dict)
        return result


def mask_config(config: dict[str, Any]) -> dict[str, Any]:
    """A provider config safe to show: every secret replaced by ``********``."""
    return {k: (SECRET_MASK if k in SECRET_KEYS and v else v) for k, v in config.items()}


@dataclass(frozen=True)
class StorageProvider(_Serializable):
    id: str
    name: str
    type: str  # "local" or "s3" (and any registered later)
    config: dict[str, Any]  # secrets already masked when handed to users
    is_default: bool = False
    created: datetime | None = None
    modified: datetime | None = None

    @property
    def label(self) -> str:
        """``name (id)``, as Gradient prints a provider in tables."""
        return f"{self.name} ({self.id})"


@dataclass(frozen=True)
class Dataset(_Serializable):
    id: str
    name: str
    description: str | None
    storage_provider: StorageProvider
    created: datetime | None = None
    modified: datetime | None = None


@dataclass(frozen=True)
class Version(_Serializable):
    dataset_id: str
    version: str
    message: str | None
    is_committed: bool
    tags: list[str] = field(default_factory=list)
    created: datetime | None = None
    modified: datetime | None = None
    committed: datetime | None = None
    file_count: int | None = None
    size: int | None = None
    #: Digest of the root tree of the manifest; ``None`` for an empty or uncommitted version.
    root: str | None = None
    #: The version of the same dataset this one was created from, if any.
    parent: str | None = None
    #: The job that produced this version, if a job did.
    job_id: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.dataset_id}:{self.version}"


@dataclass(frozen=True)
class Tag(_Serializable):
    dataset_id: str
    name: str
    version: str
    message: str | None = None
    created: datetime | None = None
    modified: datetime | None = None

    @property
    def ref(self) -> str:
        return f"{self.dataset_id}:{self.name}"


@dataclass(frozen=True)
class FileEntry(_Serializable):
    """One row of ``files list``: a file, or a directory (``is_dir``, name ending in ``/``)."""

    path: str
    size: int | None
    is_dir: bool = False
    digest: str | None = None

    @property
    def name(self) -> str:
        return self.path


@dataclass(frozen=True)
class Change(_Serializable):
    """One line of ``versions diff``: ``added``, ``removed`` or ``modified``."""

    kind: str
    path: str
    old_size: int | None = None
    new_size: int | None = None


@dataclass(frozen=True)
class DatasetMount(_Serializable):
    """A ``--dataset NAME@REF`` of a job: an input (REF has ``:``) or an output (bare ID)."""

    name: str
    ref: str
    output: bool
    #: The version the ref resolved to at start (inputs) or the version created (outputs).
    version: str | None = None


@dataclass(frozen=True)
class Job(_Serializable):
    id: str
    name: str | None
    command: str
    state: str  # Pending, Running, Succeeded, Failed, Cancelled
    exit_code: int | None = None
    datasets: list[DatasetMount] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # secrets redacted
    working_directory: str | None = None
    cluster_id: str | None = None
    machine_type: str | None = None
    project_id: str | None = None
    container: str | None = None
    mount_mode: str = "namespace"
    created: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    log_path: str | None = None
    #: What happened that the state alone does not say (e.g. the datakeep process died).
    notes: list[str] = field(default_factory=list)
