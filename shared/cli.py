"""The `spice` command line: run the stack locally, run one process, run the tests."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from shared import logs, processes, replay_cli
from shared.adapters.search import commands as search_commands
from shared.config import TOPICS, Settings, load

if TYPE_CHECKING:
    from shared.adapters.outbox_relay import OutboxRelay
    from shared.dead_letters import DeadLetter


async def prepare(settings: Settings) -> None:
    """Services up, schema migrated, topics created: everything the processes need."""
    from shared.stack import services

    await services.up(settings)
    await migrate_and_declare(settings)


async def migrate_and_declare(settings: Settings) -> None:
    """Schema migrations and topics, on services that already run (here or in compose/)."""
    from shared.adapters.postgres.pool import migrate
    from shared.stack import kafka

    await migrate(settings.pg_dsn)
    await kafka.ensure_topics(settings, [settings.topic(t) for t in TOPICS], settings.partitions)


def wait_healthy(settings: Settings, timeout: float = 120.0) -> bool:
    url = f"http://{settings.web_host}:{settings.web_port}/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 — loopback only
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    started = time.monotonic()
    asyncio.run(prepare(settings))
    print(f"services ready in {time.monotonic() - started:.1f}s", flush=True)
    for name in ("relay", "worker", "web"):
        processes.start(settings, name)
    token_file = write_admin_token(settings)
    if not wait_healthy(settings):
        print("the stack did not become healthy; logs are in", settings.home / "logs", file=sys.stderr)
        return 1
    base = f"http://{settings.web_host}:{settings.web_port}"
    print(f"Spice Harvester is up in {time.monotonic() - started:.1f}s\n"
          f"  API     {base}/api/v1   (health: {base}/health)\n"
          f"  token   {token_file}  (bootstrap administrator '{settings.admin_user}')\n"
          f"  try     curl -X POST {base}/api/v1/database/create -H \"Authorization: Bearer $(cat {token_file})\" "
          f"-H 'Content-Type: application/json' -d '{{\"name\": \"demo\", \"description\": \"first database\"}}'\n"
          f"  live    {base}/ws/test?token=$(cat {token_file})\n"
          f"  logs    {settings.home / 'logs'}\n"
          f"  stop    ./spice.sh down", flush=True)
    if args.foreground:
        stop = [False]
        signal.signal(signal.SIGINT, lambda *_: stop.__setitem__(0, True))
        signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
        while not stop[0]:
            time.sleep(0.5)
        cmd_down(settings, args)
    return 0


def write_admin_token(settings: Settings) -> str:
    """The bootstrap administrator's bearer token, in .spice/admin.token (mode 0600)."""
    from shared.tokens import issue

    path = settings.home / "admin.token"
    settings.home.mkdir(parents=True, exist_ok=True)
    path.write_text(issue(settings, settings.admin_user) + "\n")
    path.chmod(0o600)
    return str(path)


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from shared.tokens import issue

    print(issue(settings, args.user, args.ttl))
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    """Read the command_status table through the Faust worker (no HTTP API involved)."""
    import json
    import urllib.error

    from shared.tokens import INTERNAL_HEADER, internal_token

    url = f"{settings.worker_url}/status/{args.command_id}"
    deadline = time.monotonic() + args.timeout
    printed = 0
    while True:
        try:
            request = urllib.request.Request(url, headers={INTERNAL_HEADER: internal_token(settings)})
            with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 — the worker, on loopback
                record = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code != 404 or not args.watch or time.monotonic() > deadline:
                print(f"no status for {args.command_id} in the command_status table", file=sys.stderr)
                return 1
            time.sleep(0.2)
            continue
        if not args.watch:
            print(json.dumps(record, indent=2))
            return 0
        for entry in record["history"][printed:]:
            print(f"{entry['timestamp']}  {entry['status']:<10} {entry['progress']:>3}%  {entry['message']}",
                  flush=True)
        printed = len(record["history"])
        if record["status"] in ("COMPLETED", "FAILED"):
            return 0 if record["status"] == "COMPLETED" else 2
        if time.monotonic() > deadline:
            return 1
        time.sleep(0.2)


