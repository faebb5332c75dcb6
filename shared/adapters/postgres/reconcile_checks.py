"""The periodic reconciliation's results on PostgreSQL: the last check of each database, and their sum."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from shared.adapters.postgres.pool import Pool
from shared.application.reconcile import Report

SAMPLE = 20  # drifted objects kept per database (the report itself names them all)


async def record_check(pool: Pool, report: Report) -> None:
    await pool.execute(
        """INSERT INTO reconcile_checks (db_name, checked_at, checked, drift, sample)
           VALUES ($1, clock_timestamp(), $2, $3, $4)
           ON CONFLICT (db_name) DO UPDATE SET checked_at = EXCLUDED.checked_at, checked = EXCLUDED.checked,
             drift = EXCLUDED.drift, sample = EXCLUDED.sample""",
        report.db_name, report.checked, len(report.drift), [asdict(d) for d in report.drift[:SAMPLE]])


async def summary(pool: Pool) -> dict[str, Any] | None:
    """Over the live databases' last checks: how many, when the oldest and newest ran, and the drift in total
    (None before any check)."""
    row = await pool.fetchrow(
        """SELECT count(*) AS databases, coalesce(sum(drift), 0) AS drift, min(checked_at) AS oldest,
                  max(checked_at) AS newest,
                  coalesce(array_agg(c.db_name ORDER BY c.db_name) FILTER (WHERE drift > 0), '{}') AS drifted
           FROM reconcile_checks c JOIN docs.databases d ON d.name = c.db_name AND NOT d.deleted""")
    if row is None or not row["databases"]:
        return None
    return {"databases": row["databases"], "drift": int(row["drift"]), "drifted": list(row["drifted"])[:SAMPLE],
            "oldest_check": row["oldest"].isoformat(), "newest_check": row["newest"].isoformat()}
