"""Consumer lag: how many messages on the worker's topics its consumer group has not committed (on the event
topics: the projection lag)."""
from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.config import Settings

EVENT_TOPICS = ("database-events", "ontology-events", "instance-events")


def group_id(settings: Settings) -> str:
    """The Faust worker's consumer group (its app id), which the projection agent consumes in."""
    return f"{settings.namespace}-worker"


COMMAND_TOPICS = ("database-commands", "ontology-commands", "instance-commands")


async def projection_lag(settings: Settings) -> dict[str, Any]:
    """End offsets minus committed offsets of the worker group, per event topic and in total."""
    return await consumer_lag(settings, EVENT_TOPICS)


async def consumer_lag(settings: Settings, names: tuple[str, ...]) -> dict[str, Any]:
    """End offsets minus committed offsets of the worker group on the named topics, per topic and in total."""
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10000)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                request_timeout_ms=10000)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group_id(settings))
        described = await admin.describe_topics([settings.topic(n) for n in names])
        tps = [TopicPartition(d["topic"], p["partition"]) for d in described if d["error_code"] == 0
               for p in sorted(d["partitions"], key=lambda p: p["partition"])]
        ends = await consumer.end_offsets(tps) if tps else {}
        starts = await consumer.beginning_offsets(tps) if tps else {}
    finally:
        await consumer.stop()
        await admin.close()
        quiet.setLevel(level)
    topics: dict[str, int] = {}
    partitions: list[dict[str, Any]] = []
    for tp in tps:
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
        behind = max(0, ends[tp] - done)
        topics[tp.topic] = topics.get(tp.topic, 0) + behind
        partitions.append({"topic": tp.topic, "partition": tp.partition, "committed": done, "end": ends[tp],
                           "lag": behind})
    return {"group": group_id(settings), "lag": sum(topics.values()), "topics": topics, "partitions": partitions}
