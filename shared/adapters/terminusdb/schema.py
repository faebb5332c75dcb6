"""Mapping spice documents to TerminusDB schema and instance documents."""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

XSD = {"string": "xsd:string", "integer": "xsd:integer", "decimal": "xsd:decimal", "boolean": "xsd:boolean",
       "date": "xsd:date", "datetime": "xsd:dateTime"}
MANY = frozenset({"many", "1:n", "n:m"})
# Provenance every typed instance document carries; declared on root classes (subclasses inherit it).
# Optional, so adding a class never requires a field of instances stored before.
PROVENANCE = ("version", "source_command_id", "event_id", "created_by", "created_at", "updated_by", "updated_at",
              "archive_uri")
PROVENANCE_TYPES = {"version": "xsd:integer"}

# Spice's own records. Per TerminusDB database: the full class and instance documents (with
# version and tombstone); in the catalog database: the spice databases and the grants.
CLASS_RECORD, INSTANCE_RECORD = "SpiceClassRecord", "SpiceInstanceRecord"
DATABASE_RECORD, GRANT_RECORD = "SpiceDatabase", "SpiceGrant"
RESERVED_CLASSES = frozenset({CLASS_RECORD, INSTANCE_RECORD})


def _optional(range_: str) -> dict[str, str]:
    return {"@type": "Optional", "@class": range_}


def _record_class(record_type: str, comment: str, **fields: Any) -> dict[str, Any]:
    return {"@type": "Class", "@id": record_type, "@key": {"@type": "Random"},
            "@documentation": {"@comment": comment},
            **fields, "version": "xsd:integer", "deleted": "xsd:boolean", "doc": "xsd:string"}


DATABASE_SCHEMA = [
    _record_class(CLASS_RECORD, "Spice Harvester's class document (JSON in `doc`), version and tombstone.",
                  class_id="xsd:string"),
    _record_class(INSTANCE_RECORD, "Spice Harvester's instance document (JSON in `doc`), version and tombstone.",
                  instance_id="xsd:string", class_id="xsd:string"),
]
CATALOG_SCHEMA = [
    _record_class(DATABASE_RECORD, "A Spice Harvester database (JSON in `doc`); deleted ones are tombstones.",
                  name="xsd:string"),
    _record_class(GRANT_RECORD, "A role of a user on a Spice Harvester database (JSON in `doc`).",
                  db_name="xsd:string", user="xsd:string", role=_optional("xsd:string")),
]


def key(value: str) -> str:
    """An id suffix: percent-encoded, so ':' '/' '+' never reach TerminusDB's prefix or path handling."""
    return quote(value, safe="")


def instance_ref(class_id: str, instance_id: str) -> str:
    return f"{class_id}/{key(instance_id)}"


def _label(label: Any, lang: str | None) -> str | None:
    if isinstance(label, dict):
        return label.get(lang) if lang else None
    return label if isinstance(label, str) and label else None


def documentation(doc: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]] | None:
    """`@documentation` from the labels and descriptions; one entry per language when labels are maps."""
    members = [(p["name"], p.get("label"), p.get("description")) for p in doc.get("properties") or []]
    members += [(r["predicate"], r.get("label"), r.get("description")) for r in doc.get("relationships") or []]
    labels = [doc.get("label")] + [m[1] for m in members]
    languages = sorted({lang for label in labels if isinstance(label, dict) for lang in label})

    def entry(lang: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"@language": lang} if lang else {}
        if label := _label(doc.get("label"), lang):
            out["@label"] = label
        if doc.get("description"):
            out["@comment"] = doc["description"]
        props: dict[str, Any] = {}
        for name, member_label, description in members:
            prop: dict[str, str] = {}
            if text := _label(member_label, lang):
                prop["@label"] = text
            if description:
                prop["@comment"] = description
            if prop:
                props[name] = prop
        if props:
            out["@properties"] = props
        return out

    if languages:
        return [entry(lang) for lang in languages]
    plain = entry(None)
    return plain or None