def cmd_schema(settings: Settings, args: argparse.Namespace) -> int:
    """JSON Schema of a command message (what a Kafka producer sends) and of a class body."""
    import json

    from shared.domain.commands import Command
    from shared.domain.ontology import OntologyClass

    print(json.dumps({"command": Command.model_json_schema(),
                      "ontology_class": OntologyClass.model_json_schema()}, indent=2))
    return 0


def cmd_down(settings: Settings, args: argparse.Namespace) -> int:
    from shared.stack import services

    for name in ("web", "worker", "relay"):
        processes.stop(settings, name)
    if not getattr(args, "keep_services", False):
        services.down(settings)
    return 0


def cmd_services(settings: Settings, args: argparse.Namespace) -> int:
    from shared.stack import services

    if args.action == "up":
        asyncio.run(prepare(settings))
    else:
        services.down(settings)
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    asyncio.run(migrate_and_declare(settings))
    return 0


def cmd_relay(settings: Settings, args: argparse.Namespace) -> int:
    from shared.adapters.outbox_relay import OutboxRelay
    from shared.relay_checks import periodically
    from shared.relay_page import serve_metrics

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        relay = OutboxRelay(settings.pg_dsn, settings.kafka_bootstrap, name=f"{settings.namespace}-relay",
                            dead_letter_topic=settings.topic("dead-letters"))
        page = await serve_metrics(settings)
        sweeper = asyncio.create_task(sweep(settings, relay.leader, stop))
        checker = asyncio.create_task(periodically(settings, relay.leader, stop))
        try:
            await run_relay(relay, stop)
        finally:
            stop.set()
            await sweeper
            await checker
            if page is not None:
                await page.cleanup()

    processes.tune_gc()
    asyncio.run(main())
    return 0


async def run_relay(relay: OutboxRelay, stop: asyncio.Event) -> None:
    """Relay until stopped; when PostgreSQL (or the network) goes away, reconnect with capped backoff
    instead of exiting: rows recorded meanwhile wait, unmarked, in the outbox."""
    from shared.adapters.transient import is_transient
    from shared.application.retry import RetryPolicy

    log = logging.getLogger("spice.relay")
    policy, failures = RetryPolicy(base_delay=0.2, max_delay=5.0), 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            await relay.run(stop)
        except Exception as exc:
            if not is_transient(exc):
                raise
            relay.leader.clear()
            failures = 1 if time.monotonic() - started > 30 else failures + 1
            pause = policy.delay(failures)
            log.warning("relay lost its connection (%s: %s), reconnecting in %.1fs", type(exc).__name__, exc, pause)
            try:
                await asyncio.wait_for(stop.wait(), pause)
            except TimeoutError:
                pass


async def sweep(settings: Settings, leader: asyncio.Event, stop: asyncio.Event) -> None:
    """The reconciliation sweep, run by the active relay only."""
    import aiohttp
    import asyncpg

    from shared.adapters.postgres.pool import connect
    from shared.adapters.postgres.redelivery import (
        requeue_stale_commands,
        requeue_unapplied_commands,
        start_of_last_hour,
    )
    from shared.adapters.terminusdb import TerminusError
    from shared.bootstrap import Needs, Stores, open_stores
    from shared.domain.commands import Command
    from shared.leader_rounds import rounds

    def topic_for(command: Command) -> str:
        return settings.topic(f"{command.channel}-commands")

    log = logging.getLogger("spice.sweep")
    # Each round goes on from where the last one stopped: commands from the oldest still without an event,
    # events from the last one compared with the document store.
    stores: Stores | None = None
    stale_from: datetime | None = None
    checked: int | None = None
    try:
        async for _ in rounds(max(0.5, settings.redeliver_after_seconds / 4), leader, stop):
            try:
                conn = await connect(settings.pg_dsn)
                try:
                    count, stale_from = await requeue_stale_commands(conn, settings.redeliver_after_seconds,
                                                                     topic_for, stale_from)
                    stores = stores or await open_stores(settings, Needs(pool=(1, 1)))
                    checked = await start_of_last_hour(conn) if checked is None else checked
                    queued, checked = await requeue_unapplied_commands(
                        conn, stores.docs, checked, settings.redeliver_after_seconds, topic_for)
                    count += queued
                finally:
                    await conn.close()
                if count:
                    log.warning("re-queued %d command(s) with no event or no document after %.0fs", count,
                                settings.redeliver_after_seconds)
            except (OSError, asyncpg.PostgresError, ValueError, TerminusError, aiohttp.ClientError) as exc:
                log.warning("reconciliation sweep failed, will retry: %s", exc)
    finally:
        if stores is not None:
            await stores.close()


