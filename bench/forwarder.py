"""Baseline for bench.write_path: a bare Faust agent forwarding bytes between two topics.

Run by bench.write_path as `faust -A bench.forwarder worker`; topics and ports come from BENCH_* env.
"""
from __future__ import annotations

import os
from typing import Any

import faust

PREFIX = os.environ.get("BENCH_PREFIX", "bench")
app = faust.App(
    f"{PREFIX}-forwarder", broker=f"kafka://127.0.0.1:{os.environ.get('SPICE_KAFKA_PORT', '59092')}",
    store="memory://", processing_guarantee="at_least_once", topic_partitions=4, topic_replication_factor=1,
    web_bind="127.0.0.1", web_host="127.0.0.1", web_port=int(os.environ.get("BENCH_WEB_PORT", "56099")),
    consumer_auto_offset_reset="earliest", autodiscover=False,
)
source = app.topic(f"{PREFIX}-in", key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
sink = app.topic(f"{PREFIX}-out", key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


@app.agent(source)
async def forward(stream: Any) -> None:
    async for event in stream.events():
        await sink.send(key=event.key, value=event.value)
