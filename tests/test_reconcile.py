"""GET /api/v1/admin/reconcile/{db}: drift behind the system's back is reported per store and version, and
the checksums of the documents and of the events agree when nothing drifted."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from shared.adapters.archive.s3 import S3EventArchive
from shared.adapters.postgres.pool import Pool
from shared.adapters.search import indices
from shared.config import Settings
from tests.stack import Stack


async def report(stack: Stack, db: str, user: str = "alice") -> tuple[int, dict[str, Any]]:
    return await stack.request("GET", f"/api/v1/admin/reconcile/{db}", user=user)


async def populated(stack: Stack) -> str:
    db = await stack.new_database()
    await stack.run("POST", f"/api/v1/ontology/{db}/async/create",
                    {"id": "Item", "properties": [{"name": "n", "type": "integer"}]})
    for i in range(1, 5):
        done = await stack.run("POST", f"/api/v1/instances/{db}/async/Item/create",
                               {"data": {"instance_id": f"i{i}", "n": i}})
        assert done["status"] == "COMPLETED", done
    assert (await stack.run("DELETE", f"/api/v1/instances/{db}/async/Item/i4/delete"))["status"] == "COMPLETED"
    # Until the projection has committed every event (an instance created and deleted before the projector
    # saw either looks consistent too, until it sees them), and nothing drifts.
    for _ in range(300):
        async with stack.client.get(f"{stack.settings.worker_url}/projection/lag", headers=stack.internal()) as resp:
            lag = (await resp.json()).get("lag") if resp.status == 200 else None
        code, body = await report(stack, db)
        if lag == 0 and code == 200 and not body["drift"]:
            return db
        await asyncio.sleep(0.2)
    raise AssertionError(f"the search index did not catch up: {body}")


async def tamper(db: str, pool: Pool, settings: Settings, archive: Any) -> None:
    """Behind the system's back (test-only writes): a document claiming a later version, one changed at its
    version, a stray search document, a removed archive object. (A lost document is not among them: the
    relay's unapplied-event sweep writes it again by itself within seconds.)"""
    doc = await pool.fetchval("SELECT doc FROM docs.instances WHERE db_name = $1 AND instance_id = 'i2'", db)
    await pool.execute("UPDATE docs.instances SET version = 7, doc = $2 WHERE db_name = $1 AND instance_id = 'i2'",
                       db, {**doc, "version": 7, "n": 99})
    await pool.execute("UPDATE docs.instances SET doc = jsonb_set(doc, '{data,n}', '33')"
                       " WHERE db_name = $1 AND instance_id = 'i3'", db)
    es = indices.client(settings)
    try:
        await es.index(index=indices.alias(settings.namespace, db, indices.INSTANCES), id="ghost",
                       document={"instance_id": "ghost", "class_id": "Item"}, version=3, version_type="external",
                       refresh=True)
    finally:
        await es.close()
    [key] = await archive.keys(f"{db}/Item/i1/")
    assert isinstance(archive, S3EventArchive)
    await archive.client.delete_object(Bucket=archive.bucket, Key=key)


async def test_nothing_drifted_and_the_checksums_agree(stack: Stack) -> None:
    db = await populated(stack)
    code, body = await report(stack, db)
    assert code == 200 and body["db_name"] == db and body["drift"] == []
    assert body["checked"] == 5  # the class, three live instances and the deleted one
    assert body["checksums"]["events"] == body["checksums"]["documents"]
    again = (await report(stack, db))[1]
    assert again["checksums"] == body["checksums"]  # deterministic
    code, refused = await report(stack, db, user="mallory")
    assert code == 403 and refused["detail"]["message"]


async def test_tampering_is_reported_with_its_store_and_versions(stack: Stack, pool: Pool, settings: Settings,
                                                                 archive: Any) -> None:
    db = await populated(stack)
    await tamper(db, pool, settings, archive)

    code, body = await report(stack, db)
    assert code == 200, body
    found = {(d["aggregate_id"], d["store"]): (d["problem"], d["expected_version"], d["found_version"])
             for d in body["drift"]}
    assert found == {
        ("i2", "documents"): ("version", 1, 7),
        ("i3", "documents"): ("content", 1, 1),
        ("ghost", "search"): ("unexpected", None, 3),
        ("i1", "archive"): ("missing", 1, None),
    }, json.dumps(body["drift"], indent=1)
    assert all(d["kind"] == "instance" for d in body["drift"])
    assert body["checksums"]["events"] != body["checksums"]["documents"]


async def test_the_repair_command_restores_every_store_and_records_what_it_repaired(
        stack: Stack, pool: Pool, settings: Settings, archive: Any) -> None:
    db = await populated(stack)
    await tamper(db, pool, settings, archive)
    before = (await report(stack, db))[1]
    assert len(before["drift"]) == 4

    code, refused = await stack.request("POST", f"/api/v1/admin/reconcile/{db}", user="mallory")
    assert code == 403 and refused["detail"]["message"]
    done = await stack.run("POST", f"/api/v1/admin/reconcile/{db}")
    assert done["status"] == "COMPLETED", done
    result = done["result"]["result"]
    assert result["count"] == 4
    assert {(d["aggregate_id"], d["store"]) for d in result["repaired"]} == {
        ("i2", "documents"), ("i3", "documents"), ("ghost", "search"), ("i1", "archive")}
    [event] = [e for e in await pool.fetch("SELECT event_type, data FROM events WHERE command_id = $1::uuid",
                                           done["command_id"])]
    assert event["event_type"] == "DATABASE_RECONCILED" and event["data"]["count"] == 4

    after = (await report(stack, db))[1]
    assert after["drift"] == [], after["drift"]
    assert after["checksums"]["documents"] == after["checksums"]["events"] == before["checksums"]["events"]
    code, i2 = await stack.request("GET", f"/api/v1/instances/{db}/Item/i2")
    assert code == 200 and i2["n"] == 2 and i2["version"] == 1


async def test_the_command_line_reports_and_repairs(stack: Stack, pool: Pool) -> None:
    from tests.test_cli import spice

    db = await populated(stack)
    code, out = await spice("reconcile", db)
    assert code == 0 and json.loads(out)["drift"] == []
    await pool.execute("UPDATE docs.instances SET doc = jsonb_set(doc, '{data,n}', '11')"
                       " WHERE db_name = $1 AND instance_id = 'i1'", db)
    code, out = await spice("reconcile", db, "--repair")
    assert code == 0
    assert [(d["aggregate_id"], d["problem"]) for d in json.loads(out)["drift"]] == [("i1", "content")]
    for _ in range(150):  # the repair command runs in the worker
        code, i1 = await stack.request("GET", f"/api/v1/instances/{db}/Item/i1")
        if i1.get("n") == 1:
            break
        await asyncio.sleep(0.2)
    assert code == 200 and i1["n"] == 1
    code, _ = await spice("reconcile", "no-such-db")
    assert code == 1


async def test_the_relays_periodic_check_counts_drift_for_the_health_report(
        stack: Stack, pool: Pool, settings: Settings, archive: Any) -> None:
    from shared.relay_checks import check_every_database

    db = await populated(stack)
    await tamper(db, pool, settings, archive)
    reports = {r.db_name: r for r in await check_every_database(settings)}
    assert len(reports[db].drift) == 4
    row = await pool.fetchrow("SELECT checked, drift, sample FROM reconcile_checks WHERE db_name = $1", db)
    assert row["checked"] == 6 and row["drift"] == 4 and len(row["sample"]) == 4  # 5 objects and the stray one
    code, health = await stack.request("GET", "/health", user=None)
    assert code == 200, health  # drift is no outage
    summary = health["reconciliation"]
    assert summary["drift"] >= 4 and summary["databases"] >= 1 and summary["newest_check"]
    assert len((await report(stack, db))[1]["drift"]) == 4  # nothing was repaired by the check itself
