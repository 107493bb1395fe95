"""How the console reaches the search API: over HTTP, or in-process for the embedded profile.

The console only ever talks to the API through the SDK. ``AIOREID_UI_API_URL`` selects a
running API; without it the console serves the same FastAPI app in its own process (the
embedded profile) through an in-memory transport, so `aioreid ui` works on a laptop alone.
"""

from __future__ import annotations

import os
from functools import lru_cache

from aioreid.platform.sdk import ApiError, Client

API_URL_ENV = "AIOREID_UI_API_URL"


@lru_cache(maxsize=1)
def _in_process_http():  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from aioreid.platform.api.app import create_app

    return TestClient(create_app(), base_url="http://in-process")


def make_client(api_key: str) -> Client:
    """An SDK client for ``api_key`` (HTTP when AIOREID_UI_API_URL is set, else in-process)."""
    url = os.environ.get(API_URL_ENV)
    if url:
        return Client(url, api_key=api_key, timeout=120)
    http = _in_process_http()
    return Client(api_key=api_key, http_client=_KeyedClient(http, api_key))


class _KeyedClient:
    """The shared in-process client with this session's key on every request."""

    def __init__(self, http, api_key: str) -> None:  # type: ignore[no-untyped-def]
        self._http = http
        self.headers = {"X-API-Key": api_key}

    def request(self, method: str, url: str, **kwargs):  # type: ignore[no-untyped-def]
        headers = {**kwargs.pop("headers", {}), **self.headers}
        return self._http.request(method, url, headers=headers, **kwargs)

    def get(self, url: str, **kwargs):  # type: ignore[no-untyped-def]
        return self.request("GET", url, **kwargs)

    def stream(self, method: str, url: str, **kwargs):  # type: ignore[no-untyped-def]
        headers = {**kwargs.pop("headers", {}), **self.headers}
        return self._http.stream(method, url, headers=headers, **kwargs)

    def close(self) -> None:  # the in-process app outlives one session
        pass


def check_key(client: Client) -> str | None:
    """None when the key works, else a message for the login form."""
    try:
        client.stats()
    except ApiError as exc:
        if exc.status == 401:
            return "That API key is not valid (or was revoked)."
        return f"The API answered: {exc}"
    return None
