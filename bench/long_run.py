"""A long run: throughput in the first and last tenth, the worker's peak memory, and its restart time.

Run: .venv/bin/python -m bench.long_run [N] [CONCURRENCY] [--json]   (services running: ./spice.sh up)
On a bench stack of its own (bench/own_stack.py): N class creates over HTTP at CONCURRENCY, each
completion seen on Redis. Prints commands/s over the first and over the last tenth of completions and
their ratio, the worker's peak resident memory (sampled every second from /proc), and after the run
how long a SIGKILLed worker takes to serve again (ready, and a new command COMPLETED through it).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
from rich.progress import Progress

from bench.own_stack import Running, own_processes
from bench.write_path import drive, progress_bar, record_finals
from shared.channels import user_channel
from shared.tokens import issue


def rss_mib(pid: int) -> float:
    """Resident memory of a process, in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def completions(running: Running, n: int, ready: asyncio.Event, progress: Progress) -> list[float]:
    """Times at which n commands were seen final on Redis."""
    task = progress.add_task("COMPLETED (seen on Redis)", total=n)
    client = aioredis.Redis.from_url(running.settings.redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(user_channel(running.settings, running.settings.admin_user))
    ready.set()
    seen: dict[str, float] = {}
    try:
        async with asyncio.timeout(3600):
            await record_finals(pubsub, seen, lambda: n, progress, task)
    finally:
        await pubsub.aclose()
        await client.aclose()
    return sorted(seen.values())


async def restart_time(running: Running, http: aiohttp.ClientSession, base: str, db: str) -> float:
    """Seconds from a SIGKILL of the worker to a new command COMPLETED through the restarted one."""
    t0 = time.perf_counter()
    await asyncio.to_thread(running.restart, "worker")
    async with http.post(f"{base}/api/v1/ontology/{db}/async/create", json={"id": "AfterRestart"}) as resp:
        command_id = (await resp.json())["command_id"]
    async with asyncio.timeout(300):
        while True:
            async with http.get(f"{base}/api/v1/commands/{command_id}") as resp:
                if (await resp.json())["status"] == "COMPLETED":
                    return time.perf_counter() - t0
            await asyncio.sleep(0.2)


async def main(n: int, concurrency: int, as_json: bool) -> None:
    async with own_processes() as running:
        settings = running.settings
        base = f"http://{settings.web_host}:{settings.web_port}"
        headers = {"Authorization": f"Bearer {issue(settings, settings.admin_user)}"}
        peak = 0.0
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_mib(running.procs["worker"].pid))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 1.0)

        async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=0)) as http:
            db = f"lr-{uuid.uuid4().hex[:6]}"
            async with http.post(f"{base}/api/v1/database/create", json={"name": db}) as resp:
                assert resp.status == 202, await resp.text()
            await asyncio.sleep(1)
            with progress_bar() as progress:
                listening = asyncio.Event()
                listener = asyncio.create_task(completions(running, n, listening, progress))
                await listening.wait()
                sampler = asyncio.create_task(sample())
                t_start = time.perf_counter()
                submitting = progress.add_task(f"submit at concurrency {concurrency}", total=n)
                driven = await drive(http, f"{base}/api/v1/ontology/{db}/async/create",
                                     lambda i: {"id": f"C{i}"}, n, concurrency, progress, submitting)
                assert driven.rejected == 0, f"{driven.rejected} submissions refused"
                times = await listener
                done.set()
                await sampler
            tenth = max(1, n // 10)
            # Each tenth as completions over the time they span (the first is not charged the ramp-up).
            first = tenth / max(1e-9, times[tenth - 1] - times[0])
            last = tenth / max(1e-9, times[-1] - times[-tenth - 1]) if n > tenth else first
            restart = await restart_time(running, http, base, db)
    figures = {"bench": "long_run", "n": n, "concurrency": concurrency, "overall_per_s": n / (times[-1] - t_start),
               "first_tenth_per_s": first, "last_tenth_per_s": last, "last_over_first": last / first,
               "worker_peak_rss_mib": peak, "restart_to_completed_s": restart}
    print(f"{n} class creates at {concurrency}: {figures['overall_per_s']:.0f}/s overall; first tenth {first:.0f}/s, "
          f"last tenth {last:.0f}/s ({last / first:.2f}x); worker peak RSS {peak:.0f} MiB; "
          f"SIGKILLed worker serving again (a new command COMPLETED) after {restart:.1f}s")
    if as_json:
        print(json.dumps(figures))


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:] if a != "--json"]
    count, clients = (numbers + [100_000, 100][len(numbers):])[:2]
    asyncio.run(main(count, clients, "--json" in sys.argv[1:]))
