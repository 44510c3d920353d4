"""Encryption at rest for storage provider secrets.

The catalog never holds a provider secret in clear: values of secret config keys are stored
as ``enc:v1:<Fernet token>``. The key comes from ``DATAKEEP_SERVER_KEY`` (or
``DATAKEEP_SERVER_KEY_FILE``); without one, a key is generated once into
``<home>/secret.key`` with mode 0600, so an embedded catalog copied elsewhere leaks nothing.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from datakeep.config import Settings
from datakeep.domain.models import SECRET_KEYS
from datakeep.errors import CatalogError

PREFIX = "enc:v1:"


def _fernet_key(material: str) -> bytes:
    """Accept a Fernet key as is, or derive one from any passphrase."""
    try:
        if len(base64.urlsafe_b64decode(material.encode())) == 32:
            return material.encode()
    except ValueError:
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(material.encode()).digest())


def _key_file_key(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    try:
        os.link(tmp, path)  # first writer wins; a racing process reads the winner's key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes().strip()


class SecretBox:
    def __init__(self, settings: Settings) -> None:
        if settings.server_key:
            key = _fernet_key(settings.server_key)
            self._key_source = "the server key (DATAKEEP_SERVER_KEY or DATAKEEP_SERVER_KEY_FILE)"
        else:
            key_file = settings.home / "secret.key"
            key = _key_file_key(key_file)
            self._key_source = f"the key file {key_file}"
        self._fernet = Fernet(key)

    def seal_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return {
            k: self._seal(v) if k in SECRET_KEYS and isinstance(v, str) and v else v
            for k, v in config.items()
        }

    def open_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return {
            k: self._open(v) if isinstance(v, str) and v.startswith(PREFIX) else v for k, v in config.items()
        }

    def _seal(self, value: str) -> str:
        if value.startswith(PREFIX):
            return value
        return PREFIX + self._fernet.encrypt(value.encode()).decode()

    def _open(self, value: str) -> str:
        try:
            return self._fernet.decrypt(value[len(PREFIX) :].encode()).decode()
        except InvalidToken as exc:
            raise CatalogError(
                f"A storage provider secret cannot be decrypted with {self._key_source}",
                hint="Use the key the secret was stored with (DATAKEEP_SERVER_KEY or DATAKEEP_SERVER_KEY_FILE, "
                "else $DATAKEEP_HOME/secret.key), or set the secret again with: datakeep storageProviders update",
            ) from exc