def cmd_dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    """List the dead-letter topic, or re-submit dead letters as new commands."""
    from shared.dead_letters import read_all

    letters = asyncio.run(read_all(settings.kafka_bootstrap, settings.topic("dead-letters"),
                                   limit=getattr(args, "limit", None)))
    if args.dead_letters_command == "list":
        print(f"{'REF':<10} {'REASON':<18} {'COMMAND_ID':<36} {'TRIES':>5}  ERROR")
        for d in letters:
            error = str(d.body.get("error", "")).replace("\n", " ")
            print(f"{d.ref:<10} {d.reason:<18} {d.command_id or '-':<36} {d.body.get('attempts', 0):>5}  "
                  f"{error[:100]}")
        print(f"{len(letters)} dead letter(s) on {settings.topic('dead-letters')} (REF is partition:offset)")
        return 0
    if args.all:
        chosen = letters
    else:
        if not args.ref:
            print("name a dead letter (PARTITION:OFFSET or OFFSET from `dead-letters list`) or use --all",
                  file=sys.stderr)
            return 2
        chosen = [d for d in letters if args.ref in (d.ref, str(d.offset))]
        if len(chosen) != 1:
            found = ", ".join(d.ref for d in chosen) or "none"
            print(f"{args.ref!r} must name exactly one dead letter (matches: {found}); use PARTITION:OFFSET",
                  file=sys.stderr)
            return 1
    return asyncio.run(resubmit(settings, chosen, args.as_user, bulk=args.all))


async def resubmit(settings: Settings, letters: list[DeadLetter], as_user: str | None, bulk: bool) -> int:
    """Each dead letter's command again, as a NEW command (commands are immutable): new command_id,
    `metadata.resubmitted_from` = the old one, recorded with its outbox row like any submission."""
    from pydantic import ValidationError
    from rich.progress import Progress

    from shared.bootstrap import Needs, open_stores
    from shared.domain.commands import Command, utcnow

    stores = await open_stores(settings, Needs(pool=(1, 2)))
    failed = 0
    try:
        commands, submitter = stores.commands, stores.submitter()
        done = {r["old"] for r in await stores.pool.fetch(
            "SELECT metadata->>'resubmitted_from' AS old FROM commands WHERE metadata ? 'resubmitted_from'")}
        with Progress(disable=not bulk) as progress:
            task = progress.add_task("re-submitting", total=len(letters))
            for letter in letters:
                progress.advance(task)
                old_id = letter.command_id
                if bulk and (old_id is None or old_id in done):
                    continue  # not a command, or already re-submitted (by an earlier --all or by hand)
                try:
                    original = Command.model_validate(letter.command) if letter.command else None
                except ValidationError:
                    original = None
                if original is None:
                    progress.console.print(f"{letter.ref}: no command to re-submit ({letter.reason})")
                    failed += 1
                    continue
                recorded = await commands.get(original.command_id)
                if recorded is None and as_user is None:
                    # Never recorded (rejected at admission): its `actor` field was never verified.
                    progress.console.print(f"{letter.ref}: command {original.command_id} was never admitted; "
                                           "name the user to submit it as with --as USER")
                    failed += 1
                    continue
                base = recorded or original
                new = base.model_copy(update={
                    "command_id": uuid.uuid4(), "created_at": utcnow(), "idempotency_key": None,
                    "actor": as_user or base.actor,
                    "metadata": {**base.metadata, "resubmitted_from": str(base.command_id)}})
                await submitter.record(new)
                done.add(str(base.command_id))
                progress.console.print(f"{letter.ref}: re-submitted {base.command_id} as {new.command_id}")
    finally:
        await stores.close()
    return 1 if failed and not bulk else 0


