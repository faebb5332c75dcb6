"""PostgreSQL from the Debian binaries: a private cluster under settings.home/pg, run as the postgres user."""
from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import signal
import time
from pathlib import Path

import asyncpg

from shared.config import Settings
from shared.stack.process import (
    StackError,
    alocked,
    arun,
    ensure_port_free,
    excerpt,
    locked,
    pid_alive,
    port_open,
    read_pid,
    run,
    stop_pid,
    wait_until,
)

OS_USER = "postgres"
START_DEADLINE = 60.0


def bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb."""
    root = Path("/usr/lib/postgresql")
    found = [d for d in root.glob("*/bin") if (d / "initdb").exists()] if root.exists() else []
    if not found:
        raise StackError("PostgreSQL binaries not found under /usr/lib/postgresql (run ./spice.sh)")
    return max(found, key=lambda d: [int(x) for x in re.findall(r"\d+", d.parent.name)] or [0])


def _root(settings: Settings) -> Path:
    return settings.home / "pg"


def _data(settings: Settings) -> Path:
    return _root(settings) / "data"


def _log(settings: Settings) -> Path:
    return _root(settings) / "postgres.log"


def _socket_dir(settings: Settings) -> Path:
    """Unix sockets live next to the data unless the path is too long for a socket name."""
    d = _root(settings) / "run"
    return d if len(str(d)) < 80 else Path("/tmp")


def _quote(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _pid(settings: Settings) -> int | None:
    return read_pid(_data(settings) / "postmaster.pid")


def is_running(settings: Settings) -> bool:
    """The cluster's postmaster is alive and its port accepts connections."""
    return pid_alive(_pid(settings), "postgres") and port_open(settings.pg_port)


async def _connect(settings: Settings, database: str = "postgres") -> asyncpg.Connection:
    """The cluster's superuser over its Unix socket: the only password-free way in (see _HBA)."""
    return await asyncpg.connect(
        host=str(_socket_dir(settings)), port=settings.pg_port, user=OS_USER, database=database, timeout=5
    )


