"""Settings read from the environment: the server key file must really hold a key."""

from __future__ import annotations

from pathlib import Path

import pytest

from datakeep.config import Settings
from datakeep.errors import InvalidInput


def test_server_key_from_a_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("a long random string\n")
    settings = Settings.from_env({"DATAKEEP_HOME": str(tmp_path), "DATAKEEP_SERVER_KEY_FILE": str(key_file)})
    assert settings.server_key == "a long random string"


def test_a_missing_or_empty_key_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="Cannot read DATAKEEP_SERVER_KEY_FILE"):
        Settings.from_env({"DATAKEEP_SERVER_KEY_FILE": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(InvalidInput, match="is empty"):
        Settings.from_env({"DATAKEEP_SERVER_KEY_FILE": str(tmp_path / "empty")})


def test_sizes_and_debug(tmp_path: Path) -> None:
    settings = Settings.from_env({"DATAKEEP_CACHE_MAX_SIZE": "2Gi", "DATAKEEP_DEBUG": "1"})
    assert settings.cache_max_size == 2 * 1024**3
    assert settings.debug
    assert not Settings.from_env({"DATAKEEP_DEBUG": "0"}).debug


def test_a_bad_cache_size_names_the_variable() -> None:
    with pytest.raises(InvalidInput, match="DATAKEEP_CACHE_MAX_SIZE='lots'"):
        Settings.from_env({"DATAKEEP_CACHE_MAX_SIZE": "lots"})


@pytest.mark.parametrize("url", ["bogus://x", "notaurl"])
def test_an_unusable_database_url_is_a_catalog_error(url: str) -> None:
    from datakeep.catalog.database import create_catalog_engine
    from datakeep.errors import CatalogError

    with pytest.raises(CatalogError, match="Cannot use the catalog database URL") as caught:
        create_catalog_engine(url)
    assert "DATAKEEP_DATABASE_URL" in caught.value.one_line()


def test_python_m_datakeep_runs_the_cli(tmp_path: Path) -> None:
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "datakeep", "--version"], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0
    assert run.stdout.startswith("datakeep, version")