def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    """Print the reconciliation report of a database; with --repair, record the repair command (as the
    bootstrap administrator) and print its id (follow it with `spice status ID --watch`)."""
    import json

    from shared.application.reconcile import reconcile
    from shared.bootstrap import Needs, open_stores
    from shared.domain.commands import Command, CommandType

    async def main() -> int:
        stores = await open_stores(settings, Needs(pool=(1, 2), archive=True, search_timeout=60))
        try:
            if await stores.docs.database(args.db) is None:
                print(f"database {args.db!r} does not exist", file=sys.stderr)
                return 1
            report = await reconcile(args.db, stores.events, stores.docs, stores.search_index(), stores.archive)
            print(json.dumps(report.to_api(), indent=2))
            if args.repair and report.drift:
                command, _ = await stores.submitter().record(Command(
                    command_type=CommandType.RECONCILE_DATABASE, aggregate_id=args.db, db_name=args.db,
                    actor=settings.admin_user, payload={}))
                print(f"repair command {command.command_id} recorded", file=sys.stderr)
            return 0
        finally:
            await stores.close()

    return asyncio.run(main())


def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    from web.app import run

    processes.tune_gc()
    run(settings)
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    os.execv(sys.executable, processes.COMMANDS["worker"])


def cmd_test(settings: Settings, args: argparse.Namespace) -> int:
    started = time.monotonic()
    asyncio.run(prepare(settings))
    print(f"services ready in {time.monotonic() - started:.1f}s", flush=True)
    return subprocess.call([sys.executable, "-m", "pytest", *args.pytest_args])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spice", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="install and start services, relay, worker and web view")
    up.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C stops everything")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop the processes and services")
    down.add_argument("--keep-services", action="store_true")
    down.set_defaults(func=cmd_down)
    services = sub.add_parser("services", help="start or stop PostgreSQL, Redis and Kafka only")
    services.add_argument("action", choices=["up", "down"])
    services.set_defaults(func=cmd_services)
    token = sub.add_parser("token", help="bearer tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="print a signed token for a user")
    create.add_argument("--user", required=True)
    create.add_argument("--ttl", type=int, default=None, help="seconds until it expires (default 30 days)")
    create.set_defaults(func=cmd_token)
    status = sub.add_parser("status", help="a command's entry in the Faust command_status table")
    status.add_argument("command_id")
    status.add_argument("--watch", action="store_true", help="print transitions until COMPLETED or FAILED")
    status.add_argument("--timeout", type=float, default=300.0)
    status.set_defaults(func=cmd_status)
    letters = sub.add_parser("dead-letters", help="list dead letters, or re-submit them as new commands")
    letters_sub = letters.add_subparsers(dest="dead_letters_command", required=True)
    listing = letters_sub.add_parser("list", help="read the dead-letter topic from the beginning")
    listing.add_argument("--limit", type=int, default=None, help="only the newest N")
    listing.set_defaults(func=cmd_dead_letters)
    again = letters_sub.add_parser("resubmit", help="re-submit as a new command referencing the old one")
    again.add_argument("ref", nargs="?", help="PARTITION:OFFSET (or OFFSET when unambiguous) from `list`")
    again.add_argument("--all", action="store_true", help="every dead letter not re-submitted yet")
    again.add_argument("--as", dest="as_user", default=None, help="submit as this user (default: the original)")
    again.set_defaults(func=cmd_dead_letters)
    sub.add_parser("schema", help="print the JSON Schema of command messages").set_defaults(func=cmd_schema)
    search_commands.add_parser(sub)
    replay_cli.add_parser(sub)
    check = sub.add_parser("reconcile", help="compare a database's read models with its event store")
    check.add_argument("db")
    check.add_argument("--repair", action="store_true", help="record the repair command when anything drifted")
    check.set_defaults(func=cmd_reconcile)
    sub.add_parser("migrate", help="migrate the schema and create the topics").set_defaults(func=cmd_migrate)
    sub.add_parser("relay", help="run the outbox relay").set_defaults(func=cmd_relay)
    sub.add_parser("web", help="run the web view").set_defaults(func=cmd_web)
    sub.add_parser("worker", help="run the Faust worker").set_defaults(func=cmd_worker)
    test = sub.add_parser("test", help="start the services and run the test suite")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER)
    test.set_defaults(func=cmd_test)
    args, extra = parser.parse_known_args(argv)
    if args.command != "test" and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "test":
        args.pytest_args = [*extra, *args.pytest_args]
    logs.configure(args.command)
    return int(args.func(load(), args))


if __name__ == "__main__":
    sys.exit(main())
