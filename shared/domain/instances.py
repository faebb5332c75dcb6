"""Instances: the properties a class (with its ancestors) defines, and validating data against them."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.domain.ontology import Property

INSTANCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
MAX_BULK = 10_000
# Keys of an instance document that are not properties (a property may not use these names).
RESERVED = frozenset({"instance_id", "class_id", "data", "version", "source_command_id", "event_id",
                      "created_by", "created_at", "updated_by", "updated_at", "archive_uri", "deleted"})


def check_instance_id(value: Any) -> str:
    # '..' is refused too: the id is a segment of the instance's archive key.
    if not isinstance(value, str) or not INSTANCE_ID.fullmatch(value) or ".." in value:
        raise ValueError(f"instance_id {value!r} is not valid: a letter or digit first, then letters, digits,"
                         " '_', '.', ':' or '-' (at most 200, no '..')")
    return value


def new_instance_id(class_id: str, seed: str | None = None) -> str:
    """A fresh id; with a `seed` (a request's idempotency key and the item's place), the same one every
    time, so a retried request is recognisably the same request."""
    suffix = uuid.uuid5(uuid.NAMESPACE_URL, seed).hex if seed is not None else uuid.uuid4().hex
    return f"{class_id.lower()}-{suffix[:16]}"


class ClassNotUsable(Exception):
    """The class (or one of its ancestors) is missing, or abstract."""


def lineage(class_id: str, classes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The class document and its ancestors, root first. Raises ClassNotUsable on a gap or a cycle."""
    chain: list[dict[str, Any]] = []
    seen: set[str] = set()
    current: str | None = class_id
    while current:
        if current in seen:
            raise ClassNotUsable(f"class {class_id!r} has a cyclic parent chain at {current!r}")
        seen.add(current)
        doc = classes.get(current)
        if doc is None:
            raise ClassNotUsable(f"class {current!r} does not exist")
        chain.append(doc)
        current = doc.get("parent_class")
    return list(reversed(chain))


def effective_properties(class_id: str, classes: dict[str, dict[str, Any]]) -> dict[str, Property]:
    """Every property an instance of the class may have: inherited ones first, a subclass's own
    definition of a name replacing its ancestor's."""
    props: dict[str, Property] = {}
    for doc in lineage(class_id, classes):
        for raw in doc.get("properties", []):
            prop = Property.model_validate(raw)
            props[prop.name] = prop
    return props


MANY = frozenset({"many", "1:n", "n:m"})


@dataclass(frozen=True)
class Slot:
    """A relationship an instance may fill: instance id(s) of `target` (a list when `many`)."""

    target: str
    many: bool


def effective_relationships(class_id: str, classes: dict[str, dict[str, Any]]) -> dict[str, Slot]:
    """The class's relationships with its ancestors', by predicate (a subclass's own one wins)."""
    slots: dict[str, Slot] = {}
    for doc in lineage(class_id, classes):
        for rel in doc.get("relationships", []):
            slots[rel["predicate"]] = Slot(rel["target"], rel.get("cardinality", "n:1") in MANY)
    return slots


def descendants(class_id: str, classes: dict[str, dict[str, Any]]) -> set[str]:
    """The class and every class that inherits from it (links to a class accept its subclasses)."""
    result = {class_id}
    changed = True
    while changed:
        changed = False
        for cid, doc in classes.items():
            if cid not in result and doc.get("parent_class") in result:
                result.add(cid)
                changed = True
    return result


