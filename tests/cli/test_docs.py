"""docs/cli.md is generated from ``--help``; this fails when the two differ."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_cli_docs", module)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date() -> None:
    expected = _generator().render()
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == expected, "docs/cli.md is out of date: run python scripts/gen_cli_docs.py"


def test_reference_covers_every_gradient_command() -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for command in (
        "datasets list",
        "datasets details",
        "datasets create",
        "datasets update",
        "datasets delete",
        "datasets versions list",
        "datasets versions details",
        "datasets versions create",
        "datasets versions update",
        "datasets versions commit",
        "datasets versions delete",
        "datasets versions diff",
        "datasets tags list",
        "datasets tags set",
        "datasets tags delete",
        "datasets files list",
        "datasets files get",
        "datasets files put",
        "datasets files delete",
        "storageProviders list",
        "storageProviders details",
        "storageProviders create s3",
        "storageProviders create local",
        "storageProviders update s3",
        "storageProviders update local",
        "storageProviders delete",
    ):
        assert f"\n## datakeep {command}\n" in text, command
