"""Object storage: one behavioural suite run against the local folder store and against the
MinIO store talking to moto's S3 server, started in-process on 127.0.0.1."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import socket
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from aioreid.platform.config import Settings
from aioreid.platform.storage import (
    InvalidKey,
    LocalObjectStore,
    MinioObjectStore,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    StorageUnavailable,
    build_store,
    content_key,
    sha256_file,
    sign,
    verify_signature,
)
from aioreid.platform.storage.base import link_bucket_s

SIGNING_KEY = b"test-signing-key"
KEY_RE = re.compile(r"(?P<kind>[a-z0-9_-]+)/(?P<two>[0-9a-f]{2})/(?P<sha>[0-9a-f]{64})(?P<ext>.*)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free local port; its state is reset when the module ends."""
    from moto.server import ThreadedMotoServer

    env = pytest.MonkeyPatch()
    env.setenv("AWS_ACCESS_KEY_ID", "testing")
    env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    env.setenv("AWS_DEFAULT_REGION", "us-east-1")
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        reset = urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST")
        urllib.request.urlopen(reset, timeout=5).close()
        server.stop()
        env.undo()


def _minio(endpoint: str, **kwargs: object) -> MinioObjectStore:
    bucket = f"t-{uuid.uuid4().hex[:16]}"
    return MinioObjectStore(endpoint, "testing", "testing", bucket, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(params=["local", "minio"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield LocalObjectStore(tmp_path / "objects", SIGNING_KEY)
        return
    s3 = _minio(request.getfixturevalue("s3_endpoint"))
    yield s3
    s3.delete_many(list(s3.iter_keys()))
    s3._client.remove_bucket(bucket_name=s3.bucket)


def _count_uploads(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every object the backend really writes (local: renames into root; S3: PUTs)."""
    written: list[str] = []
    if isinstance(store, MinioObjectStore):
        real_put = store._client.put_object

        def put_object(**kwargs: object) -> object:
            written.append(str(kwargs["object_name"]))
            return real_put(**kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(store._client, "put_object", put_object)
    else:
        assert isinstance(store, LocalObjectStore)
        real_replace = os.replace

        def replace(src: str, dst: str | Path) -> None:
            written.append(Path(dst).relative_to(store.root).as_posix())
            real_replace(src, dst)

        monkeypatch.setattr(os, "replace", replace)
    return written


def _leftover_temp_files(store: ObjectStore) -> list[Path]:
    return list((store.root / ".tmp").iterdir()) if isinstance(store, LocalObjectStore) else []


# --- round trip and content addressing ---------------------------------------------------------


def test_round_trip_and_content_key(store: ObjectStore, tmp_path: Path) -> None:
    data = b"\xff\xd8 not really a jpeg \x00\x01"
    key = store.put_bytes(data, kind="media", ext=".jpg", content_type="image/jpeg")
    sha = hashlib.sha256(data).hexdigest()
    assert key == f"media/{sha[:2]}/{sha}.jpg" == content_key(data, "media", ".jpg")
    assert store.get_bytes(key) == data
    assert store.exists(key)
    info = store.stat(key)
    assert (info.key, info.size, info.content_type) == (key, len(data), "image/jpeg")
    out = store.download_to(key, tmp_path / "copy.jpg")
    assert out.read_bytes() == data


def test_empty_object_round_trips(store: ObjectStore) -> None:
    key = store.put_bytes(b"")
    assert key.startswith("blob/e3/e3b0c442")
    assert store.get_bytes(key) == b""
    assert store.stat(key).size == 0


def test_same_bytes_are_uploaded_once(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    written = _count_uploads(store, monkeypatch)
    data = os.urandom(2048)
    first = store.put_bytes(data, kind="crops", ext=".png")
    second = store.put_bytes(data, kind="crops", ext=".PNG")  # extension case does not matter
    assert first == second
    assert written == [first]
    other_kind = store.put_bytes(data, kind="media", ext=".png")
    assert other_kind != first and written == [first, other_kind]
    assert store.get_bytes(first) == data


def test_put_file_streams_large_files(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "Clip.PNG"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several 1 MiB read chunks
    sha = sha256_file(path)
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    key = store.put_file(path, kind="media")
    assert key == f"media/{sha[:2]}/{sha}.png"
    assert store.get_bytes(key) == path.read_bytes()
    assert store.stat(key).content_type == "image/png"

    written = _count_uploads(store, monkeypatch)
    assert store.put_file(path, kind="media") == key
    assert store.put_bytes(path.read_bytes(), kind="media", ext=".png") == key
    assert written == []


def test_put_file_extension_and_content_type_rules(store: ObjectStore, tmp_path: Path) -> None:
    odd = tmp_path / "frame.jpg~"
    odd.write_bytes(b"backup")
    key = store.put_file(odd, kind="media")
    assert KEY_RE.fullmatch(key) and KEY_RE.fullmatch(key)["ext"] == ""  # type: ignore[index]
    bare = tmp_path / "README"
    bare.write_bytes(b"plain")
    key = store.put_file(bare, kind="docs", content_type="text/plain")
    assert store.stat(key).content_type in {"text/plain", "application/octet-stream"}
    with pytest.raises(FileNotFoundError, match=r"missing\.bin"):
        store.put_file(tmp_path / "missing.bin", kind="media")
    with pytest.raises(InvalidKey, match="kind"):
        store.put_file(bare, kind="Docs")


def test_put_bytes_rejects_non_bytes(store: ObjectStore) -> None:
    with pytest.raises(TypeError, match="str"):
        store.put_bytes("text is not bytes")  # type: ignore[arg-type]
    assert list(store.iter_keys()) == []


# --- exists / delete / listing ------------------------------------------------------------------


def test_exists_delete_and_delete_many(store: ObjectStore) -> None:
    keys = [store.put_bytes(f"object {i}".encode(), kind="media") for i in range(4)]
    store.delete(keys[0])
    assert not store.exists(keys[0])
    store.delete(keys[0])  # already gone: not an error
    store.delete("media/00/never-stored")
    store.delete_many([keys[1], keys[2], "media/00/never-stored"])
    assert [store.exists(k) for k in keys] == [False, False, False, True]
    store.delete_many([])
    assert store.get_bytes(keys[3]) == b"object 3"


def test_delete_many_validates_every_key_before_deleting(store: ObjectStore) -> None:
    keep = [store.put_bytes(f"keep {i}".encode()) for i in range(2)]
    with pytest.raises(InvalidKey):
        store.delete_many([keep[0], "../etc/passwd", keep[1]])
    assert all(store.exists(k) for k in keep)


def test_iter_keys_with_prefix(store: ObjectStore) -> None:
    media = sorted(store.put_bytes(f"m{i}".encode(), kind="media", ext=".jpg") for i in range(5))
    crops = sorted(store.put_bytes(f"c{i}".encode(), kind="crops") for i in range(3))
    lookalike = store.put_bytes(b"x", kind="media-x")
    assert sorted(store.iter_keys()) == sorted([*media, *crops, lookalike])
    assert sorted(store.iter_keys("media/")) == media
    assert sorted(store.iter_keys("media")) == sorted([*media, lookalike])
    assert sorted(store.iter_keys("crops")) == crops
    two = media[0].split("/")[1]
    assert sorted(store.iter_keys(f"media/{two}/")) == [k for k in media if f"/{two}/" in k]
    assert list(store.iter_keys(media[0][:-3])) == [media[0]]
    assert list(store.iter_keys("nothing/")) == []


# --- errors -------------------------------------------------------------------------------------


def test_missing_key_raises_object_not_found_naming_it(store: ObjectStore, tmp_path: Path) -> None:
    key = "media/ab/" + "ab" * 32 + ".jpg"
    assert not store.exists(key)
    for call in (
        lambda: store.get_bytes(key),
        lambda: store.stat(key),
        lambda: store.download_to(key, tmp_path / "out"),
    ):
        with pytest.raises(ObjectNotFound) as info:
            call()
        assert key in str(info.value) and info.value.key == key
        assert isinstance(info.value, KeyError)
    assert not (tmp_path / "out").exists()
    store.put_bytes(b"a", kind="media")
    with pytest.raises(ObjectNotFound):  # a "folder" is not an object
        store.get_bytes("media/" + content_key(b"a", "media").split("/")[1])


BAD_KEYS = [
    "",
    "../etc/passwd",
    "media/../../x",
    "/etc/passwd",
    "media\\ab\\x",
    "media//x",
    "media/x/",
    ".tmp/put-1",
    "media/\x00x",
    "k" * 1025,
]


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_invalid_keys_are_refused(store: ObjectStore, bad: str, tmp_path: Path) -> None:
    kept = store.put_bytes(b"precious")
    calls: list[Callable[[], object]] = [
        lambda: store.get_bytes(bad),
        lambda: store.exists(bad),
        lambda: store.stat(bad),
        lambda: store.delete(bad),
        lambda: store.presigned_url(bad),
        lambda: store.download_to(bad, tmp_path / "out"),
    ]
    for call in calls:
        with pytest.raises(InvalidKey):
            call()
    assert store.get_bytes(kept) == b"precious"


def test_invalid_kind_ext_and_prefix_are_refused(store: ObjectStore) -> None:
    for kind in ("", "Media", "../x", "a/b", "media "):
        with pytest.raises(InvalidKey, match="kind"):
            store.put_bytes(b"x", kind=kind)
    for ext in ("jpg", ".j/pg", "./x", ".jp g", ".toolongextension12"):
        with pytest.raises(InvalidKey, match="extension"):
            store.put_bytes(b"x", ext=ext)
    for prefix in ("../", "/abs", "a\\b", "a//"):
        with pytest.raises(InvalidKey):
            list(store.iter_keys(prefix))
    assert list(store.iter_keys()) == []


def test_presigned_url_rejects_non_positive_expiry(store: ObjectStore) -> None:
    key = store.put_bytes(b"x")
    for seconds in (0, -5):
        with pytest.raises(ValueError, match="positive"):
            store.presigned_url(key, expires_s=seconds)
    if isinstance(store, MinioObjectStore):  # S3 signatures last at most 7 days
        with pytest.raises(ValueError, match="7 days"):
            store.presigned_url(key, expires_s=8 * 24 * 3600)


# --- failures never lose stored objects ---------------------------------------------------------


def test_file_changed_during_put_stores_nothing_and_keeps_the_rest(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = store.put_bytes(b"stored before", kind="media")
    path = tmp_path / "growing.bin"
    original = os.urandom(6 * 1024 * 1024 + 5)  # over 5 MiB: S3 takes it as a multipart upload
    path.write_bytes(original)
    real_exists = store.exists

    def exists_then_edit(key: str) -> bool:  # runs between hashing and uploading
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        return real_exists(key)

    monkeypatch.setattr(store, "exists", exists_then_edit)
    with pytest.raises(StorageError, match="changed while"):
        store.put_file(path, kind="media")
    monkeypatch.undo()
    assert not store.exists(content_key(original, "media", ".bin"))
    assert list(store.iter_keys()) == [old]
    assert store.get_bytes(old) == b"stored before"
    assert _leftover_temp_files(store) == []


def test_local_write_failure_leaves_no_partial_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalObjectStore(tmp_path / "objects", SIGNING_KEY)
    old = store.put_bytes(b"stored before")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(StorageError, match="No space left"):
        store.put_bytes(b"new object" * 1000)
    monkeypatch.undo()
    assert list(store.iter_keys()) == [old]
    assert not store.exists(content_key(b"new object" * 1000))
    assert store.get_bytes(old) == b"stored before"
    assert _leftover_temp_files(store) == []


def test_local_concurrent_puts_of_same_bytes(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects", SIGNING_KEY)
    data = os.urandom(256 * 1024)
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: store.put_bytes(data, kind="media"), range(16)))
    assert keys == {content_key(data, "media")}
    assert store.get_bytes(keys.pop()) == data
    assert _leftover_temp_files(store) == []


# --- presigned URLs -----------------------------------------------------------------------------


def test_minio_presigned_url_downloads_the_object(s3_endpoint: str) -> None:
    store = _minio(s3_endpoint)
    data = os.urandom(1000)
    key = store.put_bytes(data, kind="media", ext=".jpg", content_type="image/jpeg")
    url = store.presigned_url(key, expires_s=60)
    assert url.startswith(f"http://{s3_endpoint}/{store.bucket}/media/")
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.read() == data
    unsigned = url.split("?")[0]
    with pytest.raises(urllib.request.HTTPError):
        urllib.request.urlopen(unsigned.replace(key, key[:-4] + ".png"), timeout=5)
    store.delete(key)


def test_local_presigned_url_signature(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects", SIGNING_KEY, presign_seconds=120)
    key = store.put_bytes(b"frame", kind="media", ext=".jpg")
    before = int(time.time())
    url = urlsplit(store.presigned_url(key))
    assert url.path.startswith("/v1/objects/")
    got_key = unquote(url.path.removeprefix("/v1/objects/"))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    expires, signature = query["expires"], query["signature"]
    assert got_key == key
    # At least the lifetime, rounded up to a bucket (30 s for 120 s) so links are stable.
    assert before + 120 <= int(expires) <= int(time.time()) + 120 + link_bucket_s(120)
    assert int(expires) % link_bucket_s(120) == 0
    assert verify_signature(key, expires, signature, SIGNING_KEY)
    tampered = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert not verify_signature(key, expires, tampered, SIGNING_KEY)
    assert not verify_signature(key, expires, signature, b"another-key")
    assert not verify_signature(key, int(expires) + 60, signature, SIGNING_KEY)
    assert not verify_signature(content_key(b"other"), expires, signature, SIGNING_KEY)
    assert not verify_signature(key, expires, signature, SIGNING_KEY, now=int(expires) + 1)
    assert not verify_signature(key, "soon", signature, SIGNING_KEY)
    assert not verify_signature("../" + key, expires, signature, SIGNING_KEY)
    assert not verify_signature(key, expires, "é" * 64, SIGNING_KEY)
    # Signed right but claiming to live for years: refused (a leaked key cannot mint links
    # that outlive their rotation).
    forever = int(time.time()) + 10**9
    assert not verify_signature(key, forever, sign(key, forever, SIGNING_KEY), SIGNING_KEY)
    week = int(time.time()) + 7 * 24 * 3600 - 60
    assert verify_signature(key, week, sign(key, week, SIGNING_KEY), SIGNING_KEY)
    short = urlsplit(store.presigned_url(key, expires_s=5))
    assert int(parse_qs(short.query)["expires"][0]) <= int(time.time()) + 5 + link_bucket_s(5)


def test_local_store_refuses_empty_signing_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="signing_key"):
        LocalObjectStore(tmp_path, b"")


# --- availability -------------------------------------------------------------------------------


def test_unreachable_minio_raises_storage_unavailable_quickly() -> None:
    endpoint = f"127.0.0.1:{_free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match=endpoint):
        MinioObjectStore(endpoint, "a", "b", "bucket")
    store = MinioObjectStore(endpoint, "a", "b", "bucket", create_bucket=False)
    for call in (
        store.ping,
        lambda: store.put_bytes(b"x"),
        lambda: store.get_bytes("blob/00/x"),
        lambda: store.exists("blob/00/x"),
        lambda: list(store.iter_keys()),
    ):
        with pytest.raises(StorageUnavailable):
            call()
    assert time.monotonic() - started < 10


def test_ping(store: ObjectStore, s3_endpoint: str, tmp_path: Path) -> None:
    store.ping()
    if isinstance(store, LocalObjectStore):
        gone = LocalObjectStore(tmp_path / "gone", SIGNING_KEY)
        (gone.root / ".tmp").rmdir()
        gone.root.rmdir()
        with pytest.raises(StorageUnavailable, match="does not exist"):
            gone.ping()
        (tmp_path / "a-file").write_bytes(b"")
        with pytest.raises(StorageUnavailable):
            LocalObjectStore(tmp_path / "a-file", SIGNING_KEY)
    else:
        missing = MinioObjectStore(s3_endpoint, "testing", "testing", "absent", create_bucket=False)
        with pytest.raises(StorageUnavailable, match="absent"):
            missing.ping()
        with pytest.raises(StorageError, match="absent"):
            missing.put_bytes(b"x")


# --- factory ------------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AIOREID_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_build_store_local(clean_env: None, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", storage={"signing_key": "k1", "presign_seconds": 9})
    store = build_store(settings)
    assert isinstance(store, LocalObjectStore)
    key = store.put_bytes(b"hello", kind="media")
    assert (tmp_path / "home" / "objects" / key).read_bytes() == b"hello"
    query = parse_qs(urlsplit(store.presigned_url(key)).query)
    expires, signature = query["expires"][0], query["signature"][0]
    assert int(expires) <= time.time() + 9 + link_bucket_s(9)
    assert verify_signature(key, expires, signature, b"k1")
    assert Settings().storage.signing_key.get_secret_value()  # embedded default exists


def test_build_store_minio(clean_env: None, s3_endpoint: str) -> None:
    bucket = f"f-{uuid.uuid4().hex[:12]}"
    settings = Settings(
        storage={
            "backend": "minio",
            "endpoint": s3_endpoint,
            "bucket": bucket,
            "access_key": "testing",
            "secret_key": "testing",
        }
    )
    store = build_store(settings)
    assert isinstance(store, MinioObjectStore) and store.bucket == bucket
    store.ping()
    key = store.put_bytes(b"hello")
    assert store.get_bytes(key) == b"hello"
    store.delete(key)
    assert "testing" not in repr(store)


def test_put_stream_stores_a_file_object_and_refuses_one_over_the_limit(
    store: ObjectStore,
) -> None:
    import io

    from aioreid.platform.storage import ObjectTooLarge

    data = os.urandom(3 * (1 << 20) + 17)  # more than one chunk
    key, size = store.put_stream(io.BytesIO(data), kind="media", ext=".mp4")
    assert size == len(data) and store.get_bytes(key) == data
    assert (
        key
        == f"media/{hashlib.sha256(data).hexdigest()[:2]}/{hashlib.sha256(data).hexdigest()}.mp4"
    )
    other = os.urandom(2 << 20)
    with pytest.raises(ObjectTooLarge, match="limit"):
        store.put_stream(io.BytesIO(other), kind="media", source="big.bin", max_bytes=1 << 20)
    assert not any(hashlib.sha256(other).hexdigest() in k for k in store.iter_keys("media/"))
