"""The relay's periodic reconciliation: every database checked against its event store now and then; drift
is logged and counted for the health report, never repaired by itself (an admin asks for the repair)."""
from __future__ import annotations

import asyncio
import logging

from shared.adapters.postgres.reconcile_checks import record_check
from shared.application.reconcile import Report, reconcile
from shared.bootstrap import Needs, open_stores
from shared.config import Settings
from shared.leader_rounds import rounds

log = logging.getLogger("spice.reconcile")


async def check_every_database(settings: Settings) -> list[Report]:
    stores = await open_stores(settings, Needs(pool=(1, 2), archive=True, search_timeout=120))
    try:
        reports = []
        for database in await stores.docs.databases():
            report = await reconcile(database["name"], stores.events, stores.docs, stores.search_index(),
                                     stores.archive)
            await record_check(stores.pool, report)
            if report.drift:
                log.warning("reconciliation: %d of %d object(s) drifted in %r (first: %s); repair with POST "
                            "/api/v1/admin/reconcile/%s", len(report.drift), report.checked, report.db_name,
                            report.drift[0], report.db_name, extra={"db_name": report.db_name})
            reports.append(report)
        return reports
    finally:
        await stores.close()


async def periodically(settings: Settings, leader: asyncio.Event, stop: asyncio.Event) -> None:
    """Every settings.reconcile_interval_seconds (0: never), on the active relay only."""
    if settings.reconcile_interval_seconds <= 0:
        return
    async for _ in rounds(settings.reconcile_interval_seconds, leader, stop):
        try:
            await check_every_database(settings)
        except Exception as exc:  # noqa: BLE001 — a store away: the next round tries again
            log.warning("periodic reconciliation skipped: %s: %s", type(exc).__name__, exc)
