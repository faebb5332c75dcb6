"""A small aiohttp client for TerminusDB's HTTP API: databases, documents, data versions, the log."""
from __future__ import annotations

import asyncio
import base64
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

log = logging.getLogger(__name__)

DATA_VERSION = "TerminusDB-Data-Version"
COALESCE = 0.002  # seconds a document read waits for others of the same document to share its request
INSTANCE, SCHEMA = "instance", "schema"


class TerminusError(Exception):
    """TerminusDB answered with an error (`api:status` other than success)."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        error = body.get("api:error") if isinstance(body, dict) else None
        self.error_type: str | None = error.get("@type") if isinstance(error, dict) else None
        message = body.get("api:message") if isinstance(body, dict) else str(body)[:300]
        super().__init__(f"TerminusDB {method} {path} answered {status} {self.error_type or ''}: {message}")


class DataVersionMismatch(TerminusError):
    """The branch moved since the data version the write was conditional on (optimistic lock lost)."""


class CommitRetriesExceeded(TerminusError):
    """TerminusDB gave up retrying its own commit against concurrent ones (seen live as HTTP 500
    "Transaction retry count exceeded in internal operation"): a conflict, worth retrying on fresh state."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    data_version: str | None


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _parse(status: int, text: str) -> tuple[int, Any]:
    """The JSON body, and the real status. A GET of a deleted document has been seen to answer HTTP 200
    with a streamed body that starts `Status: 404` followed by the error JSON, so the body decides."""
    stripped = text.lstrip()
    if stripped.startswith("Status:"):
        first, _, rest = stripped.partition("\n")
        try:
            status = int(first.split(":", 1)[1].split()[0])
        except (IndexError, ValueError):
            pass
        stripped = rest[rest.find("{"):] if "{" in rest else ""
    if not stripped.strip():
        return status, None
    try:
        return status, json.loads(stripped)
    except json.JSONDecodeError:
        pass
    try:  # as_list=false streams concatenated objects, one a line
        return status, [json.loads(line) for line in stripped.splitlines() if line.strip()]
    except json.JSONDecodeError:
        return status, stripped


