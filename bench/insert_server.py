"""Baseline for bench.write_path: a bare aiohttp handler inserting one row per request, each in its own
transaction, on the same PostgreSQL. Run by bench.write_path as `python -m bench.insert_server PORT DSN`."""
from __future__ import annotations

import asyncio
import sys

import asyncpg
from aiohttp import web


async def serve(port: int, dsn: str) -> web.AppRunner:
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=20)
    assert pool is not None
    await pool.execute("CREATE TABLE IF NOT EXISTS bench_rows (id bigint GENERATED ALWAYS AS IDENTITY, body jsonb)")

    async def insert(request: web.Request) -> web.Response:
        body = await request.text()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("INSERT INTO bench_rows (body) VALUES ($1::jsonb)", body)
        return web.json_response({"status": "PENDING"}, status=202)

    app = web.Application()
    app.router.add_post("/insert", insert)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def main() -> None:
    port, dsn = int(sys.argv[1]), sys.argv[2]

    async def run() -> None:
        await serve(port, dsn)
        print("ready", flush=True)
        await asyncio.Event().wait()  # until bench.write_path terminates it

    asyncio.run(run())


if __name__ == "__main__":
    main()
