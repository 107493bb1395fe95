"""Collection and alias names: one collection per encoder version, names safe for Qdrant
servers and for folder names (the edge backend stores a collection per sub-folder)."""

from __future__ import annotations

import hashlib
import re

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_UNSAFE = re.compile(r"[^a-z0-9_-]+")
_MAX_SLUG = 80


def is_valid_name(name: object) -> bool:
    return isinstance(name, str) and _NAME.match(name) is not None


def check_name(name: str, what: str = "collection") -> str:
    """``name`` when it is a valid collection/alias name, else ValueError."""
    if not is_valid_name(name):
        raise ValueError(
            f"invalid {what} name {name!r}: use 1-128 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def collection_name(prefix: str, version: str) -> str:
    """``{prefix}-{slug}-{hash8}`` for an encoder version such as ``minilm-l6@1a2b+9f8e``.

    The slug keeps the name readable; the hash of the exact version string keeps two versions
    whose slugs coincide (``a@b`` and ``a+b``) in different collections.
    """
    if not isinstance(version, str) or not version.strip():
        raise ValueError("encoder version must be a non-empty string")
    slug = _UNSAFE.sub("_", version.strip().lower()).strip("_-")[:_MAX_SLUG] or "v"
    digest = hashlib.sha256(version.encode()).hexdigest()[:8]
    return check_name(f"{check_name(prefix, 'prefix')}-{slug}-{digest}")
