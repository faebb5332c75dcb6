"""The Faust app: exactly-once processing, tables in memory recovered from their changelogs."""
from __future__ import annotations

import faust

from shared.config import load

settings = load()

app = faust.App(
    f"{settings.namespace}-worker",
    broker=f"kafka://{settings.kafka_bootstrap}",
    store="memory://",
    # Exactly-once: the status and handled-command tables, their changelogs and the consumed offsets
    # commit in one Kafka transaction, so a SIGKILL mid-stream neither loses nor double-applies them.
    processing_guarantee="exactly_once",
    topic_partitions=settings.partitions,
    topic_replication_factor=1,
    topic_allow_declare=True,
    consumer_auto_offset_reset="earliest",
    # Transactions commit this often; status messages become visible to read_committed consumers
    # only then, so it bounds the status latency.
    broker_commit_interval=0.05,
    broker_commit_every=100,
    consumer_max_fetch_size=1024 * 1024,
    # A killed worker's partitions move to the survivors after this long without heartbeats.
    broker_session_timeout=10.0,
    broker_heartbeat_interval=1.0,
    stream_wait_empty=False,
    web_enabled=True,
    web_bind=settings.worker_bind,
    web_host=settings.worker_host,
    web_port=settings.worker_web_port,
    # Table routing sends a status query to the worker owning the key's partition at this URL.
    canonical_url=settings.worker_url,
    autodiscover=False,
)
