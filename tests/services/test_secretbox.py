"""Provider secrets at rest: sealed with a key, and a wrong key is named in the error."""

from __future__ import annotations

from pathlib import Path

import pytest

from datakeep.config import Settings
from datakeep.errors import CatalogError
from datakeep.secretbox import PREFIX, SecretBox


def test_secrets_are_sealed_and_open_again(tmp_path: Path) -> None:
    box = SecretBox(Settings(home=tmp_path))
    sealed = box.seal_config({"bucket": "b", "secretAccessKey": "s3cr3t"})
    assert sealed["bucket"] == "b"
    assert sealed["secretAccessKey"].startswith(PREFIX)
    assert "s3cr3t" not in sealed["secretAccessKey"]
    assert box.seal_config(sealed) == sealed  # sealing twice changes nothing
    assert box.open_config(sealed) == {"bucket": "b", "secretAccessKey": "s3cr3t"}
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0


def test_a_wrong_key_file_is_named(tmp_path: Path) -> None:
    sealed = SecretBox(Settings(home=tmp_path / "a")).seal_config({"secretAccessKey": "x"})
    other = SecretBox(Settings(home=tmp_path / "b"))
    with pytest.raises(CatalogError, match=r"the key file .*b/secret\.key"):
        other.open_config(sealed)


def test_a_wrong_server_key_is_named(tmp_path: Path) -> None:
    sealed = SecretBox(Settings(home=tmp_path, server_key="one passphrase")).seal_config(
        {"secretAccessKey": "x"}
    )
    assert SecretBox(Settings(home=tmp_path, server_key="one passphrase")).open_config(sealed) == {
        "secretAccessKey": "x"
    }
    with pytest.raises(CatalogError, match="the server key"):
        SecretBox(Settings(home=tmp_path, server_key="another")).open_config(sealed)
