"""Process helpers shared by the service modules: commands, readiness waits, pid files, stopping."""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path


class StackError(RuntimeError):
    """A local service could not be installed, started or stopped."""


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, or a note that it is missing."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def excerpt(path: Path, lines: int = 25) -> str:
    """The last error-looking lines of a log followed by its tail: what a start failure message shows."""
    text = tail(path, 2000)
    keys = [ln for ln in text.splitlines() if any(w in ln for w in ("ERROR", "FATAL", "PANIC", "Caused by"))]
    head = ("key lines:\n" + "\n".join(keys[-5:]) + "\nlast lines:\n") if keys else ""
    return head + "\n".join(text.splitlines()[-lines:])


def ensure_port_free(port: int, what: str) -> None:
    """Fail fast when another process already listens on a port a service is about to bind."""
    if port_open(port):
        raise StackError(f"{what}: port 127.0.0.1:{port} is already in use by another process")


def run(
    cmd: Sequence[str | Path],
    *,
    user: str | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
    check: bool = True,
    new_session: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion (as `user` through runuser), raising StackError with its output."""
    argv = [str(c) for c in cmd]
    if user is not None and os.geteuid() == 0:
        argv = ["runuser", "-u", user, "--", *argv]
    try:
        res = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
            start_new_session=new_session, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        raise StackError(f"timed out after {timeout:.0f}s: {' '.join(argv)}") from e
    except FileNotFoundError as e:
        raise StackError(f"command not found: {argv[0]} (run ./spice.sh to install it)") from e
    if check and res.returncode != 0:
        out = (res.stdout + res.stderr).strip()[-4000:]
        raise StackError(f"exit {res.returncode}: {' '.join(argv)}\n{out}")
    return res


async def arun(cmd: Sequence[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """`run` in a worker thread, so several services can start concurrently."""
    return await asyncio.to_thread(run, cmd, **kwargs)  # type: ignore[arg-type]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


async def wait_until(
    probe: Callable[[], Awaitable[bool]],
    *,
    what: str,
    deadline: float,
    logs: Sequence[Path] = (),
    alive: Callable[[], bool] | None = None,
    interval: float = 0.2,
) -> None:
    """Poll `probe` until it is true; on timeout (or when `alive` turns false) raise with the log tails."""
    end = time.monotonic() + deadline
    gone = 0
    while True:
        try:
            if await probe():
                return
        except Exception:  # a probe failing just means "not yet"
            pass
        # Dead only when seen dead three times running: right after a start, /proc here was once seen
        # without the new process's command line (a fresh-clone run failed on a versitygw that was up).
        gone = gone + 1 if alive is not None and not alive() else 0
        died = gone >= 3
        if died or time.monotonic() >= end:
            why = "exited while starting" if died else f"not ready after {deadline:.0f}s"
            tails = "\n".join(f"--- {p} ---\n{excerpt(p)}" for p in logs)
            raise StackError(f"{what} {why}\n{tails}")
        await asyncio.sleep(interval)


def read_pid(path: Path) -> int | None:
    """The pid on the first line of a pid file, or None."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def write_pid(path: Path, pid: int) -> None:
    path.write_text(f"{pid}\n")


def pid_alive(pid: int | None, cmdline_contains: str | None = None) -> bool:
    """True when pid is a live (non-zombie) process, optionally whose command line contains a string."""
    if pid is None or pid <= 0:
        return False
    try:  # reap it if it is our own exited child
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        if cmdline_contains is not None:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            return cmdline_contains in cmdline
    except (OSError, IndexError):
        return False
    return True


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait up to timeout seconds for pid to exit; True when it has."""
    end = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= end:
            return False
        time.sleep(0.1)
    return True


def stop_pid(pid: int | None, *, grace: float = 30, sig: int = signal.SIGTERM) -> None:
    """Send `sig`, wait up to `grace` seconds, then SIGKILL and wait for the process to go."""
    if not pid_alive(pid):
        return
    assert pid is not None
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    if wait_exit(pid, grace):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if not wait_exit(pid, 10):
        raise StackError(f"process {pid} survived SIGKILL")


def spawn_detached(
    argv: Sequence[str | Path], *, cwd: Path, log: Path, env: dict[str, str] | None = None
) -> int:
    """Start a long-running process in its own session, stdout/stderr appended to `log`; its pid."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(a) for a in argv], cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})},
        )
    return proc.pid


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive flock on `path`, so two processes never start or stop the same service at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.asynccontextmanager
async def alocked(path: Path) -> AsyncIterator[None]:
    """`locked` for coroutines: waits for the lock in a worker thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        await asyncio.to_thread(fcntl.flock, f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
