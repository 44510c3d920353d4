"""Shared plumbing for command modules: the client, Gradient's common options, ``--json``.

Every Gradient command accepts ``--apiKey``, ``--optionsFile PATH`` (a YAML file whose keys are
option names without ``--``) and ``--createOptionsFile PATH`` (writes such a file and stops).
:class:`GradientCommand` adds the three to every command of a :class:`DatakeepGroup`, so
command functions receive only their own options.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from datakeep.config import Settings

F = TypeVar("F", bound=Callable[..., Any])

OPTIONS_FILE = "optionsFile"
CREATE_OPTIONS_FILE = "createOptionsFile"
API_KEY = "apiKey"
_META_API_KEY = "datakeep.api_key"
#: Parameters whose values must never be written to an options template (they are secrets).
SECRET_PARAMS = frozenset({"api_key", "secret_access_key"})
#: Parameters that are about this one invocation, not worth keeping in an options file.
_NOT_IN_TEMPLATE = frozenset({"options_file", "create_options_file", "api_key", "as_json"})

#: Every write is one catalog transaction at its end, so an interrupted command changed nothing.
INTERRUPTED = "Interrupted: nothing was committed. Run the same command again to resume."

_PLAIN = (str, int, float, bool, list, tuple)

_client: Any = None
_client_key: str | None = None


def get_client() -> Any:
    """The process's client: embedded, or remote when DATAKEEP_API_URL is set (same interface).

    ``--apiKey`` of the running command, if given, replaces DATAKEEP_API_KEY for this call only.
    """
    global _client, _client_key
    ctx = click.get_current_context(silent=True)
    api_key = ctx.find_root().meta.get(_META_API_KEY) if ctx is not None else None
    if _client is None or api_key != _client_key:
        from datakeep.client import connect

        settings = Settings.from_env()
        if api_key:
            settings = dataclasses.replace(settings, api_key=api_key)
        _client = connect(settings)
        _client_key = api_key
    return _client


def reset_client() -> None:
    """Forget the cached client (tests run many commands in one process)."""
    global _client, _client_key
    if _client is not None and hasattr(_client, "close"):
        _client.close()
    _client = None
    _client_key = None


def json_option(func: F) -> F:
    """``--json``: machine-readable output for scripts instead of tables."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(func)


def is_interactive() -> bool:
    """Paging asks a question, so only when a person can both read it and answer it."""
    return sys.stdout.isatty() and sys.stdin.isatty()


def option_name(param: click.Parameter) -> str | None:
    """The name a Gradient options file uses for ``param``: its long flag without ``--``."""
    for opt in param.opts:
        if opt.startswith("--"):
            return opt[2:]
    return None


