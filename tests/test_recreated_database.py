"""A database deleted and created again under its name starts empty for every read: nothing of the earlier
database (current, versioned, history, provenance, status of its commands) reaches the new one's users."""
from __future__ import annotations

from tests.stack import Stack


async def test_a_recreated_database_shows_nothing_of_the_deleted_one(stack: Stack) -> None:
    db = await stack.new_database(user="alice")
    made = await stack.run("POST", f"/api/v1/ontology/{db}/async/create",
                           {"id": "Secret", "properties": [{"name": "note", "type": "string"}]}, user="alice")
    assert made["status"] == "COMPLETED", made
    created = await stack.run("POST", f"/api/v1/instances/{db}/async/Secret/create",
                              {"data": {"instance_id": "s1", "note": "alice's secret"}}, user="alice")
    assert created["status"] == "COMPLETED", created
    gone = await stack.run("DELETE", f"/api/v1/database/{db}", user="alice")
    assert gone["status"] == "COMPLETED", gone

    again = await stack.run("POST", "/api/v1/database/create", {"name": db, "description": "bob's"}, user="bob")
    assert again["status"] == "COMPLETED", again
    for path in (f"/api/v1/instances/{db}/Secret/s1", f"/api/v1/instances/{db}/Secret/s1?version=1",
                 f"/api/v1/instances/{db}/Secret/s1?as_of=2999-01-01T00:00:00Z",
                 f"/api/v1/instances/{db}/Secret/s1/history", f"/api/v1/instances/{db}/Secret/s1/provenance",
                 f"/api/v1/ontology/{db}/classes/Secret", f"/api/v1/ontology/{db}/classes/Secret?version=1",
                 f"/api/v1/ontology/{db}/classes/Secret/history"):
        code, body = await stack.request("GET", path, user="bob")
        assert code == 404, (path, code, body)
        assert "alice" not in str(body), (path, body)
    code, classes = await stack.request("GET", f"/api/v1/ontology/{db}/classes", user="bob")
    assert code == 200 and classes["total"] == 0, classes
    for old in (made, created, gone):
        code, body = await stack.request("GET", f"/api/v1/commands/{old['command_id']}", user="bob")
        assert code == 403, (code, body)
        code, body = await stack.request("GET", f"/api/v1/commands/{old['command_id']}", user="alice")
        assert code == 200 and body["status"] == "COMPLETED", body  # the submitter still sees her own

    # The new database's own objects have a history of their own, from their first version here.
    remade = await stack.run("POST", f"/api/v1/ontology/{db}/async/create", {"id": "Secret"}, user="bob")
    assert remade["status"] == "COMPLETED", remade
    code, history = await stack.request("GET", f"/api/v1/ontology/{db}/classes/Secret/history", user="bob")
    assert code == 200 and [e["actor"] for e in history["items"]] == ["bob"], history
    code, body = await stack.request("GET", f"/api/v1/commands/{remade['command_id']}", user="bob")
    assert code == 200, body
