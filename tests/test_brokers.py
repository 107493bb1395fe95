"""A missing broker skips the worker tests, or fails them under AIOREID_TEST_REQUIRE_BROKERS=1,
which `make test` sets: on a machine that runs Redis and RabbitMQ a silent skip would hide
that the worker and fault tests never ran."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from brokers import REQUIRE_ENV, require_rabbitmq, require_redis

ROOT = Path(__file__).resolve().parents[1]


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unreachable(port: int) -> list[tuple[Callable[[str], None], str]]:
    return [
        (require_redis, f"redis://127.0.0.1:{port}/0"),
        (require_rabbitmq, f"amqp://guest:guest@127.0.0.1:{port}//"),
    ]


def test_a_missing_broker_fails_when_brokers_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "1")
    port = _closed_port()
    for require, url in _unreachable(port):
        with pytest.raises(pytest.fail.Exception, match=REQUIRE_ENV) as failed:
            require(url)
        assert f"127.0.0.1:{port}" in str(failed.value)  # says which broker is missing


def test_a_missing_broker_skips_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    for require, url in _unreachable(_closed_port()):
        with pytest.raises(pytest.skip.Exception, match="not reachable"):
            require(url)


def test_make_test_requires_the_brokers() -> None:
    makefile = (ROOT / "Makefile").read_text()
    target = re.search(r"^test:.*?(?=^\S)", makefile, re.M | re.S)
    assert target is not None
    assert f"{REQUIRE_ENV}=1" in target.group(0)
