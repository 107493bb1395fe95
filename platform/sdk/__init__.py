"""Typed Python SDK for the search API."""
