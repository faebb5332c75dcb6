"""The `spice` command line: status straight from the Faust table, the message schema, tokens."""
from __future__ import annotations

import asyncio
import json
import sys

from shared.tokens import verify
from tests.stack import ROOT, Stack
from tests.test_write_path import PERSON


async def spice(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "shared.cli", *args, cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode()


async def test_status_and_watch_read_the_table(stack: Stack) -> None:
    db = await stack.new_database()
    command_id = await stack.submit("POST", f"/api/v1/ontology/{db}/async/create", PERSON)
    code, out = await spice("status", "--watch", command_id)
    assert code == 0 and "COMPLETED" in out and "PROCESSING" in out
    code, out = await spice("status", command_id)
    record = json.loads(out)
    assert code == 0 and record["status"] == "COMPLETED" and record["command_id"] == command_id
    code, _ = await spice("status", "00000000-0000-0000-0000-000000000000")
    assert code == 1


async def test_schema_and_token(stack: Stack) -> None:
    code, out = await spice("schema")
    schema = json.loads(out)
    assert code == 0 and {"command_id", "command_type", "payload"} <= set(schema["command"]["properties"])
    code, out = await spice("token", "create", "--user", "carol")
    assert code == 0 and verify(stack.settings, out.strip()) == "carol"
