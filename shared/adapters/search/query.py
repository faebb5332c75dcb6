"""Search over the read model: instances (full text, property filters, sort, paging, counts) and classes."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import AsyncElasticsearch

from shared.adapters.search import indices
from shared.adapters.search.documents import property_types
from shared.domain.instances import instance_view
from shared.params import BadParameter, bounded_int

RESERVED = frozenset({"q", "class_id", "sort", "limit", "offset", "token"})
RANGE_OPS = ("gte", "gt", "lte", "lt")
META_SORT = {"instance_id": "keyword", "class_id": "keyword", "version": "long", "created_at": "date",
             "updated_at": "date", "created_by": "keyword", "updated_by": "keyword"}
UNMAPPED = {"s": "keyword", "i": "long", "d": "double", "b": "boolean", "t": "date"}
MAX_WINDOW = 10_000  # index.max_result_window
MAX_TERMS = 100


class BadQuery(ValueError):
    """A search parameter that cannot be understood: `status` is 400 (unknown name) or 422 (bad value)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class InstanceQuery:
    q: str | None = None
    class_id: str | None = None
    filters: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (property, op, values)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    limit: int = 20
    offset: int = 0


def parse_paging(params: Any, default_limit: int = 20) -> tuple[int, int]:
    def number(name: str, default: int, lo: int, hi: int) -> int:
        try:
            value = bounded_int(name, params.get(name), lo, hi, default)
        except BadParameter as exc:
            raise BadQuery(422, str(exc)) from exc
        assert value is not None  # a default was given
        return value

    limit, offset = number("limit", default_limit, 1, 1000), number("offset", 0, 0, MAX_WINDOW)
    if limit + offset > MAX_WINDOW:
        raise BadQuery(422, f"offset + limit must be at most {MAX_WINDOW}")
    return limit, offset


def parse_instance_query(params: Any) -> InstanceQuery:
    """From a multi-valued mapping (aiohttp's request.query): see the README's search section."""
    limit, offset = parse_paging(params)
    query = InstanceQuery(q=(params.get("q") or "").strip() or None, class_id=params.get("class_id") or None,
                          limit=limit, offset=offset)
    grouped: dict[tuple[str, str], list[str]] = {}
    for key in params:
        if key in RESERVED:
            continue
        name, _, op = key.partition("__")
        op = op or "eq"
        if not name or (op != "eq" and op not in RANGE_OPS):
            raise BadQuery(400, f"unknown filter {key!r}: use property=value, or property__gte / __gt / __lte "
                                "/ __lt=value")
        values = params.getall(key) if hasattr(params, "getall") else [params[key]]
        grouped.setdefault((name, op), [])
        grouped[(name, op)] += [v for v in values if v != ""]
    for (name, op), values in grouped.items():
        if not values:
            raise BadQuery(422, f"filter {name!r} has an empty value")
        if op != "eq" and len(values) > 1:
            raise BadQuery(422, f"range filter {name}__{op} given more than once")
        if len(values) > MAX_TERMS:
            raise BadQuery(422, f"filter {name!r} has more than {MAX_TERMS} values")
        query.filters.append((name, op, values))
    for part in (params.get("sort") or "").split(","):
        part = part.strip()
        if part:
            query.sort.append((part.lstrip("-+"), part.startswith("-")))
    return query


def families(classes: Iterable[dict[str, Any]], class_id: str | None) -> dict[str, set[str]]:
    """Property name → typed field families, over the class (and its ancestors) or over every class."""
    by_id = {c.get("class_id") or c.get("id"): c for c in classes}
    chosen: list[dict[str, Any]] = []
    if class_id is None:
        chosen = list(by_id.values())
    else:
        current: str | None = class_id
        while current and current in by_id and by_id[current] not in chosen:
            chosen.append(by_id[current])
            current = by_id[current].get("parent_class")
    out: dict[str, set[str]] = {}
    for doc in chosen:
        for name, ptype in property_types(doc).items():
            out.setdefault(name, set()).add(indices.FAMILY_OF_TYPE.get(ptype, "s"))
    return out


def _convert(fam: str, raw: str) -> Any:
    if fam == "i":
        return int(raw)
    if fam == "d":
        return float(raw)
    if fam == "b":
        if raw.lower() not in ("true", "false"):
            raise ValueError(raw)
        return raw.lower() == "true"
    return raw


def _filter_clause(name: str, op: str, values: list[str], fams: set[str]) -> dict[str, Any]:
    alternatives: list[dict[str, Any]] = []
    for fam in sorted(fams):
        try:
            converted = [_convert(fam, v) for v in values]
        except ValueError:
            continue
        path = f"{fam}.{name}"
        if op == "eq":
            alternatives.append({"terms": {path: converted}})
        else:
            clause: dict[str, Any] = {op: converted[0]}
            if fam == "t":
                clause["format"] = "strict_date_optional_time||epoch_millis"
            alternatives.append({"range": {path: clause}})
    if not alternatives:
        kinds = ", ".join(sorted({'s': 'string', 'i': 'integer', 'd': 'decimal', 'b': 'boolean',
                                  't': 'date'}[f] for f in fams))
        raise BadQuery(422, f"filter {name!r}: {values!r} is not a valid {kinds} value")
    return alternatives[0] if len(alternatives) == 1 else {"bool": {"should": alternatives,
                                                                    "minimum_should_match": 1}}


