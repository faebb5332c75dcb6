"""The local PostgreSQL and Redis refuse whoever lacks the stack's password; the processes have it."""
from __future__ import annotations

import asyncpg
import pytest
import redis.asyncio as aioredis
import redis.exceptions

from shared.config import Settings
from tests.stack import Stack


@pytest.mark.parametrize("user", ["spice", "postgres"])
async def test_postgres_refuses_a_tcp_login_without_the_password(settings: Settings, stack: Stack,
                                                                  user: str) -> None:
    for password in (None, "wrong-password"):
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(host="127.0.0.1", port=settings.pg_port, user=user, password=password,
                                  database=settings.pg_database, timeout=5)
    conn = await asyncpg.connect(settings.pg_dsn, timeout=5)
    try:
        assert await conn.fetchval("SELECT current_user") == settings.pg_user
    finally:
        await conn.close()


async def test_redis_refuses_a_client_without_the_password(settings: Settings, stack: Stack) -> None:
    anonymous = aioredis.Redis(host="127.0.0.1", port=settings.redis_port, socket_timeout=2)
    wrong = aioredis.Redis(host="127.0.0.1", port=settings.redis_port, password="wrong", socket_timeout=2)
    right = aioredis.Redis.from_url(settings.redis_url, socket_timeout=2)
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            await anonymous.ping()
        with pytest.raises(redis.exceptions.AuthenticationError):
            await wrong.ping()
        with pytest.raises(redis.exceptions.AuthenticationError):
            await anonymous.publish(f"{settings.namespace}-status", "forged")
        assert await right.ping() is True
    finally:
        for client in (anonymous, wrong, right):
            await client.aclose()


def test_the_passwords_are_derived_per_service_and_kept_off_the_command_line(settings: Settings) -> None:
    """Derived from home/secret, not from the token secret the processes of one test run share."""
    assert len(settings.pg_password) == 32 and len(settings.redis_password) == 32
    assert settings.pg_password != settings.redis_password
    assert settings.signing_secret not in (settings.pg_password, settings.redis_password)
    conf = settings.home / "redis" / "redis.conf"
    assert conf.stat().st_mode & 0o077 == 0
    pid = (settings.home / "redis" / "redis.pid").read_text().strip()
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        assert settings.redis_password.encode() not in cmdline.read()
