"""The project's own long-running processes (relay, Faust worker, web view), started detached."""
from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shared.config import Settings

COMMANDS: dict[str, list[str]] = {
    "relay": [sys.executable, "-m", "shared.cli", "relay"],
    "worker": [sys.executable, "-m", "faust", "-A", "agents.worker", "worker", "-l", "info"],
    "web": [sys.executable, "-m", "shared.cli", "web"],
}


# The youngest generation collected every 50,000 net container allocations instead of Python's 700: these
# processes allocate many short-lived containers per message (decoded rows, events, documents), reference
# counting frees nearly all of them, and the default collected several times per page of 2,000 events
# (reading 100,000 events took half the CPU with this setting in bench/replay.py's rebuild).
GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    """The garbage collector as every long-running process of the project runs it."""
    gc.set_threshold(*GC_THRESHOLDS)


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.home / "run" / f"{name}.pid"


def log_file(settings: Settings, name: str) -> Path:
    return settings.home / "logs" / f"{name}.log"


def running_pid(settings: Settings, name: str) -> int | None:
    path = _pid_file(settings, name)
    try:
        pid = int(path.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def start(settings: Settings, name: str, env: dict[str, str] | None = None) -> int:
    """Start `name` detached unless it already runs; returns its pid."""
    pid = running_pid(settings, name)
    if pid is not None:
        return pid
    for folder in ("run", "logs"):
        (settings.home / folder).mkdir(parents=True, exist_ok=True)
    log = open(log_file(settings, name), "ab")  # noqa: SIM115 — handed to the child
    proc = subprocess.Popen(COMMANDS[name], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, start_new_session=True,
                            cwd=Path(__file__).resolve().parent.parent)
    _pid_file(settings, name).write_text(str(proc.pid))
    return proc.pid


def stop(settings: Settings, name: str, timeout: float = 15.0) -> None:
    pid = running_pid(settings, name)
    if pid is None:
        return
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.1)
    else:
        os.killpg(pid, signal.SIGKILL)
    _pid_file(settings, name).unlink(missing_ok=True)
