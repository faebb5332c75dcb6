"""FAKE TerminusDB's WOQL: the handful of query words the adapter sends, over the fake's instance graph."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

BASE, SCHEMA = "terminusdb:///data/", "terminusdb:///schema#"
XSD = "http://www.w3.org/2001/XMLSchema#"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
Triple = tuple[str, str, Any]  # object: a node IRI (str) or a literal ({"@type", "@value"})
Bindings = dict[str, Any]


class WoqlError(ValueError):
    """A query word or shape the fake does not model (the adapter should not send it)."""


def _iri(value: str) -> str:
    if value == "rdf:type":
        return RDF_TYPE
    if value.startswith("@schema:"):
        return SCHEMA + value[len("@schema:"):]
    return value if "://" in value else BASE + value


def triples(instances: dict[str, dict[str, Any]], field_types: dict[str, dict[str, str]]) -> list[Triple]:
    """The instance graph as triples: rdf:type per document, one triple per field value (a reference is a
    node, a list gives one triple per member). `field_types` maps a class to its fields' xsd ranges."""
    out: list[Triple] = []
    for doc_id, doc in instances.items():
        subject = BASE + doc_id
        out.append((subject, RDF_TYPE, SCHEMA + doc["@type"]))
        types = field_types.get(doc["@type"], {})
        for name, raw in doc.items():
            if name.startswith("@"):
                continue
            for item in raw if isinstance(raw, list) else [raw]:
                if isinstance(item, dict) and set(item) == {"@ref"}:
                    out.append((subject, SCHEMA + name, BASE + item["@ref"]))
                else:
                    out.append((subject, SCHEMA + name, {"@type": types.get(name, "xsd:string"), "@value": item}))
    return out


def _term(spec: dict[str, Any], bound: Bindings) -> tuple[str | None, Any]:
    """(variable name or None, the fixed value or the variable's binding, None when free)."""
    if "variable" in spec:
        return spec["variable"], bound.get(spec["variable"])
    if "node" in spec:
        return None, _iri(spec["node"])
    if "data" in spec:
        return None, {"@type": spec["data"]["@type"], "@value": spec["data"]["@value"]}
    raise WoqlError(f"term {spec!r}")


def _same(fixed: Any, actual: Any) -> bool:
    if isinstance(fixed, dict) and isinstance(actual, dict):
        return bool(fixed["@value"] == actual["@value"])
    return bool(fixed == actual)


def solve(query: dict[str, Any], graph: list[Triple], bound: Bindings) -> Iterator[Bindings]:
    kind = query.get("@type")
    if kind == "Triple":
        terms = [_term(query[k], bound) for k in ("subject", "predicate", "object")]
        for triple in graph:
            found = dict(bound)
            for (name, fixed), actual in zip(terms, triple, strict=True):
                if fixed is not None and not _same(fixed, actual):
                    break
                if name is not None:
                    found[name] = actual
            else:
                yield found
    elif kind == "Member":
        name, fixed = _term(query["member"], bound) if "variable" in query["member"] else (None, None)
        for item in query["list"]["list"]:
            _, value = _term(item, bound)
            if fixed is not None and not _same(fixed, value):
                continue
            yield {**bound, name: value} if name else dict(bound)
    elif kind == "And":
        yield from _conjunction(query["and"], graph, bound)
    elif kind == "Select":
        for found in solve(query["query"], graph, bound):
            yield {k: v for k, v in found.items() if k in query["variables"] or k in bound}
    elif kind == "Limit":
        for n, found in enumerate(solve(query["query"], graph, bound)):
            if n >= int(query["limit"]):
                return
            yield found
    elif kind == "Start":
        for n, found in enumerate(solve(query["query"], graph, bound)):
            if n >= int(query["start"]):
                yield found
    elif kind == "OrderBy":
        solutions = list(solve(query["query"], graph, bound))
        for template in reversed(query["ordering"]):  # stable sorts: the first template decides last
            by = str(template["variable"])
            solutions.sort(key=lambda found: _sort_key(found[by]), reverse=template.get("order") == "desc")
        yield from solutions
    elif kind == "Greater":
        _, left = _term(query["left"], bound)
        _, right = _term(query["right"], bound)
        if left is not None and right is not None and _sort_key(left) > _sort_key(right):
            yield dict(bound)
    elif kind == "Count":
        name = query["count"]["variable"]
        yield {**bound, name: {"@type": "xsd:decimal", "@value": sum(1 for _ in solve(query["query"], graph, bound))}}
    else:
        raise WoqlError(f"query word {kind!r}")


def _sort_key(value: Any) -> str:
    return str(value["@value"] if isinstance(value, dict) else value)


def _conjunction(parts: list[dict[str, Any]], graph: list[Triple], bound: Bindings) -> Iterator[Bindings]:
    if not parts:
        yield bound
        return
    for found in solve(parts[0], graph, bound):
        yield from _conjunction(parts[1:], graph, found)


def shown(value: Any) -> Any:
    """A binding as the live server answered it: a node as its IRI compacted ("Person/p1",
    "@schema:employer", "rdf:type"), a literal as {"@type": "xsd:...", "@value"}."""
    if isinstance(value, dict):
        return {"@type": value["@type"].replace(XSD, "xsd:"), "@value": value["@value"]}
    if value == RDF_TYPE:
        return "rdf:type"
    if value.startswith(SCHEMA):
        return "@schema:" + value[len(SCHEMA):]
    return value[len(BASE):] if value.startswith(BASE) else value
