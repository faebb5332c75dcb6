"""Search documents built from events: an instance with typed property fields, a class with its labels."""
from __future__ import annotations

from typing import Any

from shared.adapters.search.indices import FAMILIES, FAMILY_OF_TYPE
from shared.domain.commands import iso
from shared.domain.events import Event


def family(value: Any, declared: str | None) -> str | None:
    """Which typed field family a property value goes to: by the class's declared type, else by the JSON type."""
    if declared is not None:
        return FAMILY_OF_TYPE.get(declared, "s")
    sample = value[0] if isinstance(value, list) and value else value
    if isinstance(sample, bool):
        return "b"
    if isinstance(sample, int):
        return "i"
    if isinstance(sample, float):
        return "d"
    if isinstance(sample, str):
        return "s"
    return None


def _scalar(value: Any, fam: str) -> Any:
    if isinstance(value, dict | list):
        return None
    if fam == "s" and not isinstance(value, str):
        return None if value is None else str(value)
    return value


def typed_fields(values: dict[str, Any], types: dict[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {f: {} for f in FAMILIES}
    for name, value in values.items():
        if value is None:
            continue
        fam = family(value, types.get(name))
        if fam is None:
            continue
        if isinstance(value, list):
            cleaned = [c for c in (_scalar(i, fam) for i in value) if c is not None]
            if cleaned:
                out[fam][name] = cleaned
        elif (scalar := _scalar(value, fam)) is not None:
            out[fam][name] = scalar
    return out


def _provenance(event: Event) -> dict[str, Any]:
    d = event.data
    occurred = iso(event.occurred_at)
    return {
        "db_name": event.db_name,
        "version": event.version,
        "event_id": str(d.get("event_id") or event.event_id),
        "source_command_id": str(d.get("source_command_id") or event.command_id),
        "created_by": d.get("created_by") or event.actor,
        "created_at": d.get("created_at") or occurred,
        "updated_by": d.get("updated_by") or event.actor,
        "updated_at": d.get("updated_at") or occurred,
    }


def instance_document(event: Event, types: dict[str, str]) -> dict[str, Any]:
    d = event.data
    values = d.get("data") or {}
    return {
        "instance_id": event.aggregate_id,
        "class_id": d.get("class_id"),
        **_provenance(event),
        "archive_uri": d.get("archive_uri"),
        "data": values,
        **typed_fields(values, types),
    }


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, dict):
        return [v for v in value.values() if isinstance(v, str) and v]
    return []


def class_document(event: Event) -> dict[str, Any]:
    d = event.data
    label = d.get("label")
    labels = label if isinstance(label, dict) else {}
    return {
        "class_id": event.aggregate_id,
        **_provenance(event),
        "label_en": labels.get("en") if isinstance(labels.get("en"), str) else None,
        "label_ko": labels.get("ko") if isinstance(labels.get("ko"), str) else None,
        "label_all": _texts(label),
        "description": " ".join(_texts(d.get("description"))) or None,
        "parent_class": d.get("parent_class"),
        "abstract": bool(d.get("abstract")),
        "property_names": [p["name"] for p in d.get("properties") or [] if isinstance(p, dict) and "name" in p],
        "doc": d,
    }


def property_types(class_doc: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: str(p.get("type", "string")) for p in class_doc.get("properties") or []
            if isinstance(p, dict) and "name" in p}
