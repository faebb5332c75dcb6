"""Reconciliation: each read model compared, object by object, with the state the event store implies."""
from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import asdict, dataclass, field
from typing import Any

from shared.application.archiving import archive_key_of
from shared.domain.commands import AggregateType
from shared.domain.events import Event
from shared.ports import DocumentStore, EventArchive, EventStore, SearchIndex

KINDS = {"class": AggregateType.ONTOLOGY_CLASS, "instance": AggregateType.INSTANCE}


def canonical(state: Any) -> str:
    """The one JSON text of a state: sorted keys, no spaces, as Unicode (what the checksums digest)."""
    return json.dumps(state, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# A string as canonical() writes it (json.dumps of a str with ensure_ascii=False), without the encoder's setup.
_text = json.encoder.encode_basestring


class Checksum:
    """A digest over (aggregate_id, version, canonical JSON of the state), fed in aggregate order: the same
    events always give the same checksum, whatever order they were applied in."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def add(self, kind: str, aggregate_id: str, version: int, state: Any) -> None:
        self.add_canonical(kind, aggregate_id, version, canonical(state))

    def add_canonical(self, kind: str, aggregate_id: str, version: int, state_json: str) -> None:
        """`add` with the state already as its canonical JSON: the same bytes as canonical([kind, aggregate_id,
        version, state]) (the encoder writes a list's items one after another), without encoding it twice."""
        self._digest.update(f"[{_text(kind)},{_text(aggregate_id)},{int(version)},{state_json}]\n".encode())

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


@dataclass(frozen=True)
class Drift:
    aggregate_id: str
    kind: str  # class | instance
    store: str  # documents | search | archive
    expected_version: int | None
    found_version: int | None
    problem: str  # missing | unexpected | version | content


@dataclass
class Report:
    db_name: str
    checked: int = 0
    drift: list[Drift] = field(default_factory=list)
    checksums: dict[str, str] = field(default_factory=dict)

    def to_api(self) -> dict[str, Any]:
        return {"db_name": self.db_name, "checked": self.checked, "drift": [asdict(d) for d in self.drift],
                "checksums": self.checksums}


Keyed = tuple[str, Any, Any]  # (aggregate id, version or event, state), what each stream yields


async def _keyed(events: AsyncIterator[Event]) -> AsyncIterator[Keyed]:
    async for event in events:
        yield event.aggregate_id, event, None


async def _joined(streams: list[AsyncIterator[Keyed]]) -> AsyncIterator[tuple[str, list[Keyed | None]]]:
    """The streams, each in aggregate id order, joined on the id (a merge: none is held whole); each id once,
    with what each stream has for it. A stream out of order (a document written behind the system's back
    under another key) still has each of its items come out, alone."""
    heads = [await anext(stream, None) for stream in streams]
    while any(head is not None for head in heads):
        key = min(head[0] for head in heads if head is not None)
        row: list[Keyed | None] = []
        for position, head in enumerate(heads):
            if head is not None and head[0] == key:
                row.append(head)
                heads[position] = await anext(streams[position], None)
            else:
                row.append(None)
        yield key, row


def _compare(kind: str, store: str, aggregate_id: str, event: Event | None, found_version: int | None,
             same_content: bool) -> Drift | None:
    live = event is not None and not event.data.get("deleted")
    expected = event.version if live and event is not None else None
    if live and found_version is None:
        return Drift(aggregate_id, kind, store, expected, None, "missing")
    if not live and found_version is not None:
        return Drift(aggregate_id, kind, store, event.version if event else None, found_version, "unexpected")
    if live and found_version != expected:
        return Drift(aggregate_id, kind, store, expected, found_version, "version")
    if live and not same_content:
        return Drift(aggregate_id, kind, store, expected, found_version, "content")
    return None


async def reconcile(db_name: str, events: EventStore, docs: DocumentStore, search: SearchIndex | None,
                    archive: EventArchive | None) -> Report:
    """Read-only. The events, the documents and the search index are streamed side by side in aggregate id
    order (memory does not grow with the database); the archive's keys are read per database."""
    report = Report(db_name)
    sums = {"events": Checksum(), "documents": Checksum(), "search": Checksum()}
    archived = set(await archive.keys(f"{db_name}/")) if archive is not None else None
    for kind, aggregate_type in KINDS.items():
        # Closed however the loop ends: each stream holds a connection (a cursor, a point in time) while open.
        async with aclosing(events.latest(db_name, aggregate_type)) as expected, \
                aclosing(docs.versions(db_name, kind)) as found, \
                aclosing(search.versions(db_name, kind) if search is not None else _nothing()) as indexed:
            async for aggregate_id, (event, doc, hit) in _joined([_keyed(expected), found, indexed]):
                report.checked += 1
                report.drift += _check(kind, aggregate_id, event[1] if event else None,
                                       (doc[1], doc[2]) if doc else None, search is not None,
                                       (hit[1], hit[2]) if hit else None, archived, sums)
    report.checksums = {name: digest.hexdigest() for name, digest in sums.items()}
    return report


async def _nothing() -> AsyncGenerator[Keyed, None]:
    return
    yield  # an async generator that yields nothing: no search index to compare


def _check(kind: str, aggregate_id: str, event: Event | None, doc: tuple[int, dict[str, Any]] | None,
           searched: bool, hit: tuple[int, dict[str, Any]] | None, archived: set[str] | None,
           sums: dict[str, Checksum]) -> list[Drift]:
    live = event is not None and not event.data.get("deleted")
    # Each state encoded once: for its checksum and for the comparison.
    event_json = canonical(event.data) if event is not None else None
    doc_json = canonical(doc[1]) if doc is not None else None
    if live and event is not None and event.version is not None and event_json is not None:
        sums["events"].add_canonical(kind, aggregate_id, event.version, event_json)
    if doc is not None and doc_json is not None:
        sums["documents"].add_canonical(kind, aggregate_id, doc[0], doc_json)
    if hit is not None:
        sums["search"].add(kind, aggregate_id, hit[0], hit[1])
    same = doc_json is not None and doc_json == event_json
    drift = [_compare(kind, "documents", aggregate_id, event, doc[0] if doc else None, same)]
    if searched:
        drift.append(_compare(kind, "search", aggregate_id, event, hit[0] if hit else None, True))
    if archived is not None and kind == "instance" and live and event is not None \
            and archive_key_of(event) not in archived:
        drift.append(Drift(aggregate_id, kind, "archive", event.version, None, "missing"))
    return [d for d in drift if d is not None]


async def repair(event: Event, events: EventStore, docs: DocumentStore, search: SearchIndex | None,
                 archive: EventArchive) -> None:
    """Restore what a DATABASE_RECONCILED event lists from the event store: each drifted document as its
    newest event says, each missing archive object as its event was archived, and the search index (when
    it drifted) rebuilt from the events. Idempotent: run again after a crash, it writes the same."""
    db = event.db_name
    entries = event.data.get("repaired", [])
    for entry in entries:
        if entry["store"] == "search":
            continue
        history = await events.history(db, KINDS[entry["kind"]], entry["aggregate_id"])
        newest = history[-1] if history else None
        if entry["store"] == "documents":
            if newest is None or newest.version is None:
                continue  # no event for it in this database: nothing to restore it to
            await docs.restore(db, entry["kind"], [(entry["aggregate_id"], newest.version,
                                                    None if newest.data.get("deleted") else newest.data)])
        elif entry["store"] == "archive" and newest is not None:
            await archive.put_once(archive_key_of(newest), json.dumps(newest.to_message()).encode())
    if search is not None and any(entry["store"] == "search" for entry in entries):
        await search.rebuild(db)
