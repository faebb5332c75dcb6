"""Dead letters: the JSON copy of a message retries could not fix, and reading them back from Kafka."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer

from shared.domain.commands import utcnow


@dataclass(frozen=True)
class Origin:
    """Where a consumed message came from."""

    topic: str
    partition: int
    offset: int


def encode(raw: Any, error: str, *, reason: str, key: Any = None, origin: Origin | None = None,
           attempts: int = 0, command_id: str | None = None) -> bytes:
    """`error` and `message` (the original value as text) as before, plus where it came from, why
    (`reason`: undecodable, unauthorised, failed, ...) and how many attempts were made."""
    body = raw.decode(errors="replace") if isinstance(raw, bytes | bytearray) else str(raw)
    if isinstance(key, bytes | bytearray):
        key = key.decode(errors="replace")
    return json.dumps({
        "error": error, "message": body, "reason": reason, "command_id": command_id,
        "original_topic": origin.topic if origin else None,
        "original_key": None if key is None else str(key),
        "original_partition": origin.partition if origin else None,
        "original_offset": origin.offset if origin else None,
        "attempts": attempts, "dead_lettered_at": utcnow().isoformat(),
    }).encode()


@dataclass
class DeadLetter:
    """One record of the dead-letter topic, as read back."""

    partition: int
    offset: int
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def reason(self) -> str:
        return str(self.body.get("reason") or self.body.get("error", "?"))

    @property
    def command(self) -> dict[str, Any] | None:
        """The original command message, when it was decodable JSON."""
        try:
            message = json.loads(self.body.get("message", ""))
        except ValueError:
            return None
        return message if isinstance(message, dict) else None

    @property
    def command_id(self) -> str | None:
        found = self.body.get("command_id") or (self.command or {}).get("command_id")
        return str(found) if found else None


async def read_all(bootstrap: str, topic: str, limit: int | None = None) -> list[DeadLetter]:
    """Every record on the topic from the beginning up to its current end, oldest first per partition.
    A fresh consumer with no group: nothing is committed, nothing moves for anyone else."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    found: list[DeadLetter] = []
    try:
        # Without a group the consumer takes every partition of the topic once it has the metadata.
        for _ in range(600):  # up to 30 s
            if consumer.assignment():
                break
            await asyncio.sleep(0.05)
        else:
            raise TimeoutError(f"no partitions of {topic} assigned after 30 s")
        partitions = sorted(consumer.assignment(), key=lambda tp: tp.partition)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < ends[tp]:
                        found.append(DeadLetter(tp.partition, record.offset, _body(record.value)))
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    found.sort(key=lambda d: (d.body.get("dead_lettered_at") or "", d.partition, d.offset))
    return found[-limit:] if limit else found


def _body(value: bytes | None) -> dict[str, Any]:
    try:
        body = json.loads(value or b"")
    except ValueError:
        return {"error": "dead letter is not JSON", "message": (value or b"").decode(errors="replace")}
    return body if isinstance(body, dict) else {"error": "dead letter is not an object", "message": str(body)}
