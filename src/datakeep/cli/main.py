"""The root ``datakeep`` group, lazy loading of command groups, and the one place errors become exit codes.

Each command group lives in its own module exposing ``commands``: click commands or groups
for the root. :data:`COMMANDS` says which modules make up each top-level name; a module is
imported only when its command runs, so ``datakeep datasets list`` never pays for boto3 or
the experiment runner. Two modules may contribute to one group (``admin``): their
subcommands are merged.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import click

from datakeep import __version__
from datakeep.cli.common import INTERRUPTED
from datakeep.config import ENV_DEBUG, debug_enabled
from datakeep.errors import DatakeepError

#: Top-level command name -> the modules that define it, in order.
COMMANDS: dict[str, tuple[str, ...]] = {
    "admin": ("datakeep.cli.admin", "datakeep.cli.admin_teams"),
    "cache": ("datakeep.cli.cache",),
    # cli.jobs adds `datasets versions lineage` to the group it finds in cli.datasets.
    "datasets": ("datakeep.cli.datasets", "datakeep.cli.jobs"),
    "experiments": ("datakeep.cli.experiments",),
    "jobs": ("datakeep.cli.jobs",),
    "server": ("datakeep.cli.server",),
    "storageProviders": ("datakeep.cli.storage_providers",),
}

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _load(name: str) -> click.Command | None:
    """Import the modules behind one top-level name and merge what they define under it."""
    found: click.Command | None = None
    for module_name in COMMANDS.get(name, ()):
        module = importlib.import_module(module_name)
        for command in getattr(module, "commands", []):
            if command.name != name:
                continue
            if found is None:
                found = command
            elif found is not command and isinstance(found, click.Group) and isinstance(command, click.Group):
                for sub_name, sub in command.commands.items():
                    found.add_command(sub, sub_name)
    return found


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            command = _load(cmd_name)
            if command is None:
                return None
            self.add_command(command, cmd_name)
        return self.commands[cmd_name]


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="datakeep")
def cli() -> None:
    """datakeep: versioned datasets for machine learning.

    Commands and flags follow Paperspace Gradient's CLI, so a Gradient script works after
    replacing `gradient` with `datakeep`. With no configuration, data lives under
    ~/.datakeep (DATAKEEP_HOME); set DATAKEEP_API_URL and DATAKEEP_API_KEY to use a server.
    """


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every failure is one line on stderr and a non-zero exit code."""
    try:
        result = cli.main(args=argv, prog_name="datakeep", standalone_mode=False)
    except click.exceptions.Abort:
        # click turns Ctrl-C into Abort: say what it means for the user's data.
        click.echo(INTERRUPTED, err=True)
        return 130
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo(INTERRUPTED, err=True)
        return 130
    except DatakeepError as exc:
        if debug_enabled():
            traceback.print_exc()
        exit_code = getattr(exc, "exit_code", None)
        click.secho(f"Error: {exc.one_line()}", err=True, fg="red")
        return exit_code if isinstance(exit_code, int) and exit_code > 0 else 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence turns bugs into one line too
        if debug_enabled():
            traceback.print_exc()
        else:
            click.secho(
                f"Error: unexpected {exc.__class__.__name__}: {exc}. "
                f"Set {ENV_DEBUG}=1 for the traceback, and please report it.",
                err=True,
                fg="red",
            )
        return 1
    # A command may set its exit code through ctx.exit(N); click hands it back here.
    return result if isinstance(result, int) else 0


def entry_point() -> None:
    sys.exit(main())
