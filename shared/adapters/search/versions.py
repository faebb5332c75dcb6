"""The search index as reconciliation reads it: every document's version and source, per database and kind."""
from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from shared.adapters.postgres.event_store import PostgresEventStore
from shared.adapters.search import indices
from shared.adapters.search.rebuild import rebuild
from shared.ports import SearchIndex

KIND_INDEX = {"class": indices.CLASSES, "instance": indices.INSTANCES}
KEY_FIELD = {"class": "class_id", "instance": "instance_id"}
PAGE, KEEP_ALIVE = 1000, "2m"


class ElasticsearchSearchIndex(SearchIndex):
    def __init__(self, es: AsyncElasticsearch, namespace: str, events: PostgresEventStore) -> None:
        self.es, self.namespace, self.events = es, namespace, events

    async def rebuild(self, db_name: str) -> None:
        await rebuild(self.es, self.events, self.namespace, db_name)

    async def versions(self, db_name: str, kind: str) -> AsyncGenerator[tuple[str, int, dict[str, Any]], None]:
        # Page after page in key order over one point in time (a consistent view, never the whole index in
        # memory). A keyword sorts by its UTF-8 bytes, which is the order Python sorts strings in; the key
        # field is the document's id in everything the projector writes.
        key = KEY_FIELD[kind]
        try:
            pit = (await self.es.open_point_in_time(index=indices.alias(self.namespace, db_name, KIND_INDEX[kind]),
                                                    keep_alive=KEEP_ALIVE))["id"]
        except NotFoundError:  # no index yet (or the database is gone): nothing indexed
            return
        try:
            after: list[Any] | None = None
            while True:
                resp = await self.es.search(pit={"id": pit, "keep_alive": KEEP_ALIVE}, size=PAGE, version=True,
                                            sort=[{key: {"order": "asc", "missing": "_first"}}],
                                            search_after=after, query={"match_all": {}})
                hits = resp["hits"]["hits"]
                for hit in hits:
                    yield hit["_id"], int(hit["_version"]), hit.get("_source") or {}
                if len(hits) < PAGE:
                    return
                pit, after = resp.get("pit_id", pit), hits[-1]["sort"]
        finally:
            await self.es.options(ignore_status=404).close_point_in_time(id=pit)
