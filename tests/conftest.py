"""Test-suite wiring: every shared fixture lives in ``tests/fixtures/`` and is loaded here."""

from __future__ import annotations

import sys
from pathlib import Path

# Make ``fixtures`` importable whatever pytest's import mode.
_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

pytest_plugins = [
    "fixtures.env",
    "fixtures.postgres",
    "fixtures.catalog",
    "fixtures.s3",
]
