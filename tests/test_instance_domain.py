"""Instance validation and the instance decider: pure domain, no stores."""
from __future__ import annotations

from typing import Any

from shared.domain.commands import Command, CommandType
from shared.domain.decide_instances import InstanceContext, decide_instances
from shared.domain.events import EventType
from shared.domain.instances import effective_properties, validate


def cls(class_id: str, *props: dict[str, Any], parent: str | None = None, abstract: bool = False) -> dict[str, Any]:
    return {"id": class_id, "class_id": class_id, "parent_class": parent, "abstract": abstract,
            "properties": list(props), "version": 1}


CLASSES = {
    "Agent": cls("Agent", {"name": "name", "type": "string", "required": True,
                           "constraints": {"min_length": 2, "max_length": 20}}, abstract=True),
    "Person": cls("Person", {"name": "age", "type": "integer", "constraints": {"min": 0, "max": 150}},
                  {"name": "email", "type": "string", "constraints": {"pattern": r"[^@]+@[^@]+"}},
                  {"name": "born", "type": "date"}, {"name": "seen", "type": "datetime"},
                  {"name": "score", "type": "decimal"}, {"name": "active", "type": "boolean", "default": True},
                  {"name": "level", "type": "string", "constraints": {"enum": ["a", "b"]}},
                  {"name": "employer", "type": "link", "target": "Company"}, parent="Agent"),
    "Company": cls("Company", {"name": "title", "type": "string"}),
    "Startup": cls("Startup", parent="Company"),
}


def command(kind: CommandType, payload: dict[str, Any], aggregate: str = "p1") -> Command:
    return Command(command_type=kind, aggregate_id=aggregate, db_name="db", actor="alice", payload=payload)


def test_inherited_properties_come_first_and_are_enforced() -> None:
    props = effective_properties("Person", CLASSES)
    assert list(props)[0] == "name"
    checked = validate(props, {"age": 3})
    assert [p["field"] for p in checked.problems] == ["name"]
    assert checked.data["active"] is True  # default applied on create


def test_every_problem_is_listed() -> None:
    props = effective_properties("Person", CLASSES)
    checked = validate(props, {"name": "x", "age": 200, "email": "nope", "born": "2020-13-01",
                               "seen": "yesterday", "score": "1.5", "active": "yes", "level": "c",
                               "employer": 7, "unknown": 1})
    fields = sorted(p["field"] for p in checked.problems)
    assert fields == sorted(["name", "age", "email", "born", "seen", "score", "active", "level", "employer",
                             "unknown"])


def test_valid_data_and_partial_update_over_base() -> None:
    props = effective_properties("Person", CLASSES)
    ok = validate(props, {"name": "Ada", "age": 36, "email": "a@b.c", "born": "1815-12-10",
                          "seen": "2026-01-01T10:00:00Z", "score": 9.5, "level": "a", "employer": "c1"})
    assert ok.problems == []
    assert [(link.target, link.instance_id) for link in ok.links] == [("Company", "c1")]
    update = validate(props, {"age": 37}, base=ok.data)
    assert update.problems == [] and update.data["name"] == "Ada" and update.data["age"] == 37
    cleared = validate(props, {"name": None}, base=ok.data)
    assert [p["field"] for p in cleared.problems] == ["name"]


def ctx(**kw: Any) -> InstanceContext:
    return InstanceContext(database_exists=True, classes=CLASSES, **kw)


def test_create_checks_links_including_subclasses() -> None:
    make = command(CommandType.CREATE_INSTANCE, {"class_id": "Person",
                                                  "data": {"instance_id": "p1", "name": "Ada", "employer": "s1"}})
    [event] = decide_instances(make, ctx(linked={"s1": "Startup"}))
    assert event.event_type is EventType.INSTANCE_CREATED and event.version == 1
    assert event.data["data"]["employer"] == "s1" and event.data["source_command_id"] == str(make.command_id)
    [failed] = decide_instances(make, ctx(linked={"s1": "Person"}))
    assert failed.failed and "not a Company" in failed.data["error"]["problems"][0]["message"]
    [missing] = decide_instances(make, ctx())
    assert missing.failed and missing.data["error"]["code"] == "validation_failed"


def test_abstract_class_has_no_instances_and_ids_are_unique() -> None:
    agent = command(CommandType.CREATE_INSTANCE, {"class_id": "Agent", "data": {"instance_id": "a", "name": "xx"}})
    assert decide_instances(agent, ctx())[0].data["error"]["code"] == "abstract_class"
    dup = command(CommandType.CREATE_INSTANCE, {"class_id": "Company", "data": {"instance_id": "p1"}})
    assert "already exists" in decide_instances(dup, ctx(current={"p1": {"class_id": "Person"}}))[0].data[
        "error"]["problems"][0]["message"]