# Who may connect how. The Unix socket (mode 0700, owned by the postgres OS user: only it and root can
# reach it) trusts its peer; every TCP connection must present the role's password (scram-sha-256).
_HBA = """\
local all all trust
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""


def _write_hba(settings: Settings) -> bool:
    """Put _HBA in place; True when it changed (a cluster made before passwords had trust for TCP)."""
    path = _data(settings) / "pg_hba.conf"
    if path.exists() and path.read_text() == _HBA:
        return False
    path.write_text(_HBA)
    pw = pwd.getpwnam(OS_USER)
    if os.geteuid() == 0:
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return True


async def _ping(settings: Settings) -> bool:
    conn = await _connect(settings)
    try:
        return await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


def _prepare_dirs(settings: Settings) -> None:
    pw = pwd.getpwnam(OS_USER)
    settings.home.mkdir(parents=True, exist_ok=True)
    for d in (_root(settings), _socket_dir(settings)):
        d.mkdir(parents=True, exist_ok=True)
    for d in (_root(settings), _root(settings) / "run"):
        if d.exists() and os.geteuid() == 0:
            os.chown(d, pw.pw_uid, pw.pw_gid)


def _cluster_processes(settings: Settings) -> list[int]:
    """Live processes whose working directory is our data dir (postgres chdirs there)."""
    data = str(_data(settings).resolve())
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.readlink(d / "cwd") == data and pid_alive(int(d.name)):
                    found.append(int(d.name))
            except OSError:
                continue
    return found


def _clear_stale_lock(settings: Settings) -> None:
    """After a crash: wait for orphaned backends, then drop lock files whose postmaster is dead.

    pg_ctl would do this itself, except that a killed postmaster can linger as a zombie here (PID 1 reaps
    late) and PostgreSQL takes a zombie's pid for a running server.
    """
    lock = _data(settings) / "postmaster.pid"
    if lock.exists() and pid_alive(_pid(settings), "postgres"):
        return
    end = time.monotonic() + 10
    while procs := _cluster_processes(settings):
        if time.monotonic() > end:
            for pid in procs:
                stop_pid(pid, grace=0, sig=signal.SIGKILL)
        time.sleep(0.1)
    lock.unlink(missing_ok=True)
    sock = _socket_dir(settings) / f".s.PGSQL.{settings.pg_port}"
    sock_lock = sock.with_name(sock.name + ".lock")
    if sock_lock.exists() and not pid_alive(read_pid(sock_lock), "postgres"):
        sock_lock.unlink(missing_ok=True)
        sock.unlink(missing_ok=True)


async def _initdb(settings: Settings) -> None:
    data = _data(settings)
    if (data / "PG_VERSION").exists():
        return
    if data.exists():  # a half-made cluster from an interrupted initdb
        shutil.rmtree(data)
    await arun(
        [bin_dir() / "initdb", "-D", data, "--auth-local=trust", "--auth-host=scram-sha-256", "--username", OS_USER,
         "--encoding=UTF8", "--locale=C.UTF-8"],
        user=OS_USER, timeout=120,
    )


async def _start(settings: Settings) -> None:
    if pid_alive(_pid(settings), "postgres"):
        if not await _safe_ping(settings):  # running but still starting or recovering: wait for it
            await wait_until(
                lambda: _ping(settings), what="PostgreSQL", deadline=START_DEADLINE, logs=[_log(settings)],
                alive=lambda: pid_alive(_pid(settings), "postgres"),
            )
    else:
        ensure_port_free(settings.pg_port, "PostgreSQL")
        _prepare_dirs(settings)
        await asyncio.to_thread(_clear_stale_lock, settings)
        await _initdb(settings)
        _write_hba(settings)
        opts = (
            f"-p {settings.pg_port} -k {_socket_dir(settings)} -c listen_addresses=127.0.0.1"
            " -c max_connections=200 -c unix_socket_permissions=0700"
        )
        res = await arun(
            [bin_dir() / "pg_ctl", "-D", _data(settings), "-l", _log(settings), "-o", opts,
             "-w", "-t", str(int(START_DEADLINE)), "start"],
            user=OS_USER, check=False, timeout=START_DEADLINE + 10, new_session=True,
        )
        if res.returncode != 0:
            raise StackError(
                f"pg_ctl start failed (exit {res.returncode}): {(res.stdout + res.stderr).strip()}\n"
                f"--- {_log(settings)} ---\n" + excerpt(_log(settings))
            )
        await wait_until(
            lambda: _ping(settings), what="PostgreSQL", deadline=START_DEADLINE, logs=[_log(settings)],
        )
    await _ensure_role_and_database(settings)


async def _safe_ping(settings: Settings) -> bool:
    try:
        return await _ping(settings)
    except (OSError, asyncpg.PostgresError):
        return False


async def _ensure_role_and_database(settings: Settings) -> None:
    conn = await _connect(settings)
    try:
        if _write_hba(settings):  # a running cluster made before passwords: tighten it now
            await conn.execute("SELECT pg_reload_conf()")
        if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", settings.pg_user):
            try:
                await conn.execute(f"CREATE ROLE {_quote(settings.pg_user)} SUPERUSER LOGIN")
            except asyncpg.DuplicateObjectError:
                pass
        # Set on every start: the password follows the secret it is derived from (or SPICE_PG_PASSWORD).
        # A utility statement takes no parameters; the hex or operator-given value is quoted as a literal.
        literal = "'" + settings.pg_password.replace("'", "''") + "'"
        await conn.execute(f"ALTER ROLE {_quote(settings.pg_user)} PASSWORD {literal}")
    finally:
        await conn.close()
    await create_database(settings, settings.pg_database)


async def create_database(settings: Settings, name: str) -> None:
    """Create database `name` owned by settings.pg_user, unless it exists."""
    conn = await _connect(settings)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            try:
                await conn.execute(f"CREATE DATABASE {_quote(name)} OWNER {_quote(settings.pg_user)}")
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await conn.close()


async def drop_database(settings: Settings, name: str) -> None:
    """Drop database `name` if it exists, disconnecting its sessions."""
    conn = await _connect(settings)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")
    finally:
        await conn.close()


def _stop(settings: Settings) -> None:
    pid = _pid(settings)
    if not pid_alive(pid, "postgres"):
        return
    res = run(
        [bin_dir() / "pg_ctl", "-D", _data(settings), "-m", "fast", "-w", "-t", "30", "stop"],
        user=OS_USER, check=False, timeout=40,
    )
    if res.returncode != 0 or pid_alive(pid):
        stop_pid(pid, grace=10, sig=signal.SIGQUIT)


def _lockfile(settings: Settings) -> Path:
    return settings.home / "postgres.lock"


async def start(settings: Settings) -> None:
    """Start the cluster if needed, then make sure settings.pg_user and settings.pg_database exist."""
    async with alocked(_lockfile(settings)):
        await _start(settings)


def stop(settings: Settings) -> None:
    """pg_ctl stop -m fast with a bounded wait; SIGQUIT/SIGKILL the postmaster if that fails."""
    with locked(_lockfile(settings)):
        _stop(settings)
