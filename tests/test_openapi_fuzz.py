"""schemathesis over /api/v1/openapi.json: every operation, generated requests, authenticated; only
documented answers, never a 5xx, bodies that match the schema, and nothing recorded for a 4xx."""
from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.adapters.postgres.pool import Pool
from tests.stack import Stack

EXAMPLES = 40  # generated requests per operation and mode (positive, negative)
# WebSocket routes answer 101 to an upgrade only; the static files are aiohttp's own.
EXCLUDED = r"^/(ws/commands|static/)"


@dataclass
class Target:
    loop: asyncio.AbstractEventLoop
    pool: Pool
    stack: Stack
    real: dict[str, str]  # path parameters naming objects that exist
    headers: dict[str, str]

    def recorded(self) -> int:
        # The test body is synchronous (schemathesis drives it): the session's loop is idle meanwhile.
        return int(self.loop.run_until_complete(self.pool.fetchval("SELECT count(*) FROM commands")))


@pytest.fixture(scope="module")
async def target(stack: Stack, pool: Pool) -> Target:
    db = await stack.new_database()
    await stack.run("POST", f"/api/v1/ontology/{db}/async/create", {
        "id": "Person", "properties": [{"name": "name", "type": "string", "required": True},
                                       {"name": "age", "type": "integer"}]})
    command_id = await stack.submit("POST", f"/api/v1/instances/{db}/async/Person/create",
                                    {"data": {"instance_id": "p1", "name": "Ada"}})
    await stack.wait(command_id)
    real = {"db_name": db, "class_id": "Person", "instance_id": "p1", "command_id": command_id}
    return Target(asyncio.get_running_loop(), pool, stack, real, stack.auth("alice"))


@pytest.fixture(scope="module")
def api(target: Target) -> Any:
    document = requests.get(f"{target.stack.base}/api/v1/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=target.stack.base)
    # Authenticated throughout (the 401 cases have their own tests): no generated security parameters.
    schema.config.generation.update(with_security_parameters=False)
    return schema.exclude(path_regex=EXCLUDED)


def _executed(response: requests.Response) -> bool:
    """A sync wrapper's 4xx after the command ran (it failed, or the wait timed out): then it is recorded."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and ("data" in body or "command_status" in body.get("detail", {}))


def check(case: Any, target: Target, answered: Counter[int]) -> None:
    before = target.recorded()
    response = case.call(headers=target.headers, timeout=60)
    answered[response.status_code] += 1
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                             content_type_conformance, response_schema_conformance])
    if 400 <= response.status_code < 500 and not _executed(response):
        assert target.recorded() == before, f"{case.method} {case.formatted_path} recorded a command for a 4xx"


def test_every_operation_answers_as_documented(api: Any, target: Target) -> None:
    """Driven by hand, not through schemathesis' pytest plugin (which does not run on pytest 9)."""
    failures: list[str] = []
    answered: Counter[int] = Counter()
    # Deletes last, the deepest first (instance, class, then the database), so the rest reach real objects.
    operations = sorted((result.ok() for result in api.get_all_operations()),
                        key=lambda op: (op.method.upper() == "DELETE", -op.path.count("/")))
    assert len(operations) >= 30
    for operation in operations:
        takes_input = bool(operation.path_parameters or operation.query or operation.body)
        # Negative cases need something to get wrong: an operation without parameters has none.
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[:2 if takes_input else 1]:
            # Every request addresses the database made above; positive ones the class, instance and command
            # made there too, so writes and reads reach real objects.
            names = [p.name for p in operation.path_parameters] if mode is GenerationMode.POSITIVE else ["db_name"]
            fixed = {name: target.real[name] for name in names if name in target.real}
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)

            @given(strategy)
            @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                      phases=[Phase.explicit, Phase.generate])
            def run(case: Any) -> None:
                check(case, target, answered)

            try:
                run()
            except Unsatisfiable:
                # No request can violate the schema of this operation (path segments are strings anyway).
                assert mode is GenerationMode.NEGATIVE, f"no valid request for {operation.path}"
            except Exception as exc:  # noqa: BLE001 — collected, every operation gets its turn
                failures.append(f"{operation.method.upper()} {operation.path} ({mode}): {exc}")
    assert not failures, "\n\n".join(failures)
    print("answers by status:", dict(sorted(answered.items())))
    # The generated requests reached the handlers: accepted commands, successful reads and refusals all occur.
    assert answered[202] and answered[200] and answered[404] and (answered[400] + answered[422])