def test_bulk_is_all_or_nothing_with_indexed_problems() -> None:
    items = [{"instance_id": f"c{i}", "title": "t"} for i in range(3)] + [{"instance_id": "bad", "title": 5}]
    bulk = command(CommandType.BULK_CREATE_INSTANCES, {"class_id": "Company", "instances": items}, "Company")
    [failed] = decide_instances(bulk, ctx())
    assert failed.failed and failed.data["error"]["problems"][0]["index"] == 3
    good = command(CommandType.BULK_CREATE_INSTANCES, {"class_id": "Company", "instances": items[:3]}, "Company")
    events = decide_instances(good, ctx(last_versions={"c1": 2}))
    assert [(e.aggregate_id, e.version) for e in events] == [("c0", 1), ("c1", 3), ("c2", 1)]
    assert len({e.event_id for e in events}) == 3


def test_update_and_delete_need_the_instance_in_that_class() -> None:
    current = {"p1": {"instance_id": "p1", "class_id": "Person", "version": 2, "data": {"name": "Ada"},
                      "created_by": "bob", "created_at": "2026-01-01T00:00:00Z"}}
    upd = command(CommandType.UPDATE_INSTANCE, {"class_id": "Person", "data": {"age": 5}})
    [event] = decide_instances(upd, ctx(current=current, last_versions={"p1": 2}))
    assert event.version == 3 and event.data["created_by"] == "bob" and event.data["data"] == {
        "name": "Ada", "age": 5}
    stale = upd.model_copy(update={"expected_version": 1})
    assert decide_instances(stale, ctx(current=current))[0].data["error"]["code"] == "conflict"
    other = command(CommandType.DELETE_INSTANCE, {"class_id": "Company"})
    assert decide_instances(other, ctx(current=current))[0].data["error"]["code"] == "not_found"


def test_relationships_are_filled_with_instance_ids() -> None:
    classes = {**CLASSES, "Team": {**cls("Team", {"name": "title", "type": "string"}), "relationships": [
        {"predicate": "members", "target": "Person", "cardinality": "n:m"},
        {"predicate": "sponsor", "target": "Company", "cardinality": "n:1"}]}}
    make = command(CommandType.CREATE_INSTANCE, {"class_id": "Team", "data": {
        "instance_id": "t1", "title": "Core", "members": "p1", "sponsor": "s1"}}, "t1")
    [event] = decide_instances(make, InstanceContext(database_exists=True, classes=classes,
                                                     linked={"p1": "Person", "s1": "Startup"}))
    assert event.data["data"] == {"title": "Core", "members": ["p1"], "sponsor": "s1"}
    bad = command(CommandType.CREATE_INSTANCE, {"class_id": "Team", "data": {
        "instance_id": "t2", "members": ["p1", "nobody"], "sponsor": ["s1"]}}, "t2")
    [failed] = decide_instances(bad, InstanceContext(database_exists=True, classes=classes,
                                                     linked={"p1": "Person"}))
    problems = failed.data["error"]["problems"]
    assert sorted(p["field"] for p in problems) == ["members", "sponsor"], problems


def test_produced_commands_without_ids_get_stable_ones_and_malformed_ones_fail() -> None:
    bulk = command(CommandType.BULK_CREATE_INSTANCES, {"class_id": "Company", "instances": [{"title": "a"}, {}]},
                   "Company")
    first = [e.aggregate_id for e in decide_instances(bulk, ctx())]
    assert first == [e.aggregate_id for e in decide_instances(bulk, ctx())] and len(set(first)) == 2
    single = command(CommandType.CREATE_INSTANCE, {"class_id": "Company", "data": {"title": "x"}}, "given-id")
    assert decide_instances(single, ctx())[0].aggregate_id == "given-id"
    malformed: list[dict[str, Any]] = [{"data": {}}, {"class_id": "Company", "data": []},
                                       {"class_id": "Company", "instances": 3}]
    for payload in malformed:
        kind = CommandType.BULK_CREATE_INSTANCES if "instances" in payload else CommandType.CREATE_INSTANCE
        [failed] = decide_instances(command(kind, payload), ctx())
        assert failed.failed and failed.data["error"]["code"] == "invalid", payload
