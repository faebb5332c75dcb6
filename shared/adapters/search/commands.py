"""`spice search rebuild DB` and `spice search lag`: the command-line side of the search read model."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING

from shared.config import Settings

if TYPE_CHECKING:
    from shared.adapters.search.rebuild import RebuildResult


async def run_rebuild(settings: Settings, db: str, show_progress: bool = True) -> RebuildResult:
    """Rebuild with a rich progress bar (imports here: the `spice` command line starts without them)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from shared.adapters.search.rebuild import rebuild
    from shared.bootstrap import Needs, open_stores

    stores = await open_stores(settings, Needs(pool=(1, 2), search_timeout=60))
    assert stores.search is not None
    try:
        columns = (TextColumn(f"rebuild {db}"), BarColumn(), MofNCompleteColumn(), TextColumn("positions"),
                   TimeElapsedColumn())
        with Progress(*columns, disable=not show_progress, transient=False) as bar:
            task = bar.add_task("rebuild", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            return await rebuild(stores.search, stores.events, settings.namespace, db, progress=progress)
    finally:
        await stores.close()


def cmd_search(settings: Settings, args: argparse.Namespace) -> int:
    from shared.adapters.search.lag import projection_lag

    if args.search_command == "lag":
        print(json.dumps(asyncio.run(projection_lag(settings)), indent=2))
        return 0
    result = asyncio.run(run_rebuild(settings, args.db, show_progress=sys.stderr.isatty() or sys.stdout.isatty()))
    s = result.stats
    where = ", ".join(f"{k} → {v}" for k, v in result.indices.items()) if result.exists else "deleted: dropped"
    print(f"rebuilt {args.db}: {result.events_projected} events in {result.seconds:.1f}s "
          f"({result.rate:.0f} events/s); indexed {s.indexed}, deleted {s.deleted}, superseded {s.superseded}, "
          f"stale {s.stale}, skipped {s.skipped}; {where}; replaced {result.replaced or 'nothing'}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    search = sub.add_parser("search", help="the Elasticsearch search read model: rebuild, lag")
    search_sub = search.add_subparsers(dest="search_command", required=True)
    rebuild_cmd = search_sub.add_parser("rebuild", help="rebuild a database's indices from the event store")
    rebuild_cmd.add_argument("db")
    search_sub.add_parser("lag", help="events the projection has not committed yet, per topic")
    search.set_defaults(func=cmd_search)