def build_instance_search(query: InstanceQuery, classes: list[dict[str, Any]]) -> dict[str, Any]:
    """The search request body (ES DSL) for an instance query; raises BadQuery."""
    if query.class_id is not None and not any((c.get("class_id") or c.get("id")) == query.class_id
                                              for c in classes):
        raise BadQuery(400, f"unknown class_id {query.class_id!r}")
    fams = families(classes, query.class_id)
    must: list[dict[str, Any]] = []
    if query.q:
        must.append({"simple_query_string": {"query": query.q, "fields": ["all_text", "instance_id^2"],
                                             "default_operator": "and", "lenient": True}})
    filters = []
    for name, op, values in query.filters:
        if name not in fams:
            where = f"class {query.class_id!r}" if query.class_id else "any class of this database"
            raise BadQuery(400, f"unknown property {name!r} in filter: not a property of {where}")
        filters.append(_filter_clause(name, op, values, fams[name]))
    sort: list[dict[str, Any]] = []
    for name, desc in query.sort:
        order = "desc" if desc else "asc"
        if name == "_score":
            sort.append({"_score": {"order": order}})
        elif name in fams:
            fam = sorted(fams[name])[0]
            sort.append({f"{fam}.{name}": {"order": order, "unmapped_type": UNMAPPED[fam], "missing": "_last"}})
        elif name in META_SORT:
            sort.append({name: {"order": order, "unmapped_type": META_SORT[name]}})
        else:
            raise BadQuery(400, f"cannot sort by {name!r}: not a property or one of "
                                f"{', '.join(sorted(META_SORT))}, _score")
    if not query.sort:
        sort.append({"_score": {"order": "desc"}})
    sort.append({"instance_id": {"order": "asc", "unmapped_type": "keyword"}})
    body: dict[str, Any] = {
        "query": {"bool": {"must": must or [{"match_all": {}}], "filter": filters}},
        "sort": sort, "from_": query.offset, "size": query.limit, "track_total_hits": True,
        "aggs": {"by_class": {"terms": {"field": "class_id", "size": 1000}}},
        "source_excludes": list(indices.FAMILIES),
    }
    if query.class_id is not None:  # counts stay per class (facets); the hits are narrowed afterwards
        body["post_filter"] = {"term": {"class_id": query.class_id}}
    return body


def _item(hit: dict[str, Any]) -> dict[str, Any]:
    """Shaped like the instance read API: properties at the top level and under `data`, then provenance."""
    source = {k: v for k, v in hit["_source"].items() if k != "db_name"}
    return {**instance_view(source), "score": hit.get("_score")}


async def search_instances(es: AsyncElasticsearch, namespace: str, db: str, query: InstanceQuery,
                           classes: list[dict[str, Any]]) -> dict[str, Any]:
    body = build_instance_search(query, classes)
    resp = await es.search(index=indices.alias(namespace, db, indices.INSTANCES), ignore_unavailable=True,
                           allow_no_indices=True, **body)
    buckets = resp.get("aggregations", {}).get("by_class", {}).get("buckets", [])
    return {"total": resp["hits"]["total"]["value"], "items": [_item(h) for h in resp["hits"]["hits"]],
            "counts": {b["key"]: b["doc_count"] for b in buckets}, "limit": query.limit, "offset": query.offset}


async def search_classes(es: AsyncElasticsearch, namespace: str, db: str, q: str | None, limit: int,
                         offset: int) -> dict[str, Any]:
    """Classes whose label (any language), id or description matches q; the last word may be a prefix."""
    if q:
        query: dict[str, Any] = {"bool": {"should": [
            {"multi_match": {"query": q, "type": "bool_prefix", "operator": "and",
                             "fields": ["label_all^3", "label_en^3", "label_ko^3", "class_id.text^2",
                                        "description"]}},
            {"term": {"class_id": {"value": q, "boost": 5}}},
            {"prefix": {"class_id": {"value": q, "case_insensitive": True}}},
            {"term": {"label_all.keyword": {"value": q, "boost": 5}}},
        ], "minimum_should_match": 1}}
        sort: list[Any] = [{"_score": {"order": "desc"}}, {"class_id": {"order": "asc"}}]
    else:
        query, sort = {"match_all": {}}, [{"class_id": {"order": "asc"}}]
    resp = await es.search(index=indices.alias(namespace, db, indices.CLASSES), ignore_unavailable=True,
                           allow_no_indices=True, query=query, sort=sort, from_=offset, size=limit,
                           track_total_hits=True)
    items = [{**h["_source"]["doc"], "version": h["_source"]["version"], "score": h.get("_score")}
             for h in resp["hits"]["hits"]]
    return {"total": resp["hits"]["total"]["value"], "items": items, "limit": limit, "offset": offset}
