"""The few WOQL queries the document store asks TerminusDB (JSON-LD, as `POST /api/woql` takes them)."""
from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from shared.adapters.terminusdb.schema import INSTANCE_RECORD

BASE = "terminusdb:///data/"


def var(name: str) -> dict[str, str]:
    return {"@type": "NodeValue", "variable": name}


def node(iri: str) -> dict[str, str]:
    return {"@type": "NodeValue", "node": iri}


def triple(subject: dict[str, Any], predicate: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"@type": "Triple", "subject": subject, "predicate": node(predicate), "object": obj}


def string(value: str) -> dict[str, Any]:
    return {"@type": "Value", "data": {"@type": "xsd:string", "@value": value}}


def boolean(value: bool) -> dict[str, Any]:
    return {"@type": "Value", "data": {"@type": "xsd:boolean", "@value": value}}


def live_records_of(class_id: str) -> list[dict[str, Any]]:
    """The live instance records of a class (exactly that class, as the PostgreSQL store lists them)."""
    record = var("Record")
    return [triple(record, "rdf:type", node(f"@schema:{INSTANCE_RECORD}")),
            triple(record, "@schema:class_id", string(class_id)),
            triple(record, "@schema:deleted", boolean(False))]


def count_live(class_id: str) -> dict[str, Any]:
    return {"@type": "Count", "query": {"@type": "And", "and": live_records_of(class_id)},
            "count": {"@type": "DataValue", "variable": "Count"}}


def page_live(class_id: str, limit: int, offset: int) -> dict[str, Any]:
    """A page of the class's live records' documents, in instance_id order (sorted by TerminusDB)."""
    found = {"@type": "And", "and": [
        *live_records_of(class_id),
        triple(var("Record"), "@schema:instance_id", {"@type": "Value", "variable": "Id"}),
        triple(var("Record"), "@schema:doc", {"@type": "Value", "variable": "Doc"})]}
    ordered = {"@type": "OrderBy", "ordering": [{"@type": "OrderTemplate", "variable": "Id", "order": "asc"}],
               "query": found}
    return {"@type": "Select", "variables": ["Id", "Doc"], "query": {
        "@type": "Limit", "limit": limit, "query": {"@type": "Start", "start": offset, "query": ordered}}}


def live_page(record_type: str, key_field: str, after: str | None, limit: int) -> dict[str, Any]:
    """The next `limit` live records of the type after key `after` (None: from the first), in key order:
    key, version and document. A page is found by key, not by offset, so every page costs the same."""
    record = var("Record")
    parts: list[dict[str, Any]] = [
        triple(record, "rdf:type", node(f"@schema:{record_type}")),
        triple(record, "@schema:deleted", boolean(False)),
        triple(record, f"@schema:{key_field}", {"@type": "Value", "variable": "Id"})]
    if after is not None:
        parts.append({"@type": "Greater", "left": {"@type": "DataValue", "variable": "Id"},
                      "right": {"@type": "DataValue", "data": {"@type": "xsd:string", "@value": after}}})
    parts += [triple(record, "@schema:version", {"@type": "Value", "variable": "Version"}),
              triple(record, "@schema:doc", {"@type": "Value", "variable": "Doc"})]
    ordered = {"@type": "OrderBy", "ordering": [{"@type": "OrderTemplate", "variable": "Id", "order": "asc"}],
               "query": {"@type": "And", "and": parts}}
    return {"@type": "Select", "variables": ["Id", "Version", "Doc"],
            "query": {"@type": "Limit", "limit": limit, "query": ordered}}


def records_among(record_type: str, key_field: str, keys: list[str]) -> dict[str, Any]:
    """Version, tombstone flag and class of the records whose `key_field` is one of `keys` (one request for
    any number; the ones with no record are simply absent)."""
    record = var("Record")

    def bound(name: str) -> dict[str, Any]:
        return {"@type": "Value", "variable": name}

    listed = {"@type": "DataValue", "list": [{"@type": "DataValue", "data": {"@type": "xsd:string", "@value": k}}
                                             for k in keys]}
    return {"@type": "Select", "variables": ["Key", "Version", "Deleted", "Class"], "query": {"@type": "And", "and": [
        {"@type": "Member", "member": {"@type": "DataValue", "variable": "Key"}, "list": listed},
        triple(record, f"@schema:{key_field}", bound("Key")),
        triple(record, "rdf:type", node(f"@schema:{record_type}")),
        triple(record, "@schema:version", bound("Version")),
        triple(record, "@schema:deleted", bound("Deleted")),
        triple(record, "@schema:class_id", bound("Class"))]}}


def held_of(rows: list[dict[str, Any]]) -> dict[str, tuple[int, bool, str]]:
    """records_among's answer: key -> (version, tombstone, class)."""
    return {str(value(r["Key"])): (int(value(r["Version"])), value(r["Deleted"]) in (True, "true"),
                                   str(value(r["Class"]))) for r in rows}


def linking_to(document_id: str, limit: int) -> dict[str, Any]:
    """Up to `limit` (subject, predicate) pairs whose object is the document: every link to it."""
    return {"@type": "Limit", "limit": limit, "query": {
        "@type": "Triple", "subject": var("Subject"), "predicate": var("Predicate"), "object": node(document_id)}}


def value(binding: Any) -> Any:
    """A bound value: a literal's `@value`, or a node's IRI."""
    return binding.get("@value") if isinstance(binding, dict) else binding


def instance_of_node(iri: str) -> str:
    """The instance id of a typed instance document's IRI ({base}{Class}/{percent-encoded id})."""
    short = iri[len(BASE):] if iri.startswith(BASE) else iri
    return unquote(short.split("/", 1)[1]) if "/" in short else short