def property_range(prop: dict[str, Any]) -> str:
    kind = prop["type"]
    if kind == "link":
        target = prop.get("target") or (prop.get("constraints") or {}).get("target")
        if not target:
            raise ValueError(f"link property {prop['name']!r} names no target class")
        return str(target)
    if kind not in XSD:
        raise ValueError(f"property {prop['name']!r} has type {kind!r}, which has no TerminusDB mapping")
    return XSD[kind]


def class_schema(doc: dict[str, Any]) -> dict[str, Any]:
    """The TerminusDB schema document (graph_type=schema) for a spice class document."""
    class_id = doc.get("class_id") or doc["id"]
    schema: dict[str, Any] = {"@type": "Class", "@id": class_id}
    if doc.get("parent_class"):
        schema["@inherits"] = [doc["parent_class"]]
    else:
        for name in PROVENANCE:
            schema[name] = _optional(PROVENANCE_TYPES.get(name, "xsd:string"))
    if doc.get("abstract"):
        schema["@abstract"] = []
    for prop in doc.get("properties") or []:
        range_ = property_range(prop)
        schema[prop["name"]] = range_ if prop.get("required") else _optional(range_)
    for rel in doc.get("relationships") or []:
        family = "Set" if rel.get("cardinality", "n:1") in MANY else "Optional"
        schema[rel["predicate"]] = {"@type": family, "@class": rel["target"]}
    docs = documentation(doc)
    if docs:
        schema["@documentation"] = docs
    return schema


def lineage(class_id: str, classes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The class and its known ancestors, root first (stops at a gap or a cycle)."""
    chain: list[dict[str, Any]] = []
    current: str | None = class_id
    while current and current in classes and all(c is not classes[current] for c in chain):
        chain.append(classes[current])
        current = classes[current].get("parent_class")
    return list(reversed(chain))


def members(class_id: str, classes: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str | None, bool]]:
    """name -> (kind, link target, many) for every property and relationship, inherited ones included.
    kind is a scalar type, "link" or "relationship"."""
    out: dict[str, tuple[str, str | None, bool]] = {}
    for doc in lineage(class_id, classes):
        for prop in doc.get("properties") or []:
            target = property_range(prop) if prop["type"] == "link" else None
            out[prop["name"]] = (prop["type"], target, False)
        for rel in doc.get("relationships") or []:
            out[rel["predicate"]] = ("relationship", rel["target"], rel.get("cardinality", "n:1") in MANY)
    return out


def instance_document(doc: dict[str, Any], classes: dict[str, dict[str, Any]],
                      located: dict[str, str]) -> dict[str, Any]:
    """The typed TerminusDB document of a spice instance: its properties, links as document references
    (to the class the linked instance really has, from `located`), and its provenance."""
    class_id = doc["class_id"]
    typed: dict[str, Any] = {"@type": class_id, "@id": instance_ref(class_id, doc["instance_id"])}
    for name, (kind, target, many) in members(class_id, classes).items():
        value = (doc.get("data") or {}).get(name)
        if value is None:
            continue
        if kind in ("link", "relationship"):
            ids = value if isinstance(value, list) else [value]
            refs = [{"@id": instance_ref(located.get(str(i), str(target)), str(i)), "@type": "@id"} for i in ids]
            if not many and len(refs) != 1:
                # The schema gives a link property one value (bare or Optional); refusing keeps
                # TerminusDB from holding less than the spice document says.
                raise ValueError(f"{class_id}.{name} is a single link in TerminusDB but holds {len(refs)} values")
            typed[name] = refs if many else refs[0]
        else:
            typed[name] = value
    for name in PROVENANCE:
        if doc.get(name) is not None:
            typed[name] = doc[name]
    return typed


def link_targets(doc: dict[str, Any], classes: dict[str, dict[str, Any]]) -> set[str]:
    """The instance ids a document links to."""
    found: set[str] = set()
    for name, (kind, _target, _many) in members(doc["class_id"], classes).items():
        value = (doc.get("data") or {}).get(name)
        if kind in ("link", "relationship") and value is not None:
            found.update(str(v) for v in (value if isinstance(value, list) else [value]))
    return found
