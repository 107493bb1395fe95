"""Object storage: one interface, a local-folder store and a MinIO/S3 store; content-addressed keys."""  # noqa: E501

from aioreid.platform.storage.base import (
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectTooLarge,
    StorageError,
    StorageUnavailable,
    content_key,
    sha256_file,
    validate_key,
)
from aioreid.platform.storage.factory import build_store
from aioreid.platform.storage.local import LocalObjectStore, sign, verify_signature
from aioreid.platform.storage.minio_store import MinioObjectStore

__all__ = [
    "InvalidKey",
    "LocalObjectStore",
    "MinioObjectStore",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectTooLarge",
    "StorageError",
    "StorageUnavailable",
    "build_store",
    "content_key",
    "sha256_file",
    "sign",
    "validate_key",
    "verify_signature",
]
