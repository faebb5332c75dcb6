"""Commands produced straight to Kafka by any client: recorded on first sight, the user from a signed
token header; malformed or unauthorised messages end in the dead-letter topic and the partition moves on."""
from __future__ import annotations

import asyncio
import json
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.adapters.postgres.pool import Pool
from shared.domain.commands import Command, CommandType
from tests.stack import Stack


def message(db: str, class_id: str, actor: str = "whoever") -> Command:
    return Command(command_type=CommandType.CREATE_ONTOLOGY_CLASS, aggregate_id=class_id, db_name=db,
                   actor=actor, payload={"id": class_id})


async def test_producer_commands_and_dead_letters(stack: Stack, pool: Pool) -> None:
    settings = stack.settings
    db = await stack.new_database()
    topic = settings.topic("ontology-commands")
    key = f"{db}/Same".encode()  # one key: every message below lands in one partition, in this order
    good = message(db, "Same")
    auth = [("authorization", f"Bearer {stack.token('alice')}".encode())]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"\x00\xffgarbage", key=key, headers=auth)
        await producer.send_and_wait(topic, json.dumps({"hello": "world"}).encode(), key=key, headers=auth)
        await producer.send_and_wait(topic, message(db, "NoToken").model_dump_json().encode(), key=key)
        await producer.send_and_wait(topic, message(db, "Mallory").model_dump_json().encode(), key=key,
                                     headers=[("authorization", f"Bearer {stack.token('mallory')}".encode())])
        for _ in range(2):  # a producer's retry: one command
            await producer.send_and_wait(topic, good.model_dump_json().encode(), key=key, headers=auth)
        unknown = message("no-such-db", "Thing")
        await producer.send_and_wait(topic, unknown.model_dump_json().encode(), key=b"no-such-db/Thing",
                                     headers=[("authorization", f"Bearer {stack.token('admin')}".encode())])
    finally:
        await producer.stop()

    async def recorded(command_id: str, user: str) -> None:
        """Produced commands enter the command log when the agent first sees them."""
        for _ in range(300):
            if (await stack.request("GET", f"/api/v1/commands/{command_id}", user=user))[0] == 200:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{command_id} never recorded")

    await recorded(str(good.command_id), "alice")
    done = await stack.wait(str(good.command_id))
    assert done["status"] == "COMPLETED", done
    row = await pool.fetchrow("SELECT actor FROM commands WHERE command_id = $1", good.command_id)
    assert row["actor"] == "alice"  # from the token, not the message's "whoever"
    assert len(await pool.fetch("SELECT 1 FROM events WHERE command_id = $1", good.command_id)) == 1
    await recorded(str(unknown.command_id), "admin")
    failed = await stack.wait(str(unknown.command_id), user="admin")
    assert failed["status"] == "FAILED" and "does not exist" in failed["result"]["error"]["message"]

    consumer = AIOKafkaConsumer(settings.topic("dead-letters"), bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    reasons: list[str] = []
    try:
        async with asyncio.timeout(30):
            while len(reasons) < 4:
                batch = await consumer.getmany(timeout_ms=500)
                reasons += [json.loads(r.value)["error"] for records in batch.values() for r in records
                            if r.key == key]
    finally:
        await consumer.stop()
    assert sum("undecodable" in r for r in reasons) == 2
    assert sum("unauthorised" in r for r in reasons) == 2
    for never in ("NoToken", "Mallory"):
        assert await pool.fetchval("SELECT count(*) FROM commands WHERE db_name = $1 AND aggregate_id = $2",
                                   db, never) == 0
    uuid.UUID(str(good.command_id))


async def test_produced_instance_commands(stack: Stack, pool: Pool) -> None:
    """An instance and a bulk create produced to Kafka without instance ids: ids from the command,
    archived and stored like HTTP submissions."""
    settings = stack.settings
    db = await stack.new_database()
    done = await stack.run("POST", f"/api/v1/ontology/{db}/async/create",
                           {"id": "Company", "properties": [{"name": "title", "type": "string"}]})
    assert done["status"] == "COMPLETED", done
    single = Command(command_type=CommandType.CREATE_INSTANCE, aggregate_id="acme", db_name=db, actor="x",
                     payload={"class_id": "Company", "data": {"title": "Acme"}})
    bulk = Command(command_type=CommandType.BULK_CREATE_INSTANCES, aggregate_id="Company", db_name=db, actor="x",
                   payload={"class_id": "Company", "instances": [{"title": "a"}, {"title": "b"}]})
    auth = [("authorization", f"Bearer {stack.token('alice')}".encode())]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for command in (single, bulk):
            await producer.send_and_wait(settings.topic("instance-commands"), command.model_dump_json().encode(),
                                         key=command.stream_key.encode(), headers=auth)
    finally:
        await producer.stop()
    for command in (single, bulk):
        for _ in range(300):
            if (await stack.request("GET", f"/api/v1/commands/{command.command_id}"))[0] == 200:
                break
            await asyncio.sleep(0.1)
        final = await stack.wait(str(command.command_id))
        assert final["status"] == "COMPLETED", final
    code, doc = await stack.request("GET", f"/api/v1/instances/{db}/Company/acme")
    assert code == 200 and doc["title"] == "Acme" and doc["created_by"] == "alice", doc
    code, page = await stack.request("GET", f"/api/v1/instances/{db}/Company")
    assert page["total"] == 3
