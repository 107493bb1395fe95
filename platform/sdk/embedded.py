"""The SDK against an API served inside this process (the embedded profile).

A program on one machine — the console started by ``aioreid ui``, a notebook — gets the same
:class:`Client` as over HTTP, with the FastAPI app running in-process behind an in-memory
transport. The app is built once per process and shared; FastAPI is imported only here, on
first use, so the SDK stays a light HTTP client otherwise.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aioreid.platform.sdk.client import Client

IN_PROCESS_URL = "http://in-process"


@lru_cache(maxsize=1)
def _shared_transport() -> Any:
    from fastapi.testclient import TestClient

    from aioreid.platform.api.app import create_app

    return TestClient(create_app(), base_url=IN_PROCESS_URL)


def in_process_client(api_key: str) -> Client:
    """A client for ``api_key`` on the API served in this process (built on first use)."""
    return Client(api_key=api_key, http_client=_KeyedTransport(_shared_transport(), api_key))


class _KeyedTransport:
    """The shared in-process transport with one key on every request: clients of different
    keys share one app, so the key travels per request, never on the shared transport."""

    def __init__(self, http: Any, api_key: str) -> None:
        self._http = http
        self.headers = {"X-API-Key": api_key}

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        headers = {**kwargs.pop("headers", {}), **self.headers}
        return self._http.request(method, url, headers=headers, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def stream(self, method: str, url: str, **kwargs: Any) -> Any:
        headers = {**kwargs.pop("headers", {}), **self.headers}
        return self._http.stream(method, url, headers=headers, **kwargs)

    def close(self) -> None:  # the in-process app outlives one client
        pass
