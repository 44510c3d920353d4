"""Errors as Gradient's clients expect them, and as the remote client turns back into exceptions.

The body is LoopBack's shape, ``{"error": {"statusCode", "name", "message"}}``, which Gradient's
CLI prints as "Failed to fetch data: <message>". ``code`` and ``hint`` ride along in the same
object: Gradient's message extractor ignores them, and :func:`datakeep.errors.error_from_code`
rebuilds the very class that was raised from ``code``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from datakeep.errors import DatakeepError

_STATUS_NAMES = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    409: "ConflictError",
    413: "PayloadTooLargeError",
    422: "UnprocessableEntityError",
    500: "InternalServerError",
}


def error_body(status: int, message: str, *, code: str, hint: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {
        "statusCode": status,
        "name": _STATUS_NAMES.get(status, "Error"),
        "message": message,
        "code": code,
    }
    if hint:
        error["hint"] = hint
    return {"error": error}


def error_response(status: int, message: str, *, code: str, hint: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        error_body(status, message, code=code, hint=hint), status_code=status, headers=headers
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "request"
        if error.get("type") == "json_invalid":
            return "The request body is not valid JSON"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DatakeepError)
    async def _datakeep_error(_request: Request, exc: DatakeepError) -> JSONResponse:
        return error_response(exc.http_status, exc.message, code=exc.code, hint=exc.hint)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, _validation_message(exc), code="invalid_input")

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # Still in LoopBack's shape, so both CLIs print one line; the details stay in the log
        # (uvicorn logs the traceback), since they may name paths or settings of the server.
        return error_response(
            500,
            "The server failed to handle this request",
            code="internal_error",
            hint="The server's log has the details; please report it",
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "error")
        message = str(exc.detail) if exc.detail else "Error"
        if exc.status_code == 404 and message == "Not Found":
            message = "No such route"
        return error_response(exc.status_code, message, code=code)
