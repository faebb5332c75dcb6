"""Authentication and command-level ACL: 401 without a valid token, 403 without the role, nothing
recorded in either case; roles change only through commands; pushes reach only their owner."""
from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from typing import Any

import pytest

from shared import tokens
from shared.adapters.postgres.pool import Pool
from shared.config import Settings
from shared.tokens import InvalidToken, issue, verify
from tests.stack import Stack
from tests.test_websocket import receive
from tests.test_write_path import PERSON

DB = "{db}"
WRITE_ROUTES: list[tuple[str, str, Any]] = [
    ("DELETE", f"/api/v1/database/{DB}", None),
    ("POST", f"/api/v1/ontology/{DB}/async/create", {"id": "Thing"}),
    ("PUT", f"/api/v1/ontology/{DB}/async/Person", {"description": "x"}),
    ("DELETE", f"/api/v1/ontology/{DB}/async/Person", None),
    ("POST", f"/api/v1/ontology/{DB}/sync/create?timeout=2", {"id": "Thing"}),
    ("PUT", f"/api/v1/ontology/{DB}/sync/Person?timeout=2", {"description": "x"}),
    ("DELETE", f"/api/v1/ontology/{DB}/sync/Person?timeout=2", None),
    ("POST", f"/api/v1/database/{DB}/grants", {"user": "mallory", "role": "admin"}),
]
ROUTE_IDS = [f"{m} {p.split('?')[0]}" for m, p, _ in WRITE_ROUTES]


@pytest.fixture(scope="module")
async def db(stack: Stack) -> str:
    name = await stack.new_database()
    assert (await stack.run("POST", f"/api/v1/ontology/{name}/async/create", PERSON))["status"] == "COMPLETED"
    return name


async def recorded(pool: Pool) -> int:
    return int(await pool.fetchval("SELECT (SELECT count(*) FROM commands) + (SELECT count(*) FROM outbox)"))


