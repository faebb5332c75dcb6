"""The search index as reconciliation reads it: every document's version and source, per database and kind."""
from __future__ import annotations

from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError
from elasticsearch.helpers import async_scan

from shared.adapters.postgres.event_store import PostgresEventStore
from shared.adapters.search import indices
from shared.adapters.search.rebuild import rebuild
from shared.ports import SearchIndex

KIND_INDEX = {"class": indices.CLASSES, "instance": indices.INSTANCES}


class ElasticsearchSearchIndex(SearchIndex):
    def __init__(self, es: AsyncElasticsearch, namespace: str, events: PostgresEventStore) -> None:
        self.es, self.namespace, self.events = es, namespace, events

    async def rebuild(self, db_name: str) -> None:
        await rebuild(self.es, self.events, self.namespace, db_name)

    async def versions(self, db_name: str, kind: str) -> dict[str, tuple[int, dict[str, Any]]]:
        found: dict[str, tuple[int, dict[str, Any]]] = {}
        try:
            async for hit in async_scan(self.es, index=indices.alias(self.namespace, db_name, KIND_INDEX[kind]),
                                        query={"query": {"match_all": {}}, "version": True}, size=1000):
                found[hit["_id"]] = (int(hit["_version"]), hit.get("_source") or {})
        except NotFoundError:  # no index yet (or the database is gone): nothing indexed
            return {}
        return found
