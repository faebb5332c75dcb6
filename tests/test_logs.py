"""Structured logs: one JSON object per line, and one grep for a command id follows it through the view,
the relay and the worker."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.stack import Process, Stack


def lines_about(process: Process, command_id: str) -> list[dict[str, Any]]:
    found = []
    for path in sorted(Path(process.logs).glob(f"{process.name}.*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if command_id in line:
                found.append(json.loads(line))  # every line naming it is a JSON object
    return found


async def test_one_command_id_follows_the_command_through_the_processes(stack: Stack) -> None:
    db = await stack.new_database()
    done = await stack.run("POST", f"/api/v1/ontology/{db}/async/create", {"id": "Logged"})
    command_id = done["command_id"]
    web = lines_about(stack.web, command_id)
    assert [line["message"] for line in web] == [f"accepted CREATE_ONTOLOGY_CLASS {command_id}"]
    assert web[0]["db_name"] == db and web[0]["aggregate_id"] == "Logged" and web[0]["process"] == "web"
    relay = lines_about(stack.relay, command_id)
    assert any(line["message"].startswith("published") and line["process"] == "relay" for line in relay), relay
    worker = lines_about(stack.worker, command_id)
    assert any(line["message"].startswith("executing") for line in worker), worker
    assert any(line["message"] == f"COMPLETED {command_id}" for line in worker), worker
    for line in worker:
        assert line["command_id"] == command_id and line["db_name"] == db and line["process"] == "worker"
        assert {"ts", "level", "logger", "pid"} <= line.keys()


def test_text_for_a_terminal() -> None:
    code = ("import logging; from shared import logs; logs.configure('web'); "
            "logging.getLogger('spice').warning('plain')")
    env = {**os.environ, "SPICE_LOG_FORMAT": "text"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert out.stderr.strip().endswith("WARNING spice: plain") and not out.stderr.startswith("{")
    env["SPICE_LOG_FORMAT"] = "json"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    line = json.loads(out.stderr.strip())
    assert line["message"] == "plain" and line["level"] == logging.getLevelName(logging.WARNING)
