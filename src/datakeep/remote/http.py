"""The remote client's HTTP session: authentication, JSON, and errors turned back into exceptions."""

from __future__ import annotations

from typing import Any

import httpx

from datakeep import __version__
from datakeep.errors import DatakeepError, RemoteError, error_from_code

#: API calls wait this long; transfers use their own, longer timeouts.
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
#: Some calls (a commit absorbing uploads, a job running) take as long as their work.
LONG_TIMEOUT = httpx.Timeout(3600.0, connect=10.0)


class Session:
    def __init__(self, base_url: str, api_key: str | None) -> None:
        if not api_key:
            raise RemoteError(
                "DATAKEEP_API_URL is set but DATAKEEP_API_KEY is not",
                hint="Set DATAKEEP_API_KEY to a key from the server's `datakeep admin keys create`",
            )
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": f"datakeep/{__version__}"},
            timeout=TIMEOUT,
            follow_redirects=False,
        )
        # Transfers to presigned URLs must not carry the API key to a storage provider.
        self.transfers = httpx.Client(timeout=httpx.Timeout(300.0, connect=10.0), follow_redirects=True)

    def close(self) -> None:
        self._http.close()
        self.transfers.close()

    def request(
        self, method: str, path: str, *, json: Any = None, params: Any = None, long: bool = False
    ) -> Any:
        try:
            response = self._http.request(
                method, path, json=json, params=params, timeout=LONG_TIMEOUT if long else TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise RemoteError(
                f"Cannot reach the datakeep server at {self.base_url}: {exc}",
                hint="Check DATAKEEP_API_URL and that the server is running",
            ) from exc
        raise_for_error(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise RemoteError(f"The server answered {method} {path} with something that is not JSON") from exc


def raise_for_error(response: httpx.Response) -> None:
    """Raise the datakeep error the server raised (its ``code`` names the class)."""
    if response.status_code < 400:
        return
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    message = str(error.get("message") or f"HTTP {response.status_code} from the server")
    code = error.get("code")
    exc: DatakeepError = (
        error_from_code(str(code), message, hint=error.get("hint"))
        if code
        else RemoteError(message, hint=error.get("hint"))
    )
    raise exc
