"""The root ``datakeep`` group, command registration, and the one place errors become exit codes.

Command groups live in their own modules, each exposing ``commands``: a list of click
commands/groups added to the root. A module listed in :data:`COMMAND_MODULES` that does not
exist yet is skipped, so parts can land independently.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback

import click

from datakeep import __version__
from datakeep.config import ENV_DEBUG
from datakeep.errors import DatakeepError

COMMAND_MODULES = (
    "datakeep.cli.datasets",
    "datakeep.cli.storage_providers",
    "datakeep.cli.jobs",
    "datakeep.cli.experiments",
    "datakeep.cli.cache",
    "datakeep.cli.admin",
    "datakeep.cli.admin_teams",
    "datakeep.cli.server",
)

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="datakeep")
def cli() -> None:
    """datakeep: versioned datasets for machine learning.

    Commands and flags follow Paperspace Gradient's CLI, so a Gradient script works after
    replacing `gradient` with `datakeep`. With no configuration, data lives under
    ~/.datakeep (DATAKEEP_HOME); set DATAKEEP_API_URL and DATAKEEP_API_KEY to use a server.
    """


def _register() -> None:
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        for command in getattr(module, "commands", []):
            if command.name in cli.commands and command is not cli.commands[command.name]:
                existing = cli.commands[command.name]
                if isinstance(existing, click.Group) and isinstance(command, click.Group):
                    for sub in command.commands.values():
                        existing.add_command(sub)
                    continue
            cli.add_command(command)


_register()


def _debug() -> bool:
    return os.environ.get(ENV_DEBUG, "") not in ("", "0", "false", "no")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure is one line on stderr and a non-zero exit code."""
    try:
        cli.main(args=argv, prog_name="datakeep", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted: nothing was committed. Run the same command again to resume.", err=True)
        return 130
    except DatakeepError as exc:
        if _debug():
            traceback.print_exc()
        exit_code = getattr(exc, "exit_code", None)
        click.secho(f"Error: {exc.one_line()}", err=True, fg="red")
        return exit_code if isinstance(exit_code, int) and exit_code > 0 else 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence turns bugs into one line too
        if _debug():
            traceback.print_exc()
        else:
            click.secho(
                f"Error: unexpected {exc.__class__.__name__}: {exc}. "
                f"Set {ENV_DEBUG}=1 for the traceback, and please report it.",
                err=True,
                fg="red",
            )
        return 1
    return 0


def entry_point() -> None:
    sys.exit(main())