def link_slots(class_id: str, classes: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(class, property or predicate) of every place an instance of `class_id` may be linked from: link
    properties and relationships, inherited ones included, whose target is the class or an ancestor."""
    try:
        accepted = {str(doc.get("class_id") or doc.get("id")) for doc in lineage(class_id, classes)}
    except ClassNotUsable:
        accepted = {class_id}
    slots: list[tuple[str, str]] = []
    for cid in sorted(classes):
        try:
            props, rels = effective_properties(cid, classes), effective_relationships(cid, classes)
        except (ClassNotUsable, ValueError):
            continue
        slots += [(cid, name) for name, prop in props.items() if prop.type == "link" and prop.target in accepted]
        slots += [(cid, name) for name, slot in rels.items() if slot.target in accepted]
    return slots


@dataclass(frozen=True)
class LinkRef:
    """A link value: `instance_id` must be a live instance of `target` (or of a subclass)."""

    field: str
    target: str
    instance_id: str


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _type_problem(prop: Property, value: Any) -> str | None:
    t = prop.type
    if t == "string":
        return None if isinstance(value, str) else "must be a string"
    if t == "integer":
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
    if t == "decimal":
        return None if _number(value) is not None else "must be a number"
    if t == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if t == "date":
        try:
            date.fromisoformat(value)
            return None
        except (TypeError, ValueError):
            return "must be a date (YYYY-MM-DD)"
    if t == "datetime":
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            return None
        except (AttributeError, TypeError, ValueError):
            return "must be an ISO-8601 date-time"
    if t == "link":
        return None if isinstance(value, str) and value else "must be the instance_id of a linked instance"
    return f"has unsupported type {t!r}"


def _constraint(c: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in c and c[name] is not None:
            return c[name]
    return None


def _constraint_problems(prop: Property, value: Any) -> list[str]:
    c = prop.constraints
    out: list[str] = []
    number = _number(value)
    if number is not None:
        low = _constraint(c, "min", "minimum", "min_value")
        high = _constraint(c, "max", "maximum", "max_value")
        if low is not None and number < Decimal(str(low)):
            out.append(f"must be at least {low}")
        if high is not None and number > Decimal(str(high)):
            out.append(f"must be at most {high}")
    if isinstance(value, str):
        shortest = _constraint(c, "min_length", "minLength")
        longest = _constraint(c, "max_length", "maxLength")
        if shortest is not None and len(value) < int(shortest):
            out.append(f"must be at least {shortest} characters long")
        if longest is not None and len(value) > int(longest):
            out.append(f"must be at most {longest} characters long")
        pattern = _constraint(c, "pattern")
        if pattern is not None:
            try:
                if not re.fullmatch(str(pattern), value):
                    out.append(f"must match the pattern {pattern!r}")
            except re.error:
                out.append(f"cannot be checked: the class's pattern {pattern!r} is not a valid expression")
    allowed = _constraint(c, "enum", "allowed_values", "one_of")
    if isinstance(allowed, list) and value not in allowed:
        out.append(f"must be one of {', '.join(map(repr, allowed))}")
    return out


@dataclass(frozen=True)
class Checked:
    """The outcome of validating one instance: its complete data, problems, and links to verify."""

    data: dict[str, Any]
    problems: list[dict[str, str]]
    links: list[LinkRef]


def validate(props: dict[str, Property], data: dict[str, Any], base: dict[str, Any] | None = None,
             slots: dict[str, Slot] | None = None) -> Checked:
    """Validate `data` (a create's properties and relationships, or an update's changed ones over
    `base`). Every problem is listed; `data` in the result is the full map that would be stored."""
    problems: list[dict[str, str]] = []
    slots = slots or {}
    merged = dict(base or {})
    for name, value in data.items():
        if name == "instance_id":
            continue
        if name not in props and name not in slots:
            problems.append({"field": name, "message": f"{name!r} is not a property or relationship of this class"})
            continue
        merged[name] = value
    if base is None:  # defaults fill what a create leaves out
        for name, prop in props.items():
            if name not in merged and prop.default is not None:
                merged[name] = prop.default
    links: list[LinkRef] = []
    for name, prop in props.items():
        value = merged.get(name)
        if value is None:
            merged.pop(name, None)
            if prop.required:
                problems.append({"field": name, "message": f"{name!r} is required"})
            continue
        bad = _type_problem(prop, value)
        if bad:
            problems.append({"field": name, "message": f"{name!r} {bad} (got {value!r})"})
            continue
        for msg in _constraint_problems(prop, value):
            problems.append({"field": name, "message": f"{name!r} {msg} (got {value!r})"})
        if prop.type == "link" and prop.target:
            links.append(LinkRef(name, prop.target, value))
    for name, slot in slots.items():
        value = merged.get(name)
        if value is None:
            merged.pop(name, None)
            continue
        ids = value if slot.many and isinstance(value, list) else [value]
        if slot.many:
            merged[name] = ids  # a many-relationship is stored as a list, even when given one id
        if not all(isinstance(i, str) and i for i in ids):
            shape = "an instance_id or a list of them" if slot.many else "an instance_id"
            problems.append({"field": name, "message": f"relationship {name!r} must be {shape} (got {value!r})"})
            continue
        links.extend(LinkRef(name, slot.target, i) for i in ids)
    return Checked(data=merged, problems=problems, links=links)


def link_problems(links: list[LinkRef], found: dict[str, str], accepted: dict[str, set[str]]) -> list[dict[str, str]]:
    """Problems for links whose instance is missing (`found`: id -> class) or of the wrong class
    (`accepted`: target -> the target and its subclasses)."""
    out: list[dict[str, str]] = []
    for link in links:
        cls = found.get(link.instance_id)
        if cls is None:
            out.append({"field": link.field, "message": f"{link.field!r} links to {link.instance_id!r}, which is not"
                        f" an existing {link.target} instance"})
        elif cls not in accepted.get(link.target, {link.target}):
            out.append({"field": link.field, "message": f"{link.field!r} links to {link.instance_id!r}, a {cls}, "
                        f"not a {link.target}"})
    return out


def archive_key(db_name: str, class_id: str, instance_id: str, version: int, event_id: str) -> str:
    """The immutable S3 key of one instance event."""
    return f"{db_name}/{class_id}/{instance_id}/{version:010d}/{event_id}.json"


def instance_view(doc: dict[str, Any]) -> dict[str, Any]:
    """An instance as the API shows it: its properties at the top level (and under `data`), with its
    version and provenance."""
    data = dict(doc.get("data") or {})
    meta = {k: v for k, v in doc.items() if k != "data"}
    return {"instance_id": doc["instance_id"], "class_id": doc["class_id"], **data, "data": data, **meta}
