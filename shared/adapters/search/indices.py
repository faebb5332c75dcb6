"""Index names, explicit mappings and index lifecycle: per-database concrete indices behind two aliases."""
from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from shared.config import Settings

INSTANCES = "instances"
CLASSES = "classes"
KINDS = (INSTANCES, CLASSES)

# Typed property fields: one object per family, so two classes in a database may give the same property
# name different types without a mapping conflict. The family comes from the class's property type.
FAMILY_OF_TYPE = {"integer": "i", "decimal": "d", "boolean": "b", "date": "t", "datetime": "t"}
FAMILIES = ("s", "i", "d", "b", "t")
FAMILY_MAPPING: dict[str, dict[str, Any]] = {
    "s": {"type": "keyword", "ignore_above": 2048, "fields": {"text": {"type": "text"}}, "copy_to": "all_text"},
    "i": {"type": "long", "ignore_malformed": True},
    "d": {"type": "double", "ignore_malformed": True},
    "b": {"type": "boolean", "ignore_malformed": True},
    "t": {"type": "date", "ignore_malformed": True},
}

KEYWORD = {"type": "keyword"}
DATE = {"type": "date"}
TEXT_KEYWORD = {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}}
PROVENANCE = {
    "db_name": KEYWORD, "version": {"type": "long"}, "event_id": KEYWORD, "source_command_id": KEYWORD,
    "created_by": KEYWORD, "created_at": DATE, "updated_by": KEYWORD, "updated_at": DATE,
}

INSTANCE_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "dynamic_templates": [
        {f"family_{f}": {"path_match": f"{f}.*", "mapping": m}} for f, m in FAMILY_MAPPING.items()
    ],
    "properties": {
        "instance_id": KEYWORD, "class_id": KEYWORD, **PROVENANCE,
        "archive_uri": {"type": "keyword", "index": False},
        "all_text": {"type": "text"},  # every string property, through copy_to: what q searches
        "data": {"type": "object", "enabled": False},  # the instance's properties as written, not indexed
        **{f: {"type": "object", "dynamic": True} for f in FAMILIES},
    },
}

CLASS_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "class_id": {"type": "keyword", "fields": {"text": {"type": "text"}}}, **PROVENANCE,
        "label_en": TEXT_KEYWORD, "label_ko": TEXT_KEYWORD, "label_all": TEXT_KEYWORD,
        "description": {"type": "text"}, "parent_class": KEYWORD, "abstract": {"type": "boolean"},
        "property_names": KEYWORD,
        "doc": {"type": "object", "enabled": False},  # the class document as the event carried it
    },
}

MAPPINGS = {INSTANCES: INSTANCE_MAPPINGS, CLASSES: CLASS_MAPPINGS}
# gc_deletes: how long a delete's version is remembered. Long, so a late older event cannot resurrect a
# deleted document (the default is 60 s).
# refresh_interval: a projected change is searchable within a quarter second (ES's default is 1 s);
# these indices are small and written in batches, so the extra refreshes cost little.
INDEX_SETTINGS = {"number_of_shards": 1, "number_of_replicas": 0, "gc_deletes": "7d", "refresh_interval": "250ms"}


def client(settings: Settings, timeout: float = 30.0) -> AsyncElasticsearch:
    """The official async client; this distribution has no `GET /`, so never call info() or ping()."""
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)  # one INFO line per request otherwise
    return AsyncElasticsearch(settings.es_url, request_timeout=timeout)


def alias(namespace: str, db: str, kind: str) -> str:
    return f"{namespace.lower()}-{db}-{kind}"


def live_index(namespace: str, db: str, kind: str) -> str:
    """The concrete index the live projector creates when a database has none (a fixed name: creation races
    between workers end in 'already exists', never in two indices behind one alias)."""
    return f"{alias(namespace, db, kind)}-v0"


def fresh_index(namespace: str, db: str, kind: str) -> str:
    """A new concrete index for a rebuild."""
    return f"{alias(namespace, db, kind)}-v{int(time.time() * 1000)}{uuid.uuid4().hex[:4]}"


async def create_index(es: AsyncElasticsearch, index: str, kind: str, alias_name: str | None = None, *,
                       unserved: bool = False) -> bool:
    """Create a concrete index with its mapping (and alias); False when it already exists. `unserved`: no
    periodic refresh (an index being built that nobody searches yet; `serve` turns it on)."""
    body: dict[str, Any] = {"settings": {**INDEX_SETTINGS, **({"refresh_interval": "-1"} if unserved else {})},
                            "mappings": MAPPINGS[kind]}
    if alias_name is not None:
        body["aliases"] = {alias_name: {}}
    resp = await es.options(ignore_status=400).indices.create(index=index, **body)
    if resp.get("acknowledged"):
        return True
    if resp.get("error", {}).get("type") == "resource_already_exists_exception":
        return False
    raise RuntimeError(f"creating index {index} failed: {resp}")


async def serve(es: AsyncElasticsearch, names: list[str]) -> None:
    """Indices built `unserved` refresh like every other from now on, and show everything written to them
    (one settings change and one refresh for all of them)."""
    together = ",".join(names)
    await es.indices.put_settings(index=together, settings={"refresh_interval": INDEX_SETTINGS["refresh_interval"]})
    await es.indices.refresh(index=together)


async def behind(es: AsyncElasticsearch, alias_name: str) -> list[str]:
    """The concrete indices an alias points at (empty when it does not exist)."""
    try:
        resp = await es.indices.get_alias(name=alias_name)
    except NotFoundError:
        return []
    return sorted(resp.body)


async def has_database(es: AsyncElasticsearch, namespace: str, db: str) -> bool:
    return all([await behind(es, alias(namespace, db, kind)) for kind in KINDS])


async def ensure_database(es: AsyncElasticsearch, namespace: str, db: str) -> None:
    """Both aliases exist (creating the `-v0` indices for the missing ones)."""
    for kind in KINDS:
        name = alias(namespace, db, kind)
        if not await behind(es, name):
            await create_index(es, live_index(namespace, db, kind), kind, name)


async def drop_database(es: AsyncElasticsearch, namespace: str, db: str) -> list[str]:
    """Delete every index behind the database's aliases (there is no delete-by-query here)."""
    names: list[str] = []
    for kind in KINDS:
        names += await behind(es, alias(namespace, db, kind))
        names.append(live_index(namespace, db, kind))
    for name in dict.fromkeys(names):
        await es.indices.delete(index=name, ignore_unavailable=True)
    return names


async def drop_namespace(es: AsyncElasticsearch, namespace: str) -> list[str]:
    """Delete every index of a namespace (a finished test session's); wildcard deletes are refused, so by name."""
    dropped: list[str] = []
    for _ in range(3):  # an index deleted by someone else between listing and deleting fails the whole request
        resp = await es.options(ignore_status=404).indices.get(index=f"{namespace.lower()}-*",
                                                               allow_no_indices=True, expand_wildcards="open")
        names = sorted(n for n in resp.body if isinstance(n, str) and not n.startswith("."))
        if not names:
            break
        for start in range(0, len(names), 50):
            await es.options(ignore_status=404).indices.delete(index=",".join(names[start:start + 50]),
                                                               ignore_unavailable=True)
        dropped += names
    return sorted(set(dropped))
