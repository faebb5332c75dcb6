"""versitygw (Apache-2.0 S3 server), built from its Go module, serving a posix folder on 127.0.0.1."""
from __future__ import annotations

import asyncio
import http.client
import os
import shutil
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
    spawn_detached,
    stop_pid,
    wait_until,
    write_pid,
)

# Not 1.7.0: its posix backend checks If-None-Match before publishing without a lock, so concurrent
# conditional puts of one key could all succeed (measured: 60 of 300 races had 2-11 winners, the last
# writer's body kept). 1.8.0 re-checks under a per-key publish lock (versity/versitygw#2288): 0 of 300.
VERSITYGW_VERSION = "1.8.0"
MODULE = f"github.com/versity/versitygw/cmd/versitygw@v{VERSITYGW_VERSION}"
EXE_NAME = "versitygw"
START_DEADLINE = 30.0
HEALTH_PATH = "/health"
BUILD_TIMEOUT = 1200.0


def _bin_dir(settings: Settings) -> Path:
    return settings.cache.resolve() / "versitygw" / "bin"


def _exe(settings: Settings) -> Path:
    return _bin_dir(settings) / EXE_NAME


def _marker(settings: Settings) -> Path:
    return settings.cache.resolve() / "versitygw" / f".complete-{VERSITYGW_VERSION}"


def _root(settings: Settings) -> Path:
    return settings.home.resolve() / "s3"  # absolute: versitygw compares its folders


def _data(settings: Settings) -> Path:
    return _root(settings) / "data"


def _versions(settings: Settings) -> Path:
    return _root(settings) / "versions"


def _iam(settings: Settings) -> Path:
    return _root(settings) / "iam"


def _pidfile(settings: Settings) -> Path:
    return _root(settings) / "versitygw.pid"


def _log(settings: Settings) -> Path:
    return _root(settings) / "versitygw.log"


def _running_cmdline(settings: Settings) -> Path:
    return _root(settings) / "versitygw.cmdline"


def _argv(settings: Settings) -> list[str]:
    """The server's command line (keys go in its environment). A running server with another one
    (an older build or other flags) is replaced on start."""
    return [
        str(_exe(settings)), "--port", f"127.0.0.1:{settings.s3_port}", "--iam-dir", str(_iam(settings)),
        "--health", HEALTH_PATH, "--quiet", "--keep-alive",
        "posix", "--versioning-dir", str(_versions(settings)), str(_data(settings)),
    ]


def _fingerprint(settings: Settings) -> str:
    return "\n".join([VERSITYGW_VERSION, *_argv(settings)]) + "\n"


def _go() -> str:
    go = shutil.which("go") or next(
        (p for p in ("/usr/local/go/bin/go", "/usr/lib/go/bin/go") if os.access(p, os.X_OK)), None
    )
    if go is None:
        raise StackError("go not found: versitygw is built from its Go module (install Go >= 1.25)")
    return go


async def ensure_binary(settings: Settings) -> Path:
    """`go install` versitygw into settings.cache/versitygw/bin once (marker file after success).

    Go's module and build caches stay at their defaults under $HOME, so another checkout of the
    project rebuilds from them in seconds.
    """
    exe = _exe(settings)
    if exe.exists() and _marker(settings).exists():
        return exe
    _bin_dir(settings).mkdir(parents=True, exist_ok=True)
    _marker(settings).unlink(missing_ok=True)
    await arun(
        ["env", "GOTOOLCHAIN=local", f"GOBIN={_bin_dir(settings)}", _go(), "install", MODULE],
        cwd=_bin_dir(settings), timeout=BUILD_TIMEOUT,
    )
    if not exe.exists():
        raise StackError(f"go install finished but {exe} is missing")
    _marker(settings).write_text(VERSITYGW_VERSION + "\n")
    return exe


def _pid(settings: Settings) -> int | None:
    return read_pid(_pidfile(settings))


def _answers(port: int, timeout: float = 1.0) -> bool:
    """The gateway's health endpoint answers 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", HEALTH_PATH)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def is_running(settings: Settings) -> bool:
    """Our versitygw process is alive and its health endpoint answers on settings.s3_port."""
    return pid_alive(_pid(settings), EXE_NAME) and _answers(settings.s3_port)


async def _start(settings: Settings) -> None:
    if _current(settings) and is_running(settings):
        return
    await ensure_binary(settings)  # before replacing an older build, which serves meanwhile
    if pid_alive(_pid(settings), EXE_NAME) and not _current(settings):
        await asyncio.to_thread(_stop, settings)
    if not pid_alive(_pid(settings), EXE_NAME):
        ensure_port_free(settings.s3_port, "versitygw")
        for d in (_data(settings), _versions(settings), _iam(settings)):
            d.mkdir(parents=True, exist_ok=True)
        pid = spawn_detached(
            _argv(settings), cwd=_root(settings), log=_log(settings),
            env={"ROOT_ACCESS_KEY": settings.s3_access_key, "ROOT_SECRET_KEY": settings.s3_secret_key},
        )
        write_pid(_pidfile(settings), pid)
        _running_cmdline(settings).write_text(_fingerprint(settings))
    await wait_until(
        lambda: _aanswers(settings.s3_port), what="versitygw", deadline=START_DEADLINE,
        logs=[_log(settings)], alive=lambda: pid_alive(_pid(settings), EXE_NAME), interval=0.1,
    )


async def _aanswers(port: int) -> bool:
    return await asyncio.to_thread(_answers, port)


def _current(settings: Settings) -> bool:
    try:
        return _running_cmdline(settings).read_text() == _fingerprint(settings)
    except OSError:
        return False


def _stop(settings: Settings) -> None:
    pid = _pid(settings)
    if pid_alive(pid, EXE_NAME):
        stop_pid(pid, grace=10)
    _pidfile(settings).unlink(missing_ok=True)
    _running_cmdline(settings).unlink(missing_ok=True)


def _lockfile(settings: Settings) -> Path:
    return settings.home / "s3.lock"


async def start(settings: Settings) -> None:
    """Build versitygw if needed, start it on 127.0.0.1:settings.s3_port and wait until it answers."""
    async with alocked(_lockfile(settings)):
        await _start(settings)


def stop(settings: Settings) -> None:
    """SIGTERM, up to 10 s, then SIGKILL."""
    with locked(_lockfile(settings)):
        _stop(settings)


def enabled(settings: Settings) -> bool:
    """The archive is configured to use this local versitygw (not "" = local folder, not another S3)."""
    return settings.s3_endpoint == f"http://127.0.0.1:{settings.s3_port}"
