"""``datakeep server``: serve the catalog to a team over Gradient's HTTP API."""

from __future__ import annotations

import errno
import socket

import click

from datakeep.config import Settings
from datakeep.errors import InvalidInput


@click.command("server")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for all)."
)
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on."
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes (more than one needs DATAKEEP_SERVER_KEY, which all of them share).",
)
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
def server(host: str, port: int, workers: int, log_level: str) -> None:
    """Run the datakeep server.

    The catalog is SQLite under DATAKEEP_HOME, or PostgreSQL when DATAKEEP_DATABASE_URL is set.
    Storage provider secrets are encrypted with DATAKEEP_SERVER_KEY (or DATAKEEP_SERVER_KEY_FILE).
    Create a team and a key first: datakeep admin teams create NAME; datakeep admin keys create --team NAME.
    Gradient's CLI then works with PAPERSPACE_CONFIG_HOST=http://HOST:PORT and PAPERSPACE_API_KEY=KEY.
    """
    import uvicorn

    from datakeep.server.app import create_app

    settings = Settings.from_env()
    if settings.is_remote:
        raise InvalidInput(
            "DATAKEEP_API_URL is set: a server serves its own catalog, not another server's",
            hint="Unset DATAKEEP_API_URL and DATAKEEP_API_KEY before running datakeep server",
        )
    if workers > 1 and not settings.server_key:
        raise InvalidInput(
            "Several server processes must share one server key (it signs the URLs they hand out)",
            hint="Set DATAKEEP_SERVER_KEY or DATAKEEP_SERVER_KEY_FILE",
        )
    _check_address(host, port)
    # Opening the catalog here (migrations included) reports a wrong DATAKEEP_DATABASE_URL in
    # one line before uvicorn starts, rather than from inside each worker process.
    app = create_app(settings)
    click.echo(f"datakeep server listening on http://{host}:{port}", err=True)
    if workers > 1:
        app.state.datakeep.close()
        # Each process builds its own app (and catalog connections) from the same environment.
        uvicorn.run(
            "datakeep.server.app:create_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level=log_level,
            access_log=log_level == "debug",
        )
        return
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug")


def _check_address(host: str, port: int) -> None:
    """Say in one line why the server cannot listen, instead of uvicorn's log lines and exit code 3."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InvalidInput(
            f"Cannot listen on {host}: {exc.strerror}", hint="Pass --host an address of this machine"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            in_use = exc.errno == errno.EADDRINUSE
            raise InvalidInput(
                f"Cannot listen on {host}:{port}: {exc.strerror}",
                hint="Pass another --port, or stop what is listening there"
                if in_use
                else "Pass --host an address of this machine (0.0.0.0 for all)",
            ) from None


commands = [server]
