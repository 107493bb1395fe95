"""An S3 object store (MinIO, or anything speaking S3) through the ``minio`` client.

The HTTP pool gets a short connect timeout and one retry, so an unreachable endpoint fails in
seconds with :class:`StorageUnavailable` instead of minio's default minutes of retrying.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import certifi
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError

from aioreid.platform.storage.base import (
    DEFAULT_CONTENT_TYPE,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    StorageUnavailable,
    VerifyingReader,
    link_bucket_s,
    validate_key,
    validate_prefix,
)

MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the S3 limit
_AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


class MinioObjectStore(ObjectStore):
    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str = "us-east-1",
        create_bucket: bool = True,
        *,
        presign_seconds: int = 3600,
        timeout_s: float = 3.0,
        retries: int = 1,
    ) -> None:
        """Connects lazily, except that ``create_bucket`` makes the bucket now if it is missing
        (raising :class:`StorageUnavailable` when the endpoint cannot be reached)."""
        if not 0 < presign_seconds <= MAX_PRESIGN_SECONDS:
            raise ValueError(
                f"presign_seconds must be positive and at most {MAX_PRESIGN_SECONDS} (7 days)"
            )
        self.endpoint = endpoint
        self.bucket = bucket
        self._presign_seconds = presign_seconds
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout_s, read=max(30.0, 10 * timeout_s)),
            retries=urllib3.Retry(
                total=retries, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)
            ),
            maxsize=10,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        )
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        if create_bucket:
            self._ensure_bucket(region)

    def __repr__(self) -> str:
        return f"MinioObjectStore(endpoint={self.endpoint!r}, bucket={self.bucket!r})"

    @contextmanager
    def _mapped(self, key: str | None = None) -> Iterator[None]:
        """Translate minio/urllib3 errors into this package's exceptions."""
        try:
            yield
        except S3Error as exc:
            if exc.code == "NoSuchKey" and key is not None:
                raise ObjectNotFound(key) from exc
            if exc.code == "NoSuchBucket":
                raise StorageError(
                    f"bucket {self.bucket!r} does not exist at {self.endpoint}"
                ) from exc
            if exc.code in _AUTH_CODES:
                raise StorageError(
                    f"{self.endpoint} refused the credentials for bucket {self.bucket!r} "
                    f"({exc.code})"
                ) from exc
            raise StorageError(f"S3 error {exc.code} for {key or self.bucket!r}: {exc}") from exc
        except (ServerError, InvalidResponseError) as exc:
            raise StorageUnavailable(f"{self.endpoint} is not answering as S3: {exc}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise StorageUnavailable(f"cannot reach object store {self.endpoint}: {exc}") from exc

    def _ensure_bucket(self, region: str) -> None:
        with self._mapped():
            if self._client.bucket_exists(bucket_name=self.bucket):
                return
            try:
                self._client.make_bucket(bucket_name=self.bucket, location=region)
            except S3Error as exc:  # someone else made it in between
                if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise

    def _write_bytes(self, key: str, data: bytes, content_type: str) -> None:
        with self._mapped(key):
            self._client.put_object(
                bucket_name=self.bucket,
                object_name=key,
                data=io.BytesIO(data),
                length=len(data),
                content_type=content_type or DEFAULT_CONTENT_TYPE,
            )

    def _write_stream(self, key: str, reader: VerifyingReader, size: int, ctype: str) -> None:
        # minio aborts a multipart upload when reading a part raises, so a file that changed
        # while uploading leaves no object behind.
        with self._mapped(key):
            self._client.put_object(
                bucket_name=self.bucket,
                object_name=key,
                data=reader,  # type: ignore[arg-type]
                length=size,
                content_type=ctype,
            )

    def get_bytes(self, key: str) -> bytes:
        validate_key(key)
        with self._mapped(key):
            response = self._client.get_object(bucket_name=self.bucket, object_name=key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def download_to(self, key: str, path: str | Path) -> Path:
        validate_key(key)
        path = Path(path)
        with self._mapped(key):
            self._client.fget_object(bucket_name=self.bucket, object_name=key, file_path=str(path))
        return path

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        with self._mapped(key):
            obj = self._client.stat_object(bucket_name=self.bucket, object_name=key)
        return ObjectInfo(key, int(obj.size or 0), obj.content_type or DEFAULT_CONTENT_TYPE)

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._mapped(key):
            self._client.remove_object(bucket_name=self.bucket, object_name=key)

    def delete_many(self, keys: Iterable[str]) -> None:
        """One multi-object delete request per 1000 keys; missing keys are ignored."""
        batch = [DeleteObject(validate_key(k)) for k in keys]
        with self._mapped():
            errors = [
                err
                for err in self._client.remove_objects(
                    bucket_name=self.bucket, delete_object_list=batch
                )
                if err.code != "NoSuchKey"
            ]
        if errors:
            names = ", ".join(f"{e.name} ({e.code})" for e in errors[:5])
            raise StorageError(f"could not delete {len(errors)} object(s): {names}")

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)
        with self._mapped():
            for obj in self._client.list_objects(
                bucket_name=self.bucket, prefix=prefix or None, recursive=True
            ):
                if not obj.is_dir and obj.object_name:
                    yield obj.object_name

    def presigned_url(self, key: str, expires_s: int | None = None) -> str:
        validate_key(key)
        seconds = self._presign_seconds if expires_s is None else expires_s
        if not 0 < seconds <= MAX_PRESIGN_SECONDS:
            raise ValueError(
                f"expires_s must be positive and at most {MAX_PRESIGN_SECONDS} (7 days), "
                f"got {seconds}"
            )
        # Signed as of the start of the current bucket (SigV4's X-Amz-Date) and valid one
        # bucket longer, so every link made within a bucket is the same URL and still lives at
        # least ``seconds`` (within S3's 7-day cap).
        bucket = link_bucket_s(seconds)
        now = int(time.time())
        signed_at = datetime.fromtimestamp(now - now % bucket, timezone.utc)
        lifetime = min(seconds + bucket, MAX_PRESIGN_SECONDS)
        with self._mapped(key):
            return self._client.presigned_get_object(
                bucket_name=self.bucket,
                object_name=key,
                expires=timedelta(seconds=lifetime),
                request_date=signed_at,
            )

    def ping(self) -> None:
        with self._mapped():
            found = self._client.bucket_exists(bucket_name=self.bucket)
        if not found:
            raise StorageUnavailable(f"bucket {self.bucket!r} does not exist at {self.endpoint}")
