"""Domain rules without any service: class validation, deciders, status transitions."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.domain.commands import Command, CommandType
from shared.domain.decide import Context, DependencyPending, decide
from shared.domain.events import EventType
from shared.domain.ontology import OntologyClass
from shared.domain.status import CommandStatus, StatusUpdate, apply_update


def person(**extra: object) -> dict[str, object]:
    return {"id": "Person", "label": {"en": "Person", "ko": "사람"},
            "properties": [{"name": "name", "type": "string", "required": True},
                           {"name": "born", "type": "date"}], **extra}


@pytest.mark.parametrize("body, fragment", [
    ({"id": "1bad"}, "class id"),
    ({"id": "P", "properties": [{"name": "x", "type": "blob"}]}, "unknown type"),
    ({"id": "P", "properties": [{"name": "x", "type": "string"}, {"name": "x", "type": "integer"}]},
     "more than once"),
    ({"id": "P", "properties": [{"name": "x", "type": "link"}]}, "names no target"),
    ({"id": "P", "label": {"english": "x"}}, "language code"),
    ({"id": "P", "parent_class": "P"}, "own parent"),
    ({"id": "P", "surprise": 1}, "Extra inputs"),
])
def test_invalid_classes_are_refused_with_a_reason(body: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError) as err:
        OntologyClass.model_validate(body)
    assert fragment in str(err.value)


def test_type_aliases_and_links_normalise() -> None:
    cls = OntologyClass.model_validate({"id": "Order", "properties": [
        {"name": "total", "type": "xsd:decimal"}, {"name": "buyer", "type": "link:Person"},
        {"name": "seller", "type": "link", "target": "Company"}]})
    assert [p.type for p in cls.properties] == ["decimal", "link", "link"]
    assert cls.referenced_classes() == {"Person", "Company"}


def command(kind: CommandType, payload: dict[str, object] | None = None, expected: int | None = None) -> Command:
    return Command(command_type=kind, aggregate_id="Person", db_name="db", actor="alice",
                   payload=payload or {}, expected_version=expected)


def test_create_then_stale_update_conflicts() -> None:
    created = decide(command(CommandType.CREATE_ONTOLOGY_CLASS, person()),
                     Context(current=None, last_version=0, database_exists=True))
    assert created.event_type is EventType.ONTOLOGY_CLASS_CREATED and created.version == 1
    assert created.data["created_by"] == "alice" and created.data["source_command_id"]
    stale = decide(command(CommandType.UPDATE_ONTOLOGY_CLASS, {"description": "x"}, expected=7),
                   Context(current=created.data, last_version=1, database_exists=True))
    assert stale.event_type is EventType.COMMAND_FAILED
    assert stale.data["error"]["code"] == "conflict"


def test_partial_update_keeps_unnamed_fields() -> None:
    created = decide(command(CommandType.CREATE_ONTOLOGY_CLASS, person()),
                     Context(current=None, last_version=0, database_exists=True))
    updated = decide(command(CommandType.UPDATE_ONTOLOGY_CLASS, {"description": "people"}, expected=1),
                     Context(current=created.data, last_version=1, database_exists=True))
    assert updated.event_type is EventType.ONTOLOGY_CLASS_UPDATED and updated.version == 2
    assert updated.data["description"] == "people"
    assert [p["name"] for p in updated.data["properties"]] == ["name", "born"]


def test_missing_parent_fails_but_pending_parent_waits() -> None:
    child = command(CommandType.CREATE_ONTOLOGY_CLASS, person(parent_class="Agent"))
    failed = decide(child, Context(current=None, last_version=0, database_exists=True))
    assert failed.data["error"]["missing"] == ["Agent"]
    with pytest.raises(DependencyPending):
        decide(child, Context(current=None, last_version=0, database_exists=True,
                              pending_creates=frozenset({"Agent"})))


def test_delete_of_unknown_or_used_class_fails() -> None:
    unknown = decide(command(CommandType.DELETE_ONTOLOGY_CLASS),
                     Context(current=None, last_version=0, database_exists=True))
    assert unknown.data["error"]["code"] == "not_found"
    used = decide(command(CommandType.DELETE_ONTOLOGY_CLASS),
                  Context(current={"version": 1, "created_by": "a", "created_at": "x"}, last_version=1,
                          database_exists=True, dependents={"Person": ["Employee"]}))
    assert used.data["error"]["code"] == "in_use"


def test_event_id_is_stable_for_a_command() -> None:
    cmd = command(CommandType.CREATE_ONTOLOGY_CLASS, person())
    ctx = Context(current=None, last_version=0, database_exists=True)
    assert decide(cmd, ctx).event_id == decide(cmd, ctx).event_id


def update(status: CommandStatus, message: str = "m", second: int = 0) -> StatusUpdate:
    return StatusUpdate(command_id=str(uuid.UUID(int=1)), status=status, message=message,
                        timestamp=datetime(2026, 1, 1, 0, 0, second, tzinfo=UTC),
                        command_type="CREATE_DATABASE", aggregate_id="db", db_name="db", actor="a",
                        created_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_status_transitions() -> None:
    processing = update(CommandStatus.PROCESSING, second=1)
    rec = apply_update(None, processing)
    assert rec is not None and [h.status for h in rec.history] == ["PENDING", "PROCESSING"]
    assert apply_update(rec, processing) is None  # redelivered: no change
    retrying = apply_update(rec, update(CommandStatus.RETRYING, "wait", second=2))
    assert retrying is not None
    assert apply_update(retrying, processing) is None  # replayed after later ones: still no change
    again = apply_update(retrying, update(CommandStatus.PROCESSING, second=3))
    assert again is not None and len(again.history) == 4  # a new attempt is a new transition
    done = apply_update(rec, update(CommandStatus.COMPLETED, "ok", second=4))
    assert done is not None and done.progress == 100
    assert apply_update(done, update(CommandStatus.PROCESSING, "late", second=5)) is None  # final stays final
    assert done.to_api()["result"]["history"][-1]["status"] == "COMPLETED"
