"""The message brokers the worker tests need: Redis and RabbitMQ.

As tests/pg.py does for PostgreSQL: a broker that does not answer skips the calling test, or
fails it when ``AIOREID_TEST_REQUIRE_BROKERS=1`` (``make test`` sets it: on a machine that
runs the brokers, a worker test that silently skips hides a broken run).
"""

from __future__ import annotations

import os

import pytest

REQUIRE_ENV = "AIOREID_TEST_REQUIRE_BROKERS"


def redis_available(url: str) -> str | None:
    """None when Redis answers a PING at ``url``, else why not."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        return f"Redis not reachable at {url}: {exc}"
    return None


def rabbitmq_available(url: str) -> str | None:
    """None when an AMQP broker accepts a connection at ``url``, else why not."""
    import kombu

    try:
        with kombu.Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0)
    except Exception as exc:  # kombu raises the transport's own errors
        return f"RabbitMQ not reachable at {url}: {exc}"
    return None


def require_broker(why: str | None) -> None:
    """Skip the calling test when ``why`` says a broker is missing (fail when
    AIOREID_TEST_REQUIRE_BROKERS=1); nothing when ``why`` is None."""
    if why is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{why} ({REQUIRE_ENV}=1: a missing broker fails the run)")
    pytest.skip(why)


def require_redis(url: str) -> None:
    require_broker(redis_available(url))


def require_rabbitmq(url: str) -> None:
    require_broker(rabbitmq_available(url))