def _store_api_key(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.find_root().meta[_META_API_KEY] = value


def _scan(args: Sequence[str], flag: str) -> str | None:
    """The value of ``--flag VALUE`` or ``--flag=VALUE`` in raw arguments (the last one wins)."""
    found = None
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg == flag and index + 1 < len(args):
            found = args[index + 1]
        elif arg.startswith(flag + "="):
            found = arg[len(flag) + 1 :]
    return found


def _yaml_value(param: click.Parameter, value: Any) -> Any:
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if getattr(param, "multiple", False) and isinstance(value, str | int | float):
        return (str(value),)
    if getattr(param, "multiple", False) and isinstance(value, list):
        return tuple(value)
    return value


class GradientCommand(click.Command):
    """A command with Gradient's ``--apiKey``, ``--optionsFile`` and ``--createOptionsFile``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(
            [
                click.Option(
                    [f"--{API_KEY}", "api_key"],
                    help="API key of a datakeep server, for this command only (else DATAKEEP_API_KEY).",
                    expose_value=False,
                    callback=_store_api_key,
                ),
                click.Option(
                    [f"--{OPTIONS_FILE}", "options_file"],
                    help="Read options from this YAML file (keys are option names without --).",
                    type=click.Path(exists=True, dir_okay=False),
                    expose_value=False,
                ),
                click.Option(
                    [f"--{CREATE_OPTIONS_FILE}", "create_options_file"],
                    help="Write the options of this command to a YAML file and exit.",
                    type=click.Path(dir_okay=False, writable=True),
                    expose_value=False,
                ),
            ]
        )

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not ctx.resilient_parsing and not ({"--help", "-h"} & set(args)):
            options_file = _scan(args, f"--{OPTIONS_FILE}")
            if options_file is not None:
                ctx.default_map = {**(ctx.default_map or {}), **self.read_options_file(options_file)}
            template = _scan(args, f"--{CREATE_OPTIONS_FILE}")
            if template is not None:
                self.write_options_file(ctx, args, template)
                ctx.exit(0)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        """Ctrl-C gets datakeep's message and status 130, not click's bare "Aborted!"."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("", err=True)
            click.echo(INTERRUPTED, err=True)
            # SystemExit goes straight through click and datakeep.cli.main.main to the shell.
            raise SystemExit(130) from None

    def _by_option_name(self) -> dict[str, click.Parameter]:
        names: dict[str, click.Parameter] = {}
        for param in self.params:
            name = option_name(param)
            if name is not None and param.name is not None:
                names[name] = param
                names[param.name] = param
        return names

    def read_options_file(self, path: str) -> dict[str, Any]:
        """Options from a Gradient-style YAML file, keyed by parameter name for ``default_map``."""
        file = Path(path).expanduser()
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise click.BadParameter(f"{path} does not exist", param_hint=f"'--{OPTIONS_FILE}'") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise click.BadParameter(
                f"cannot read {path} as YAML: {exc}", param_hint=f"'--{OPTIONS_FILE}'"
            ) from None
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            raise click.BadParameter(
                f"{path} must hold a YAML mapping of option names to values",
                param_hint=f"'--{OPTIONS_FILE}'",
            )
        params = self._by_option_name()
        result: dict[str, Any] = {}
        for key, value in data.items():
            param = params.get(str(key))
            if param is None or param.name in (OPTIONS_FILE, "options_file", "create_options_file"):
                known = sorted(n for n, p in params.items() if n == option_name(p))
                raise click.BadParameter(
                    f"unknown option {key!r} in {path}; this command knows: {', '.join(known)}",
                    param_hint=f"'--{OPTIONS_FILE}'",
                )
            if value is None:
                continue
            assert param.name is not None
            result[param.name] = _yaml_value(param, value)
        # ``apiKey`` from the file reaches the client through the option's callback.
        return result

    def write_options_file(self, ctx: click.Context, args: list[str], path: str) -> None:
        """A template with every option, filled with the values given on this command line.

        Secrets are left out (written as null): an options file is easily committed or shared.
        """
        try:
            given, _, _ = self.make_parser(ctx).parse_args(args=list(args))
        except click.UsageError:
            given = {}
        template: dict[str, Any] = {}
        for param in self.params:
            name = option_name(param)
            if name is None or param.name is None or param.name in _NOT_IN_TEMPLATE:
                continue
            template[name] = self._template_value(ctx, param, given)
        target = Path(path).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.write_text(yaml.safe_dump(template, default_flow_style=False, sort_keys=False), encoding="utf-8")
        os.replace(tmp, target)
        click.echo(f"Wrote options template: {target}", err=True)

    @staticmethod
    def _template_value(ctx: click.Context, param: click.Parameter, given: Mapping[str, Any]) -> Any:
        assert param.name is not None
        if param.name in SECRET_PARAMS:
            return None
        if param.name in given:
            raw = given[param.name]
            if (
                not isinstance(raw, _PLAIN)
                and isinstance(param, click.Option)
                and isinstance(param.flag_value, bool)
            ):
                raw = param.flag_value  # an optional-value option given bare, such as --recursive
            if isinstance(raw, _PLAIN):
                try:
                    return _plain(param.type_cast_value(ctx, raw))
                except click.BadParameter:
                    return _plain(raw)
        if param.name in (ctx.default_map or {}):
            return _plain((ctx.default_map or {})[param.name])
        return _plain(param.get_default(ctx, call=True))


def _plain(value: Any) -> Any:
    """A value YAML writes plainly; tuples become lists, empty lists and objects become null."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        return value or None
    return value if isinstance(value, str | int | float | bool) else None


class DatakeepGroup(click.Group):
    """A group whose commands are :class:`GradientCommand` and whose subgroups are like itself."""

    command_class = GradientCommand
    group_class = type