class TerminusClient:
    """One TerminusDB server and organisation; HTTP Basic auth from the URL or the arguments."""

    def __init__(self, url: str, *, org: str = "admin", user: str | None = None, password: str | None = None,
                 timeout: float = 60.0) -> None:
        parsed = URL(url)
        user = user or parsed.user
        password = password if password is not None else parsed.password
        self.base = str(parsed.with_user(None).with_query(None).with_fragment(None)).rstrip("/")
        self.org = org
        self.user = user
        self.password = password or ""
        token = base64.b64encode(f"{user}:{self.password}".encode()).decode() if user else None
        self._headers = {"Authorization": f"Basic {token}"} if token else {}
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._reads: dict[tuple[str, str, str], asyncio.Future[dict[str, Any] | None]] = {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # A connection per request: on a kept-alive connection every streamed (chunked) answer of
            # TerminusDB 12.0.6 waited out the 40 ms delayed ACK (document GET 52 ms, on a fresh connection
            # 8 ms, measured on loopback); a new connection starts in quick-ACK mode.
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self.timeout,
                                                  connector=aiohttp.TCPConnector(force_close=True, limit=64))
        return self._session

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None,
                      data_version: str | None = None, headers: dict[str, str] | None = None) -> Reply:
        sent = dict(headers or {})
        if data_version:
            sent[DATA_VERSION] = data_version
        async with self._http().request(method, f"{self.base}/api/{path}", params=params,
                                        json=body, headers=sent) as resp:
            text = await resp.text()
            status, parsed = _parse(resp.status, text)
            version = resp.headers.get(DATA_VERSION)
        if status >= 400:
            error = TerminusError(method, path, status, parsed)
            if error.error_type == "api:DataVersionMismatch":
                raise DataVersionMismatch(method, path, status, parsed)
            if status >= 500 and "retry count exceeded" in str(error).lower():
                raise CommitRetriesExceeded(method, path, status, parsed)
            raise error
        return Reply(status, parsed, version)

    # Databases: /api/db/{org}/{db}
    def _db(self, db: str) -> str:
        return f"db/{quote(self.org, safe='')}/{quote(db, safe='')}"

    async def info(self) -> dict[str, Any]:
        reply = await self.request("GET", "info")
        return reply.body  # type: ignore[no-any-return]

    async def db_exists(self, db: str) -> bool:
        try:
            await self.request("HEAD", self._db(db))
        except TerminusError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def create_db(self, db: str, label: str, comment: str = "") -> bool:
        """Create the database; False when it already exists."""
        try:
            await self.request("POST", self._db(db), body={"label": label, "comment": comment})
        except TerminusError as exc:
            if exc.error_type == "api:DatabaseAlreadyExists":
                return False
            raise
        return True

    async def delete_db(self, db: str) -> bool:
        """Drop the database; False when it did not exist."""
        try:
            await self.request("DELETE", self._db(db))
        except TerminusError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # Documents: /api/document/{org}/{db} (branch main)
    def _docs(self, db: str) -> str:
        return f"document/{quote(self.org, safe='')}/{quote(db, safe='')}"

    async def data_version(self, db: str) -> str | None:
        """The branch's current data version (HEAD); None when the server sends none."""
        reply = await self.request("HEAD", self._docs(db), params={"graph_type": INSTANCE})
        return reply.data_version

    async def get_document(self, db: str, doc_id: str, graph_type: str = INSTANCE) -> dict[str, Any] | None:
        """One document, or None when it, or the database, does not exist. Reads of one document asked for
        within COALESCE seconds of each other share one request (200 commands of a batch, or 200
        submissions, all read their database's record): the request goes out after the last of them asked,
        so each sees everything committed before it asked."""
        key = (db, doc_id, graph_type)
        shared = self._reads.get(key)
        if shared is None:
            shared = self._reads[key] = asyncio.ensure_future(self._read_soon(key))
        # Shielded: a caller that is cancelled leaves the read to the others.
        return await asyncio.shield(shared)

    async def _read_soon(self, key: tuple[str, str, str]) -> dict[str, Any] | None:
        db, doc_id, graph_type = key
        try:
            await asyncio.sleep(COALESCE)
        finally:
            del self._reads[key]  # whoever asks from now on gets a request of its own
        try:
            reply = await self.request("GET", self._docs(db), params={"graph_type": graph_type, "id": doc_id})
        except TerminusError as exc:
            if exc.status == 404:
                return None
            raise
        return reply.body if isinstance(reply.body, dict) else None

    async def documents(self, db: str, type_: str, graph_type: str = INSTANCE) -> list[dict[str, Any]]:
        """Every document of a type (and its subclasses); [] when the database does not exist."""
        try:
            reply = await self.request("GET", self._docs(db), params={
                "graph_type": graph_type, "type": type_, "as_list": "true"})
        except TerminusError as exc:
            if exc.status == 404:
                return []
            raise
        return list(reply.body or [])

    async def schema(self, db: str) -> list[dict[str, Any]]:
        """Every schema document (the @context first); [] when the database does not exist."""
        try:
            reply = await self.request("GET", self._docs(db), params={"graph_type": SCHEMA, "as_list": "true"})
        except TerminusError as exc:
            if exc.status == 404:
                return []
            raise
        return list(reply.body or [])

    async def query(self, db: str, template: dict[str, Any], graph_type: str = INSTANCE) -> list[dict[str, Any]]:
        """Query by example (POST with `X-HTTP-Method-Override: GET`); [] when the database does not exist."""
        try:
            reply = await self.request("POST", self._docs(db), headers={"X-HTTP-Method-Override": "GET"},
                                       body={"query": template, "graph_type": graph_type, "as_list": True})
        except TerminusError as exc:
            if exc.status == 404:
                return []
            raise
        return list(reply.body or [])

    async def replace(self, db: str, docs: list[dict[str, Any]], *, author: str, message: str,
                      graph_type: str = INSTANCE, create: bool = True, data_version: str | None = None) -> Reply:
        """PUT (create=true: upsert) the documents as one commit."""
        return await self.request("PUT", self._docs(db), body=docs, data_version=data_version, params={
            "author": author, "message": message, "graph_type": graph_type, "create": _flag(create)})

    async def insert(self, db: str, docs: list[dict[str, Any]], *, author: str, message: str,
                     graph_type: str = INSTANCE, data_version: str | None = None) -> Reply:
        """POST new documents as one commit."""
        return await self.request("POST", self._docs(db), body=docs, data_version=data_version, params={
            "author": author, "message": message, "graph_type": graph_type})

    async def delete(self, db: str, ids: list[str], *, author: str, message: str, graph_type: str = INSTANCE,
                     data_version: str | None = None) -> Reply:
        """DELETE documents as one commit (one id as `?id=`, several as a JSON list body)."""
        params = {"author": author, "message": message, "graph_type": graph_type}
        if len(ids) == 1:
            return await self.request("DELETE", self._docs(db), data_version=data_version,
                                      params={**params, "id": ids[0]})
        return await self.request("DELETE", self._docs(db), body=ids, data_version=data_version, params=params)

    async def optimize(self, db: str) -> None:
        """Roll the branch's layers up (the data version stays): every commit adds a layer, and reads and
        schema checks walk them all. A failure is logged, not raised: without it things are only slower."""
        try:
            await self.request("POST", f"optimize/{quote(self.org, safe='')}/{quote(db, safe='')}/local/branch/main")
        except TerminusError as exc:
            log.warning("rolling up the layers of %s failed: %s", db, exc)

    async def woql(self, db: str, query: dict[str, Any]) -> list[dict[str, Any]]:
        """A read-only WOQL query (JSON-LD); its bindings, one dict per solution."""
        reply = await self.request("POST", f"woql/{quote(self.org, safe='')}/{quote(db, safe='')}",
                                   body={"query": query})
        body = reply.body if isinstance(reply.body, dict) else {}
        return list(body.get("bindings") or [])

    async def log(self, db: str, count: int = -1) -> list[dict[str, Any]]:
        """The branch's commits, newest first."""
        reply = await self.request("GET", f"log/{quote(self.org, safe='')}/{quote(db, safe='')}",
                                   params={"start": "0", "count": str(count)})
        return list(reply.body or [])
