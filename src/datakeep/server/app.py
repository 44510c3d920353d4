"""The datakeep server: Gradient's HTTP API for teams, over the same library as the CLI.

``create_app()`` builds the FastAPI application; ``datakeep server`` runs it with uvicorn. Which
of Gradient's routes are served is listed in docs/server.md and in the OpenAPI document at
``/openapi.json``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datakeep import __version__
from datakeep.catalog import Catalog
from datakeep.config import Settings
from datakeep.server import api_cache, api_datasets, api_jobs, api_native, gradient_files
from datakeep.server.errors import error_body, install_error_handlers
from datakeep.server.state import ServerState

#: The largest JSON request accepted (the biggest legitimate one is a presign batch).
MAX_JSON_BODY = 1024 * 1024
#: Routes that receive file bytes rather than JSON.
_BYTES_ROUTES = ("/_files/",)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, counting what actually arrives (a
    client can lie in, or omit, Content-Length). File uploads are exempt: they are not JSON."""

    def __init__(self, app: ASGIApp, limit: int = MAX_JSON_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(_BYTES_ROUTES):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(send, self.limit)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _too_large(send, self.limit)


class _TooLarge(BaseException):  # noqa: N818 - BaseException: FastAPI turns any Exception in a body read into a 400
    pass


async def _too_large(send: Send, limit: int) -> None:
    import json

    body = json.dumps(
        error_body(
            413,
            f"Request body larger than {limit} bytes",
            code="too_large",
            hint="Send the items in several smaller requests",
        )
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings | None = None, *, catalog: Catalog | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    state = ServerState(settings, catalog)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        title="datakeep",
        version=__version__,
        description="Versioned datasets for teams; speaks Paperspace Gradient's Datasets API.",
        lifespan=lifespan,
    )
    app.state.datakeep = state
    install_error_handlers(app)

    @app.get("/healthz", tags=["server"])
    def healthz() -> dict[str, Any]:
        with state.catalog.begin() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    for module in (api_datasets, gradient_files, api_native, api_jobs, api_cache):
        app.include_router(module.router)
    app.add_middleware(BodyLimit)
    return app
