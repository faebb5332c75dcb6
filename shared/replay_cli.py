"""`spice replay request|approve|reject|status`: the replay routes of the web view, as a given user, with a
progress bar while an approved rebuild runs."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from shared.config import Settings


async def _call(settings: Settings, user: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    import aiohttp

    from shared.tokens import issue

    headers = {"Authorization": f"Bearer {issue(settings, user, 600)}"}
    url = f"http://{settings.web_host}:{settings.web_port}{path}"
    async with aiohttp.ClientSession() as http, http.request(method, url, json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def _follow(settings: Settings, user: str, command_id: str, timeout: float) -> int:
    """A progress bar over the approval command's status until it is final."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    with Progress(TextColumn("replay"), BarColumn(), TextColumn("{task.percentage:>3.0f}% {task.description}"),
                  TimeElapsedColumn(), disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("", total=100)
        while loop.time() < deadline:
            code, status = await _call(settings, user, "GET", f"/api/v1/commands/{command_id}")
            if code == 200:
                inner = status["result"]
                bar.update(task, completed=inner.get("progress") or 0,
                           description=(inner.get("history") or [{}])[-1].get("message", ""))
                if status["status"] in ("COMPLETED", "FAILED"):
                    print(json.dumps(status, indent=2))
                    return 0 if status["status"] == "COMPLETED" else 1
            await asyncio.sleep(0.5)
    print(f"command {command_id} not final after {timeout:g}s", file=sys.stderr)
    return 1


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    user = args.as_user or settings.admin_user

    async def main() -> int:
        if args.replay_command == "request":
            code, body = await _call(settings, user, "POST", "/api/v1/admin/replays",
                                     {"db_name": args.db, "targets": args.targets, "reason": args.reason})
        elif args.replay_command == "status":
            code, body = await _call(settings, user, "GET", f"/api/v1/admin/replays/{args.replay_id}")
        else:
            code, body = await _call(settings, user, "POST",
                                     f"/api/v1/admin/replays/{args.replay_id}/{args.replay_command}")
        print(json.dumps(body, indent=2))
        if code >= 400:
            return 1
        if args.replay_command == "approve" and args.wait:
            return await _follow(settings, user, body["command_id"], args.timeout)
        return 0

    return asyncio.run(main())


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    replay = sub.add_parser("replay", help="rebuild read models from the event store, under two-admin approval")
    replay.add_argument("--as", dest="as_user", default=None, help="act as this user (default: the administrator)")
    replay_sub = replay.add_subparsers(dest="replay_command", required=True)
    request = replay_sub.add_parser("request", help="ask for a replay of a database")
    request.add_argument("db")
    request.add_argument("--targets", nargs="+", choices=["documents", "search"], default=["documents", "search"])
    request.add_argument("--reason", required=True)
    for name, text in (("approve", "approve a replay (another admin than its requester)"),
                       ("reject", "reject a replay"), ("status", "show a replay")):
        step = replay_sub.add_parser(name, help=text)
        step.add_argument("replay_id")
        if name == "approve":
            step.add_argument("--no-wait", dest="wait", action="store_false",
                              help="return at once instead of following the rebuild")
            step.add_argument("--timeout", type=float, default=600.0)
    replay.set_defaults(func=cmd_replay)
