"""The Faust app: at-least-once processing into idempotent tables, recovered from their changelogs."""
from __future__ import annotations

import faust

from shared import logs
from shared.config import BROKER_MESSAGE_BYTES, load

settings = load()

app = faust.App(
    f"{settings.namespace}-worker",
    broker=f"kafka://{settings.kafka_bootstrap}",
    store="memory://",
    # At-least-once, on purpose. Every table write here is idempotent: a status transition is applied
    # once (apply_update drops one already in the history), and a redelivered command finds its stored
    # event and only re-sends its final status, so reprocessing after a crash rewrites the same values
    # (tests/test_worker_restart.py kills a worker mid-stream and compares every key). exactly_once was
    # tried first: after a SIGKILL, Faust 0.15.3 left a partition unconsumed until a pending
    # transactional offset commit timed out (minutes),
    # and its transactional producer for a topic commits only with its consumer's own offsets, which
    # stalls a topic read by the agent that feeds it (see the README).
    processing_guarantee="at_least_once",
    # One JSON object per log line, Faust's own lines included (shared/logs.py).
    logging_config=logs.config("worker"),
    topic_partitions=settings.partitions,
    topic_replication_factor=1,
    topic_allow_declare=True,
    consumer_auto_offset_reset="earliest",
    # Offsets commit this often: the window a crashed worker reprocesses (harmless, see above).
    broker_commit_interval=1.0,
    # A command may be as large as the HTTP body limit (a bulk create), and the dead-letter topic
    # carries a refused command whole: fetch and produce messages up to what the broker is sized for.
    consumer_max_fetch_size=BROKER_MESSAGE_BYTES,
    producer_max_request_size=BROKER_MESSAGE_BYTES,
    # A killed worker's partitions move to the survivors after this long without heartbeats.
    broker_session_timeout=10.0,
    broker_heartbeat_interval=1.0,
    stream_wait_empty=False,
    web_enabled=True,
    # Faust's own pages (routing, table contents, stats, graph) would show any command's status and its
    # actor to whoever reaches the port: off. The project's pages ask for the internal credential.
    web_router_enabled=False,
    web_tables_enabled=False,
    web_stats_enabled=False,
    web_graph_enabled=False,
    web_bind=settings.worker_bind,
    web_host=settings.worker_host,
    web_port=settings.worker_web_port,
    # Table routing sends a status query to the worker owning the key's partition at this URL.
    canonical_url=settings.worker_url,
    autodiscover=False,
)