@pytest.mark.parametrize("route", WRITE_ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("credential", ["none", "garbage", "expired", "wrong-signature"])
async def test_write_routes_need_a_valid_token(stack: Stack, pool: Pool, db: str,
                                               route: tuple[str, str, Any], credential: str) -> None:
    method, path, body = route
    headers = {
        "none": {},
        "garbage": {"Authorization": "Bearer not-a-token"},
        "expired": {"Authorization": f"Bearer {issue(stack.settings, 'alice', ttl_seconds=-10)}"},
        "wrong-signature": {"Authorization": "Bearer " + stack.token("alice")[:-4] + "AAAA"},
    }[credential]
    before = await recorded(pool)
    code, answer = await stack.request(method, path.replace(DB, db), json=body, headers=headers, user=None)
    assert code == 401, answer
    assert answer["detail"]["message"]
    assert await recorded(pool) == before


@pytest.mark.parametrize("route", WRITE_ROUTES, ids=ROUTE_IDS)
async def test_write_routes_need_the_role(stack: Stack, pool: Pool, db: str,
                                          route: tuple[str, str, Any]) -> None:
    method, path, body = route
    before = await recorded(pool)
    code, answer = await stack.request(method, path.replace(DB, db), json=body, user="mallory")
    assert code == 403, answer
    assert "mallory" in answer["detail"]["message"]
    assert await recorded(pool) == before


async def test_reads_and_status_need_a_role_too(stack: Stack, db: str) -> None:
    for path in (f"/api/v1/ontology/{db}/classes", f"/api/v1/ontology/{db}/classes/Person",
                 f"/api/v1/database/{db}/grants"):
        assert (await stack.request("GET", path, user=None))[0] == 401
        assert (await stack.request("GET", path, user="mallory"))[0] == 403
    command_id = await stack.submit("PUT", f"/api/v1/ontology/{db}/async/Person", {"label": "P"})
    assert (await stack.request("GET", f"/api/v1/commands/{command_id}", user="mallory"))[0] == 403
    code, listing = await stack.request("GET", "/api/v1/database/list", user="mallory")
    assert code == 200 and db not in listing["databases"]
    code, health = await stack.request("GET", "/health", user=None)
    assert code == 200


async def test_roles_change_through_commands(stack: Stack, pool: Pool) -> None:
    db = await stack.new_database()
    granted = await stack.run("POST", f"/api/v1/database/{db}/grants", {"user": "bob", "role": "reader"})
    assert granted["status"] == "COMPLETED", granted
    events = await pool.fetch("SELECT event_type, actor FROM events WHERE db_name = $1 AND aggregate_type = 'grant'",
                              db)
    assert [(e["event_type"], e["actor"]) for e in events] == [("ROLE_GRANTED", "alice")]
    assert (await stack.request("GET", f"/api/v1/ontology/{db}/classes", user="bob"))[0] == 200
    assert (await stack.request("POST", f"/api/v1/ontology/{db}/async/create", PERSON, user="bob"))[0] == 403
    await stack.run("POST", f"/api/v1/database/{db}/grants", {"user": "bob", "role": "writer"})
    done = await stack.run("POST", f"/api/v1/ontology/{db}/async/create", PERSON, user="bob")
    assert done["status"] == "COMPLETED"
    code, cls = await stack.request("GET", f"/api/v1/ontology/{db}/classes/Person", user="bob")
    assert cls["created_by"] == "bob" and cls["updated_by"] == "bob"  # from the token, never the body
    await stack.run("POST", f"/api/v1/database/{db}/grants", {"user": "bob", "role": None})
    assert (await stack.request("GET", f"/api/v1/ontology/{db}/classes", user="bob"))[0] == 403
    code, grants = await stack.request("GET", f"/api/v1/database/{db}/grants")
    assert [(g["user"], g["role"]) for g in grants["items"]] == [("alice", "admin")]


async def test_a_user_never_receives_another_users_update(stack: Stack) -> None:
    earlier: dict[str, set[str]] = {"alice": set(), "bob": set()}
    dbs: dict[str, str] = {}
    for user in ("alice", "bob"):
        dbs[user] = f"db-{uuid.uuid4().hex[:10]}"
        done = await stack.run("POST", "/api/v1/database/create", {"name": dbs[user]}, user=user)
        assert done["status"] == "COMPLETED", done
        # Its last status push may still be on its way when the sockets below open: the user's own.
        earlier[user].add(done["command_id"])
    db_a, db_b = dbs["alice"], dbs["bob"]
    async with stack.client.ws_connect(f"{stack.base}/ws/commands", headers=stack.auth("alice")) as alice, \
            stack.client.ws_connect(f"{stack.base}/ws/commands?token={stack.token('bob')}") as bob:
        assert (await receive(alice))["type"] == "connection_established"
        assert (await receive(bob))["type"] == "connection_established"
        mine: dict[str, set[str]] = {"alice": set(), "bob": set()}
        for i in range(5):  # interleaved
            mine["alice"].add(await stack.submit("POST", f"/api/v1/ontology/{db_a}/async/create",
                                                 {"id": f"A{i}"}, user="alice"))
            mine["bob"].add(await stack.submit("POST", f"/api/v1/ontology/{db_b}/async/create",
                                               {"id": f"B{i}"}, user="bob"))
        for name, ws in (("alice", alice), ("bob", bob)):
            completed: set[str] = set()
            async with asyncio.timeout(60):
                while completed != mine[name]:
                    message = await receive(ws)
                    if message["type"] != "command_update":
                        continue
                    assert message["command_id"] in mine[name] | earlier[name], f"{name} got someone else's update"
                    if message["data"]["status"] == "COMPLETED" and message["command_id"] in mine[name]:
                        completed.add(message["command_id"])
        # Subscribing to someone else's command is refused.
        await bob.send_json({"type": "subscribe", "command_id": next(iter(mine["alice"]))})
        while (message := await receive(bob))["type"] == "command_update":
            assert message["command_id"] in mine["bob"] | earlier["bob"]
        assert message["type"] == "error"


async def test_websocket_without_a_token_is_refused(stack: Stack) -> None:
    async with stack.client.get(f"{stack.base}/ws/commands") as resp:
        assert resp.status == 401


def test_a_verified_token_is_remembered_until_it_expires_and_only_under_its_secret(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verification is cached per token (a client sends the same one with every request), but a cached
    token still expires on time, and the cache does not let it pass under another signing secret."""
    token = issue(settings, "carol", ttl_seconds=60)
    assert verify(settings, token) == "carol"
    assert verify(settings, token) == "carol"  # from the cache
    with pytest.raises(InvalidToken):
        verify(dataclasses.replace(settings, secret="another-secret-of-at-least-32-bytes-long!"), token)
    later = time.time() + 61
    monkeypatch.setattr(tokens.time, "time", lambda: later)
    with pytest.raises(InvalidToken, match="expired"):
        verify(settings, token)
