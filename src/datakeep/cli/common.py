"""Shared plumbing for command modules: the client, Gradient's common options, ``--json``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from datakeep.config import Settings

F = TypeVar("F", bound=Callable[..., Any])

_client: Any = None


def get_client() -> Any:
    """The process's client: embedded, or remote when DATAKEEP_API_URL is set (same interface)."""
    global _client
    if _client is None:
        from datakeep.client import connect

        _client = connect(Settings.from_env())
    return _client


def reset_client() -> None:
    """Forget the cached client (tests run many commands in one process)."""
    global _client
    _client = None


def json_option(func: F) -> F:
    """``--json``: machine-readable output for scripts instead of tables."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(func)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def is_interactive() -> bool:
    return sys.stdout.isatty() and sys.stdin.isatty()
