"""Every class and instance write to one TerminusDB database, coalesced into a few commits per batch."""
from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from shared.adapters.terminusdb import woql
from shared.adapters.terminusdb.client import (
    SCHEMA,
    CommitRetriesExceeded,
    DataVersionMismatch,
    TerminusClient,
    TerminusError,
)
from shared.adapters.terminusdb.schema import (
    CLASS_RECORD,
    INSTANCE_RECORD,
    class_schema,
    instance_document,
    instance_ref,
    key,
    link_targets,
)

SYSTEM_AUTHOR = "spice-harvester"
READ_CHUNK = 1000  # records asked for in one WOQL query
# Records whose versions are remembered; beyond it the cache starts again (memory stays bounded).
CACHE_LIMIT = 200_000
CONFLICTS = (DataVersionMismatch, CommitRetriesExceeded)
# Commits between two roll-ups of the branch's layers. Measured on 12.0.6: a schema commit's cost grows
# with the layers under it as well as with the schema; rolling up every 10 commits (about 20 ms each)
# took 200 one-class schema commits from 105 s to 42 s.
OPTIMIZE_EVERY = 10
FLUSH_AFTER = 2.0  # seconds a writer with unwritten schema documents waits idle before writing them

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """One version-conditional change of a class or an instance: its new spice document, or a deletion."""

    record_type: str  # CLASS_RECORD or INSTANCE_RECORD
    key: str  # class_id or instance_id
    version: int
    doc: dict[str, Any] | None  # None: delete
    author: str
    message: str
    force: bool = False  # unconditional (a repair or a replay restoring what the events say): no version check

    @property
    def record_id(self) -> str:
        return f"{self.record_type}/{key(self.key)}"

    def record(self, class_id: str = "") -> dict[str, Any]:
        """The spice record written for it; for a deletion a tombstone (an instance's names its last class)."""
        field_name = "class_id" if self.record_type == CLASS_RECORD else "instance_id"
        doc = self.doc if self.doc is not None else {field_name: self.key, "deleted": True, "version": self.version}
        if self.doc is None and self.record_type == INSTANCE_RECORD:
            doc = {**doc, "class_id": class_id}
        out: dict[str, Any] = {"@type": self.record_type, "@id": self.record_id, field_name: self.key,
                               "version": self.version, "deleted": self.doc is None, "doc": json.dumps(doc)}
        if self.record_type == INSTANCE_RECORD:
            out["class_id"] = str(doc.get("class_id", ""))
        return out


@dataclass(frozen=True)
class Held:
    """What a record says: its version, whether it is a tombstone, and (instances) its class."""

    version: int
    deleted: bool
    class_id: str


def held(raw: dict[str, Any]) -> Held:
    # Numbers come back as JSON numbers (v10, v11.2+, v12) or strings (v11.0/11.1): int() takes both.
    return Held(int(raw["version"]), raw.get("deleted") in (True, "true"), str(raw.get("class_id", "")))


@dataclass
class Cache:
    """What this process knows the database holds, valid only at `data_version` (the branch head it last
    read or wrote). Every write is conditional on that data version, so a stale cache can never decide a
    write: another writer's commit makes TerminusDB refuse it, and the cache is dropped and read again."""

    data_version: str | None = None
    records: dict[str, dict[str, Held | None]] = field(default_factory=lambda: {CLASS_RECORD: {}, INSTANCE_RECORD: {}})
    classes: dict[str, dict[str, Any]] | None = None  # live class documents (spice's records), when loaded
    schemas: set[str] | None = None  # classes TerminusDB has a schema document of, when loaded

    def unwritten(self) -> dict[str, dict[str, Any]]:
        """Live classes whose schema document is still to be written (created since the last flush)."""
        return {cid: doc for cid, doc in (self.classes or {}).items() if cid not in (self.schemas or set())}

    def get(self, record_type: str, name: str) -> Held | None:
        return self.records[record_type].get(name)


