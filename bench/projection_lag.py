"""Projection lag while another load runs: samples the projection's events-behind every 0.25 s.

Run: .venv/bin/python -m bench.projection_lag SECONDS   (beside e.g. `python -m bench.write_path 2000 100`)
Prints p50/p99/max of the projection consumer group's lag (end offsets minus committed offsets of the
event topics; offsets commit every second, so up to one second of events counts as behind).
"""
from __future__ import annotations

import asyncio
import sys
import time

from shared.adapters.search.lag import projection_lag
from shared.config import load


async def main(seconds: float) -> None:
    settings = load()
    samples: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(int((await projection_lag(settings))["lag"]))
        await asyncio.sleep(0.25)
    ordered = sorted(samples)

    def pct(p: float) -> int:
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    print(f"{len(samples)} samples over {seconds:g} s: lag p50 {pct(50)}  p99 {pct(99)}  max {ordered[-1]} events")


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 60))
