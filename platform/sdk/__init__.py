"""Typed Python SDK for the search API."""

from aioreid.platform.sdk.client import ApiError, Client

__all__ = ["ApiError", "Client"]
