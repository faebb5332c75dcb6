"""Redis from the Debian package: a daemonized redis-server on 127.0.0.1, password required, no persistence."""
from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path

from shared.config import Settings
from shared.stack.process import (
    StackError,
    alocked,
    arun,
    ensure_port_free,
    locked,
    pid_alive,
    read_pid,
    stop_pid,
    wait_exit,
    wait_until,
)

START_DEADLINE = 30.0


def _root(settings: Settings) -> Path:
    return settings.home / "redis"


def _pidfile(settings: Settings) -> Path:
    return _root(settings) / "redis.pid"


def _log(settings: Settings) -> Path:
    return _root(settings) / "redis.log"


def _command(settings: Settings, command: bytes, timeout: float = 1.0) -> bytes:
    """AUTH, then `command` (inline protocol); the reply to `command`, the AUTH reply dropped."""
    auth = b"AUTH " + settings.redis_password.encode()
    with socket.create_connection(("127.0.0.1", settings.redis_port), timeout=timeout) as s:
        s.sendall(auth + b"\r\n" + command + b"\r\n")
        reply = b""
        while reply.count(b"\r\n") < 2:
            chunk = s.recv(256)
            if not chunk:
                break
            reply += chunk
        return reply.split(b"\r\n", 1)[1] if b"\r\n" in reply else reply


def _ping(settings: Settings) -> bool:
    try:
        return _command(settings, b"PING").startswith(b"+PONG")
    except OSError:
        return False


def is_running(settings: Settings) -> bool:
    """Our redis-server is alive and answers PING with our password."""
    return pid_alive(read_pid(_pidfile(settings)), "redis-server") and _ping(settings)


async def _start(settings: Settings) -> None:
    if is_running(settings):
        # A server started before passwords answers PING after a failed AUTH: require the password now.
        _command(settings, b"CONFIG SET requirepass " + settings.redis_password.encode())
        return
    exe = shutil.which("redis-server")
    if exe is None:
        raise StackError("redis-server not found (run ./spice.sh)")
    ensure_port_free(settings.redis_port, "Redis")
    _root(settings).mkdir(parents=True, exist_ok=True)
    _pidfile(settings).unlink(missing_ok=True)  # stale: its pid is dead (or a zombie)
    # The password goes in a file only root can read, not on a command line every local user can list.
    conf = _root(settings) / "redis.conf"
    conf.touch(mode=0o600)
    conf.chmod(0o600)
    conf.write_text("".join(f"{key} {value}\n" for key, value in (
        ("port", settings.redis_port), ("bind", "127.0.0.1"), ("save", '""'), ("appendonly", "no"),
        ("daemonize", "yes"), ("pidfile", _pidfile(settings)), ("logfile", _log(settings)),
        ("dir", _root(settings)), ("requirepass", settings.redis_password),
    )))
    await arun([exe, conf], timeout=30)

    def alive() -> bool:
        pid = read_pid(_pidfile(settings))
        return pid is None or pid_alive(pid)

    await wait_until(
        lambda: asyncio.to_thread(is_running, settings), what="Redis", deadline=START_DEADLINE,
        logs=[_log(settings)], alive=alive,
    )


def _stop(settings: Settings) -> None:
    pid = read_pid(_pidfile(settings))
    if not pid_alive(pid, "redis-server"):
        return
    assert pid is not None
    try:
        _command(settings, b"SHUTDOWN NOSAVE")
    except OSError:
        pass
    if not wait_exit(pid, 10):
        stop_pid(pid, grace=10)
    _pidfile(settings).unlink(missing_ok=True)


def _lockfile(settings: Settings) -> Path:
    return settings.home / "redis.lock"


async def start(settings: Settings) -> None:
    """Start redis-server on settings.redis_port unless it already answers."""
    async with alocked(_lockfile(settings)):
        await _start(settings)


def stop(settings: Settings) -> None:
    """SHUTDOWN NOSAVE, then SIGTERM/SIGKILL if it lingers."""
    with locked(_lockfile(settings)):
        _stop(settings)
