"""Every error datakeep raises on purpose.

One root, :class:`DatakeepError`, so callers can catch everything of ours at once; each class
also inherits the built-in exception it resembles, so ``except LookupError`` or
``except PermissionError`` keeps working for code that knows nothing about datakeep.

Each error carries a ``hint``: the one thing the user can do about it. The CLI prints
``message`` and ``hint`` on one line; the server sends ``code`` so the remote client can
raise the same class again (see :func:`error_from_code`).
"""

from __future__ import annotations

from typing import Any, ClassVar


class DatakeepError(Exception):
    """Root of every error datakeep raises on purpose."""

    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 400

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        return self.message

    def one_line(self) -> str:
        """The message and the fix, as the CLI prints them."""
        if self.hint:
            return f"{self.message.rstrip('.')}. {self.hint}"
        return self.message


# INPUT ERRORS


class InvalidInput(DatakeepError, ValueError):
    """A value given by the user cannot be used as it is."""

    code = "invalid_input"


class InvalidReference(InvalidInput):
    """A dataset reference such as ``ds…:ver`` is malformed."""

    code = "invalid_reference"


class InvalidPath(InvalidInput):
    """A path escapes its root, or is not a path datakeep can store."""

    code = "invalid_path"


class ReservedName(InvalidInput):
    """A name (such as the tag ``latest``) is reserved for datakeep's own use."""

    code = "reserved_name"


# LOOKUP ERRORS


class NotFound(DatakeepError, LookupError):
    """Something named by the user does not exist (or belongs to another team)."""

    code = "not_found"
    http_status = 404


class StorageProviderNotFound(NotFound):
    code = "storage_provider_not_found"


class DatasetNotFound(NotFound):
    code = "dataset_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class TagNotFound(NotFound):
    code = "tag_not_found"


class JobNotFound(NotFound):
    code = "job_not_found"


class ExperimentNotFound(NotFound):
    code = "experiment_not_found"


class FileNotFoundInVersion(NotFound, FileNotFoundError):
    """A path asked for is not in the version."""

    code = "file_not_found"


# STATE ERRORS


class Conflict(DatakeepError):
    """The request clashes with what already exists."""

    code = "conflict"
    http_status = 409


class AlreadyExists(Conflict, FileExistsError):
    code = "already_exists"


class VersionCommitted(Conflict, PermissionError):
    """A committed version is immutable: nothing may change it, ever."""

    code = "version_committed"
    http_status = 403


class VersionNotCommitted(Conflict):
    """The operation needs a committed version (for example, a job input)."""

    code = "version_not_committed"


class InUse(Conflict):
    """The thing is still used (a provider by datasets, a cached version by a running job)."""

    code = "in_use"


# ACCESS ERRORS


class AuthenticationFailed(DatakeepError, PermissionError):
    code = "authentication_failed"
    http_status = 401


class Forbidden(DatakeepError, PermissionError):
    code = "forbidden"
    http_status = 403


# STORAGE AND TRANSFER ERRORS


class StorageError(DatakeepError, OSError):
    """A storage provider failed in a way retries did not fix."""

    code = "storage_error"
    http_status = 502


class IntegrityError(StorageError):
    """Bytes read back do not match their digest (or their S3 ETag)."""

    code = "integrity_error"


class QuotaExceeded(StorageError):
    """Data does not fit in the space it was given (a dynamic volume, the cache cap)."""

    code = "quota_exceeded"
    http_status = 507


class UnsafeArchive(InvalidPath):
    """An archive holds an entry that would land outside its root, a device, or too much data."""

    code = "unsafe_archive"


# RUNTIME ERRORS


class SandboxUnavailable(DatakeepError, OSError):
    """No mount namespace can be made here (no root, no user namespaces, or not Linux)."""

    code = "sandbox_unavailable"
    http_status = 501


class JobFailed(DatakeepError, RuntimeError):
    """A job's command exited non-zero; ``exit_code`` carries its status."""

    code = "job_failed"

    def __init__(self, message: str, *, exit_code: int, hint: str | None = None, **details: Any) -> None:
        super().__init__(message, hint=hint, exit_code=exit_code, **details)
        self.exit_code = exit_code


class CatalogError(DatakeepError, RuntimeError):
    """The catalog database cannot be reached or migrated."""

    code = "catalog_error"
    http_status = 503


class RemoteError(DatakeepError, ConnectionError):
    """The datakeep server could not be reached or answered something unexpected."""

    code = "remote_error"
    http_status = 502


def _all_subclasses(cls: type[DatakeepError]) -> list[type[DatakeepError]]:
    found: list[type[DatakeepError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


def error_from_code(code: str, message: str, *, hint: str | None = None) -> DatakeepError:
    """Rebuild the exception a server raised, from the ``code`` in its JSON error body."""
    candidates: list[type[DatakeepError]] = [DatakeepError, *_all_subclasses(DatakeepError)]
    for cls in candidates:
        if cls.code == code and cls is not JobFailed:
            return cls(message, hint=hint)
    return RemoteError(message, hint=hint)