def _authorship(pairs: list[tuple[str, str]]) -> tuple[str, str]:
    """The commit's author and message from (acting user, command) pairs: the user and the command when
    there is one of each, so TerminusDB's log carries provenance; a batch of several names every command
    (each document keeps its own provenance)."""
    authors = sorted({author for author, _ in pairs})
    messages = sorted({message for _, message in pairs})
    return (authors[0] if len(authors) == 1 else SYSTEM_AUTHOR), " ".join(messages) or SYSTEM_AUTHOR


@dataclass
class _Unit:
    """One caller's changes and the future it waits on."""

    changes: list[Change]
    done: asyncio.Future[None]


class DatabaseWriter:
    """The one writer of a TerminusDB database in this process.

    Concurrent callers (a pipeline batch runs many commands side by side) queue their changes; one drain
    task commits everything queued so far together: one schema commit, one instance commit, plus one per
    kind of deletion, instead of several commits per command that race one another on the branch head.
    Serialising here is what keeps TerminusDB from retrying its own commits into a 500."""

    def __init__(self, client: TerminusClient, tdb: str, max_attempts: int = 30) -> None:
        self.client, self.tdb, self.max_attempts = client, tdb, max_attempts
        self.cache = Cache()
        self._since_optimized = 0
        self._idle: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None  # kept referenced while it runs
        self._queue: list[_Unit] = []
        self._drain: asyncio.Task[None] | None = None

    async def write(self, changes: list[Change]) -> None:
        """Commit the changes (with whatever else is queued); an empty list writes the unwritten schemas."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        unit = _Unit(changes, asyncio.get_running_loop().create_future())
        # One event loop appends and the drain takes the whole queue at once, so nothing is lost between
        # them. A caller's next write of the same aggregate comes only after this one is settled (the
        # pipeline runs an aggregate's commands one after another), so a batch never reorders them; and
        # within a batch the newest version of a record wins, as it would applied one by one.
        self._queue.append(unit)
        if self._drain is None or self._drain.done():
            self._drain = asyncio.create_task(self._run())
        await unit.done

    def stop(self) -> None:
        """No more idle flushes (the store closes); what is unwritten is read back by the next writer."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _flush_when_idle(self) -> None:
        if self.cache.unwritten() and self._idle is None:
            self._idle = asyncio.get_running_loop().call_later(FLUSH_AFTER, self._flush)

    def _flush(self) -> None:
        self._idle = None

        async def flush() -> None:
            try:
                await self.write([])
            except Exception:  # noqa: BLE001 — tried again by the next write, or read back after a restart
                log.exception("writing the schema documents of %s failed", self.tdb)

        self._flushing = asyncio.create_task(flush())

    async def _run(self) -> None:
        while self._queue:
            units, self._queue = self._queue, []
            try:
                await self._commit([c for u in units for c in u.changes])
            except Exception as exc:  # noqa: BLE001 — handed to the callers, one by one if need be
                if len(units) == 1:
                    _settle(units[0], exc)
                    continue
                # The batch failed as a whole (say one document the schema check refuses): each caller's
                # changes alone, so a bad one fails alone and the others commit.
                for unit in units:
                    try:
                        await self._commit(unit.changes)
                    except Exception as alone:  # noqa: BLE001
                        _settle(unit, alone)
                    else:
                        _settle(unit, None)
            except BaseException:
                for unit in units:  # cancelled (the loop stops): nobody waits forever
                    _settle(unit, RuntimeError(f"the writer of {self.tdb} stopped"))
                raise
            else:
                for unit in units:
                    _settle(unit, None)
        self._flush_when_idle()

    async def _commit(self, changes: list[Change]) -> None:
        """Compare-and-swap on the data version: the snapshot is valid at the cache's data version and the
        first write is conditional on it; if any commit landed since, TerminusDB refuses (DataVersionMismatch)
        and everything is read again. TerminusDB giving up on its own internal retries (a 500) is the same
        situation seen from inside the server: read again and retry."""
        newest: dict[tuple[str, str], Change] = {}
        for change in changes:  # one change per record in a commit: the newest version wins anyway
            seen = newest.get((change.record_type, change.key))
            if seen is None or seen.version < change.version:
                newest[(change.record_type, change.key)] = change
        batch = list(newest.values())
        for attempt in range(self.max_attempts):
            try:
                await self._load(batch)
                fresh = [c for c in batch if c.force or _newer(self.cache.get(c.record_type, c.key), c.version)]
                if fresh or (not batch and self.cache.unwritten()):  # nothing but the unwritten schemas: a flush
                    await self._write(fresh)
                return
            except CONFLICTS:
                self.cache = Cache()
                await asyncio.sleep(random.uniform(0, min(0.01 * 2 ** attempt, 0.5)))
            except BaseException:
                self.cache = Cache()  # a failed write may have left part of the batch behind: read again
                raise
        raise TimeoutError(f"TerminusDB {self.tdb}: gave up after {self.max_attempts} write conflicts")

    async def _load(self, batch: list[Change]) -> None:
        """Fill the cache with what the batch's decisions need: its records, the classes, and the classes
        of the instances its documents link to. The data version is read *before* the records."""
        cache = self.cache
        if cache.data_version is None:
            cache.data_version = await self.client.data_version(self.tdb)
        if cache.classes is None:
            records = await self.client.documents(self.tdb, CLASS_RECORD)
            cache.records[CLASS_RECORD] = {str(r["class_id"]): held(r) for r in records}  # every class: complete
            cache.classes = {str(r["class_id"]): json.loads(r["doc"]) for r in records
                             if not held(r).deleted}
        if cache.schemas is None:
            cache.schemas = {str(d["@id"]) for d in await self.client.schema(self.tdb) if d.get("@type") == "Class"}
        wanted: set[str] = set()  # the instance records to know (the class records are all loaded)
        for change in batch:
            if change.record_type == INSTANCE_RECORD:
                wanted.add(change.key)
                if change.doc is not None:
                    wanted |= link_targets(change.doc, self._classes_with(batch))
        missing = sorted(n for n in wanted if n not in cache.records[INSTANCE_RECORD])
        if missing:
            if len(cache.records[INSTANCE_RECORD]) > CACHE_LIMIT:
                cache.records[INSTANCE_RECORD] = {}
            found = await records_held(self.client, self.tdb, INSTANCE_RECORD, missing)
            cache.records[INSTANCE_RECORD].update({n: found.get(n) for n in missing})

    def _classes_with(self, batch: list[Change]) -> dict[str, dict[str, Any]]:
        """The live classes once the batch's class changes are in (instances may use a class the same
        batch creates)."""
        classes = dict(self.cache.classes or {})
        for change in batch:
            if change.record_type == CLASS_RECORD:
                if change.doc is None:
                    classes.pop(change.key, None)
                else:
                    classes[change.key] = change.doc
        return classes

    async def _write(self, fresh: list[Change]) -> None:
        """The batch's commits, in an order that a crash anywhere leaves repairable by the redelivery:
        schemas before the instances that use them, typed documents before spice's records (spice reads
        the records, so it never names a document not written), and the records last.

        A batch of nothing but new classes writes only their records, and their schema documents wait
        (`Cache.unwritten`): a schema commit's cost grows with the whole schema on TerminusDB 12.0.6 (it
        infers a migration and checks the schema at every commit), so one commit takes every class created
        since the last, as soon as anything else is written (an instance can only be written once its
        class is), or when the writer has been idle for FLUSH_AFTER seconds. A crash in between loses
        nothing: what is unwritten is read back as the classes recorded with no schema document."""
        cache = self.cache
        assert cache.classes is not None and cache.schemas is not None, "loaded by _load"
        lazy = bool(fresh) and all(c.record_type == CLASS_RECORD and c.doc is not None and c.key not in cache.schemas
                                   for c in fresh)
        classes = self._classes_with(fresh)
        changed = {c.key for c in fresh if c.record_type == CLASS_RECORD and c.doc is not None}
        # Not lazy: every class still unwritten goes with this commit, and the classes this batch changes.
        flushed = {} if lazy else {cid: doc for cid, doc in classes.items()
                                   if cid not in cache.schemas or cid in changed}
        author, message = _authorship([(c.author, c.message) for c in fresh])
        # The schema commit names the commands of the classes it writes (some were recorded earlier).
        schema_author, schema_message = _authorship([
            (str(doc.get("updated_by") or SYSTEM_AUTHOR), str(doc.get("source_command_id") or SYSTEM_AUTHOR))
            for doc in flushed.values()])
        located = {c.key: str(c.doc["class_id"]) for c in fresh if c.record_type == INSTANCE_RECORD and c.doc}
        for name, known in cache.records[INSTANCE_RECORD].items():
            if known is not None and not known.deleted:
                located.setdefault(name, known.class_id)

        def live(change: Change) -> Held | None:
            current = cache.get(change.record_type, change.key)
            return current if current is not None and not current.deleted else None

        schemas = [class_schema(doc) for _, doc in sorted(flushed.items())]
        typed = [instance_document(c.doc, classes, located)
                 for c in fresh if c.record_type == INSTANCE_RECORD and c.doc is not None]
        gone_instances = [instance_ref(h.class_id, c.key) for c in fresh
                          if c.record_type == INSTANCE_RECORD and c.doc is None and (h := live(c)) is not None]
        # Only what TerminusDB has a schema document of is deleted from the schema.
        gone_classes = [c.key for c in fresh if c.record_type == CLASS_RECORD and c.doc is None
                        and c.key in cache.schemas]
        version = cache.data_version
        if schemas:
            version = (await self.client.replace(self.tdb, schemas, author=schema_author, message=schema_message,
                                                 graph_type=SCHEMA, create=True, data_version=version)).data_version
        if gone_instances:
            version = await self._delete(gone_instances, author, message, "instance", version)
        if gone_classes:
            version = await self._delete(gone_classes, author, message, SCHEMA, version)
        records = [c.record(h.class_id if (h := cache.get(c.record_type, c.key)) else "") for c in fresh]
        if typed or records:
            version = (await self.client.replace(self.tdb, typed + records, author=author, message=message,
                                                 data_version=version)).data_version
        cache.data_version = version
        cache.schemas = (cache.schemas | {str(d["@id"]) for d in schemas}) - set(gone_classes)
        self._since_optimized += bool(schemas) + bool(gone_instances) + bool(gone_classes) + bool(typed or records)
        if self._since_optimized >= OPTIMIZE_EVERY:
            self._since_optimized = 0
            await self.client.optimize(self.tdb)
        for change, record in zip(fresh, records, strict=True):
            cache.records[change.record_type][change.key] = Held(change.version, change.doc is None,
                                                                 str(record.get("class_id", "")))
        if cache.classes is not None:
            cache.classes = classes

    async def _delete(self, ids: list[str], author: str, message: str, graph_type: str,
                      version: str | None) -> str | None:
        """Delete the documents as one commit; when some are gone already (a retry after a crash between
        this and the records), delete the rest one by one, a missing one being done."""
        try:
            return (await self.client.delete(self.tdb, ids, author=author, message=message, graph_type=graph_type,
                                             data_version=version)).data_version
        except TerminusError as exc:
            if exc.status != 404 or isinstance(exc, DataVersionMismatch):
                raise
        for one in ids:
            try:
                version = (await self.client.delete(self.tdb, [one], author=author, message=message,
                                                    graph_type=graph_type, data_version=version)).data_version
            except TerminusError as exc:
                if exc.status != 404 or isinstance(exc, DataVersionMismatch):
                    raise
        return version


async def records_held(client: TerminusClient, tdb: str, record_type: str, keys: list[str]) -> dict[str, Held]:
    """What the records among `keys` hold, by one WOQL query per READ_CHUNK (never a listing of every
    record); those with no record are absent, and so is everything when the database does not exist."""
    key_field = "class_id" if record_type == CLASS_RECORD else "instance_id"
    found: dict[str, Held] = {}
    for start in range(0, len(keys), READ_CHUNK):
        query = woql.records_among(record_type, key_field, keys[start:start + READ_CHUNK])
        try:
            rows = await client.woql(tdb, query)
        except TerminusError as exc:
            if exc.status == 404:
                return {}
            raise
        found.update({k: Held(*v) for k, v in woql.held_of(rows).items()})
    return found


def _newer(current: Held | None, version: int) -> bool:
    return current is None or current.version < version


def _settle(unit: _Unit, exc: BaseException | None) -> None:
    if unit.done.done():
        return
    if exc is None:
        unit.done.set_result(None)
    else:
        unit.done.set_exception(exc)
