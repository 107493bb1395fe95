"""How the console reaches the search API: over HTTP, or in-process for the embedded profile.

The console only ever talks to the API through the SDK. ``AIOREID_UI_API_URL`` selects a
running API; without it the console serves the same FastAPI app in its own process (the
embedded profile) through an in-memory transport, so `aioreid ui` works on a laptop alone.
"""

from __future__ import annotations

import os

from aioreid.platform.sdk import ApiError, Client, in_process_client

API_URL_ENV = "AIOREID_UI_API_URL"


def make_client(api_key: str) -> Client:
    """An SDK client for ``api_key`` (HTTP when AIOREID_UI_API_URL is set, else in-process)."""
    url = os.environ.get(API_URL_ENV)
    if url:
        return Client(url, api_key=api_key, timeout=120)
    return in_process_client(api_key)


def check_key(client: Client) -> str | None:
    """None when the key works, else a message for the login form."""
    try:
        client.stats()
    except ApiError as exc:
        if exc.status == 401:
            return "That API key is not valid (or was revoked)."
        return f"The API answered: {exc}"
    return None
