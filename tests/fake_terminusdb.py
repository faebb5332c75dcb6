"""FAKE TerminusDB: an in-memory stand-in for its documented HTTP document API (protocol tests only)."""
from __future__ import annotations

import base64
import copy
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests import fake_woql

# Everything here follows /work/shared/reference/terminusdb-http-api.md (sections in comments). It is
# NOT TerminusDB: it models only what the adapter uses, and is stricter than the real server where
# that catches adapter mistakes (unknown query parameters, missing auth, non-boolean flags).

BASE = "terminusdb:///data/"
XSD = "http://www.w3.org/2001/XMLSchema#"
BASE_TYPES = {"xsd:string", "xsd:integer", "xsd:decimal", "xsd:boolean", "xsd:date", "xsd:dateTime",
              "xsd:double", "xsd:float", "xsd:long", "xsd:anyURI", "rdf:langString", "sys:JSON"}
FAMILIES = {"Optional", "Set", "List", "Array", "Cardinality"}
CLASS_KEYWORDS = {"@id", "@type", "@key", "@base", "@inherits", "@abstract", "@subdocument", "@unfoldable",
                  "@metadata", "@oneOf", "@documentation"}
KEY_TYPES = {"Lexical", "Hash", "ValueHash", "Random"}
HTTP_STATUS = {"api:failure": 400, "api:unauthorized": 401, "api:forbidden": 403, "api:not_found": 404,
               "api:method_not_allowed": 405, "api:conflict": 409, "api:server_error": 500}
DOCUMENT_ERROR = {"GET": "api:GetDocumentErrorResponse", "POST": "api:InsertDocumentErrorResponse",
                  "PUT": "api:ReplaceDocumentErrorResponse", "DELETE": "api:DeleteDocumentErrorResponse",
                  "HEAD": "api:AccessDocumentErrorResponse"}
WRITE_FLAGS = {"require_migration", "allow_destructive_migration"}
# Query parameters the reference documents per endpoint and method (section 3).
PARAMETERS = {
    ("document", "GET"): {"graph_type", "id", "ids", "type", "skip", "count", "as_list", "minimized", "unfold",
                          "compress_ids", "prefixed"},
    ("document", "HEAD"): {"graph_type"},
    ("document", "POST"): {"author", "message", "graph_type", "full_replace", "raw_json", "merge_repeats",
                           "overwrite"} | WRITE_FLAGS,
    ("document", "PUT"): {"author", "message", "graph_type", "create", "raw_json", "merge_repeats"} | WRITE_FLAGS,
    ("document", "DELETE"): {"author", "message", "graph_type", "nuke", "id", "type"} | WRITE_FLAGS,
    ("db", "POST"): set(), ("db", "DELETE"): {"force"}, ("db", "HEAD"): set(), ("db", "GET"): {"branches", "verbose"},
    ("log", "GET"): {"start", "count"},
    ("woql", "POST"): set(), ("optimize", "POST"): set(),
}
BOOLEAN_PARAMETERS = {"as_list", "minimized", "unfold", "compress_ids", "prefixed", "full_replace", "raw_json",
                      "merge_repeats", "overwrite", "create", "nuke", "force", "branches", "verbose"} | WRITE_FLAGS
DATE = r"-?\d{4}-\d{2}-\d{2}(Z|[+-]\d{2}:\d{2})?"
DATETIME = r"-?\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?"


class ApiError(Exception):
    """An error answer: `api:status` decides the HTTP code (section 1)."""

    def __init__(self, api_status: str, error: dict[str, Any], message: str = "") -> None:
        super().__init__(message or error.get("@type", ""))
        self.api_status, self.error, self.message = api_status, error, message or str(error.get("@type"))


def _failure(witnesses: list[dict[str, Any]]) -> ApiError:
    return ApiError("api:failure", {"@type": "api:SchemaCheckFailure", "api:witnesses": witnesses},
                    "Schema check failure")


@dataclass
class Commit:
    identifier: str
    author: str
    message: str
    graph_type: str
    timestamp: float = field(default_factory=time.time)


@dataclass
class FakeDatabase:
    label: str
    comment: str
    schema: dict[str, dict[str, Any]] = field(default_factory=dict)
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted_ids: set[str] = field(default_factory=set)
    commits: list[Commit] = field(default_factory=list)

    @property
    def data_version(self) -> str | None:
        return f"branch:{self.commits[-1].identifier}" if self.commits else None


def _public(value: Any) -> Any:
    """A stored document as GET returns it: references as id strings (compress_ids=true)."""
    if isinstance(value, list):
        return [_public(v) for v in value]
    if isinstance(value, dict):
        return value["@ref"] if set(value) == {"@ref"} else {k: _public(v) for k, v in value.items()}
    return value


def _short(doc_id: str) -> str:
    return doc_id[len(BASE):] if doc_id.startswith(BASE) else doc_id


class FakeTerminusDB:
    """The FAKE server's state and aiohttp application. `requests` records every request;
    `violations` lists protocol misuse the fake caught; `before_write` (if set) runs once at the start
    of the next write request, to interleave a competing writer; `give_up_commits` makes that many of the
    next writes answer the 500 a live server gave when its internal commit retries ran out under
    concurrent writers."""

    def __init__(self, org: str = "admin", user: str = "admin", password: str = "root") -> None:
        self.org = org
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.dbs: dict[str, FakeDatabase] = {}
        self.requests: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.before_write: Callable[[], Awaitable[None]] | None = None
        self.give_up_commits = 0

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/api/ok", self._ok)
        app.router.add_get("/api/info", self._info)
        app.router.add_route("*", "/api/db/{org}/{db}", self._db)
        app.router.add_route("*", "/api/document/{org}/{db}", self._document)
        app.router.add_get("/api/log/{org}/{db}", self._log)
        app.router.add_post("/api/woql/{org}/{db}", self._woql)
        app.router.add_post("/api/optimize/{org}/{db}/local/branch/main", self._optimize)
        return app

    def commits(self, db: str) -> list[Commit]:
        return self.dbs[db].commits

    # -- plumbing ---------------------------------------------------------------------------------

    def _violation(self, text: str) -> ApiError:
        self.violations.append(text)
        return ApiError("api:failure", {"@type": "fake:ProtocolViolation"}, text)

    @web.middleware
    async def _middleware(self, request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        raw = await request.text()
        self.requests.append({"method": request.method, "path": request.path, "query": dict(request.query),
                              "body": json.loads(raw) if raw.strip() else None, "headers": dict(request.headers)})
        endpoint = request.path.split("/")[2] if request.path.count("/") >= 2 else ""
        response_type = (DOCUMENT_ERROR.get(request.method, "api:ErrorResponse") if endpoint == "document"
                         else "api:ErrorResponse")
        try:
            given = request.headers.get("Authorization")
            if request.path not in ("/api/ok", "/api/info") or given is not None:
                if given != self.auth:  # section 1: bad login is 401 IncorrectAuthenticationError
                    raise ApiError("api:unauthorized", {"@type": "api:IncorrectAuthenticationError"},
                                   "Incorrect authentication information")
            allowed = PARAMETERS.get((endpoint, request.method))
            if allowed is not None:
                if request.method == "GET" or request.headers.get("X-HTTP-Method-Override") == "GET":
                    allowed = PARAMETERS[(endpoint, "GET")]
                for name, value in request.query.items():
                    if name not in allowed:
                        raise self._violation(f"{request.method} {request.path}: undocumented parameter {name!r}")
                    if name in BOOLEAN_PARAMETERS and value not in ("true", "false"):
                        raise self._violation(f"{request.method} {request.path}: {name}={value!r} is not a boolean")
            return await handler(request)
        except ApiError as exc:
            body = {"@type": response_type, "api:status": exc.api_status, "api:error": exc.error,
                    "api:message": exc.message}
            return web.json_response(body, status=HTTP_STATUS[exc.api_status])

    def _database(self, request: web.Request) -> tuple[str, FakeDatabase]:
        org, name = request.match_info["org"], request.match_info["db"]
        if org != self.org or name not in self.dbs:
            raise ApiError("api:not_found", {"@type": "api:UnresolvableAbsoluteDescriptor",
                                             "api:absolute_descriptor": f"{org}/{name}/local/branch/main"})
        return name, self.dbs[name]

    @staticmethod
    def _headers(db: FakeDatabase) -> dict[str, str]:
        return {"TerminusDB-Data-Version": db.data_version} if db.data_version else {}

    @staticmethod
    def _check_data_version(request: web.Request, db: FakeDatabase) -> None:
        """Section 3, optimistic locking: a sent data version must be the branch head."""
        sent = request.headers.get("TerminusDB-Data-Version")
        if sent is None:
            return
        parts = sent.split(":")
        if len(parts) != 2 or len(parts[0]) <= 3 or len(parts[1]) <= 3:
            raise ApiError("api:failure", {"@type": "api:BadDataVersion", "api:data_version": sent})
        if sent != db.data_version:
            raise ApiError("api:failure", {"@type": "api:DataVersionMismatch", "api:requested_data_version": sent,
                                           "api:actual_data_version": db.data_version or ""},
                           "Requested data version in header does not match actual data version.")

    @staticmethod
    def _flag(request: web.Request, name: str) -> bool:
        return request.query.get(name) == "true"

    # -- info, databases, log ---------------------------------------------------------------------

    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response({"@type": "api:InfoResponse", "api:status": "api:success", "api:info": {
            "authority": "terminusdb://system/data/User/admin", "terminusdb": {"version": "fake-12.0.6"},
            "terminusdb_store": {"version": "fake"}, "storage": {"version": "2"}}})

    async def _db(self, request: web.Request) -> web.Response:
        org, name = request.match_info["org"], request.match_info["db"]
        if org != self.org:
            raise ApiError("api:failure", {"@type": "api:UnknownOrganizationName", "api:organization_name": org})
        if request.method == "HEAD":
            return web.Response(status=200 if name in self.dbs else 404)
        if request.method == "POST":
            body = await request.json()
            if not isinstance(body, dict) or not isinstance(body.get("label"), str) or not body["label"]:
                raise self._violation("database create needs a JSON object with a non-empty label")
            if set(body) - {"label", "comment", "public", "schema", "prefixes"}:
                raise self._violation(f"database create: unknown keys {sorted(set(body) - {'label', 'comment'})}")
            if not isinstance(body.get("comment", ""), str):
                raise self._violation("database create: comment must be a string")
            if name in self.dbs:
                raise ApiError("api:failure", {"@type": "api:DatabaseAlreadyExists", "api:database_name": name,
                                               "api:organization_name": org})
            self.dbs[name] = FakeDatabase(body["label"], body.get("comment", ""))
            return web.json_response({"@type": "api:DbCreateResponse", "api:status": "api:success",
                                      "api:database_uri": f"terminusdb://system/data/UserDatabase/{uuid.uuid4()}"})
        if request.method == "DELETE":
            if name not in self.dbs:
                raise ApiError("api:not_found", {"@type": "api:UnknownDatabase", "api:database_name": name,
                                                 "api:organization_name": org})
            del self.dbs[name]
            return web.json_response({"@type": "api:DbDeleteResponse", "api:status": "api:success"})
        if request.method == "GET":
            _, db = self._database(request)
            return web.json_response({"path": f"{org}/{name}", "label": db.label, "comment": db.comment})
        raise ApiError("api:method_not_allowed", {"@type": "api:MethodNotAllowed"})

    async def _log(self, request: web.Request) -> web.Response:
        _, db = self._database(request)
        start, count = int(request.query.get("start", "0")), int(request.query.get("count", "-1"))
        commits = list(reversed(db.commits))[start:None if count < 0 else start + count]
        return web.json_response([{"@id": f"ValidCommit/{c.identifier}", "@type": "ValidCommit",
                                   "identifier": c.identifier, "author": c.author, "message": c.message,
                                   "timestamp": c.timestamp} for c in commits])

    async def _optimize(self, request: web.Request) -> web.Response:
        """Seen live: 200 api:OptimizeResponse, the data version unchanged (the fake has no layers)."""
        self._database(request)
        return web.json_response({"@type": "api:OptimizeResponse", "api:status": "api:success"})

    async def _woql(self, request: web.Request) -> web.Response:
        """Read-only WOQL over the instance graph (only the query words tests/fake_woql.py models)."""
        _, db = self._database(request)
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("query"), dict) or "commit_info" in body:
            raise self._violation("a read-only WOQL request is {\"query\": {...}}")
        types = {cid: {name: (spec if isinstance(spec, str) else spec.get("@class", "")) for name, spec in
                       self._fields(db.schema, cid).items()} for cid in db.schema}
        try:
            found = list(fake_woql.solve(body["query"], fake_woql.triples(db.instances, types), {}))
        except fake_woql.WoqlError as exc:
            raise self._violation(f"WOQL the fake does not model: {exc}") from exc
        bindings = [{k: fake_woql.shown(v) for k, v in b.items()}
                    for b in found]
        return web.json_response({"@type": "api:WoqlResponse", "api:status": "api:success",
                                  "api:variable_names": sorted({k for b in bindings for k in b}),
                                  "bindings": bindings, "deletes": 0, "inserts": 0, "transaction_retry_count": 0})

    # -- documents --------------------------------------------------------------------------------

    async def _document(self, request: web.Request) -> web.StreamResponse:
        name, db = self._database(request)
        graph = request.query.get("graph_type", "instance")
        if request.method == "POST" and request.headers.get("X-HTTP-Method-Override") == "GET":
            return self._get(db, await request.json())
        if graph not in ("instance", "schema"):
            raise self._violation(f"graph_type={graph!r} is neither instance nor schema")
        if request.method == "HEAD":
            return web.Response(status=200, headers=self._headers(db))
        if request.method == "GET":
            return self._get(db, dict(request.query))
        if request.method not in ("POST", "PUT", "DELETE"):
            raise ApiError("api:method_not_allowed", {"@type": "api:MethodNotAllowed"})
        for required in ("author", "message"):  # section 3: required and non-empty on every write
            if not request.query.get(required):
                raise ApiError("api:failure", {"@type": "api:MissingParameter", "api:parameter": required})
        if self._flag(request, "raw_json"):
            raise self._violation("raw_json is not modelled by the fake")
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            await hook()
        if self.give_up_commits > 0:
            # Seen live (12.0.6, 200 concurrent class creates): HTTP 500 with this message, no api:error.
            self.give_up_commits -= 1
            return web.json_response({"@type": "api:ErrorResponse", "api:status": "api:server_error",
                                      "api:message": "Transaction retry count exceeded in internal operation"},
                                     status=500)
        self._check_data_version(request, db)
        if request.method == "DELETE":
            ids = await self._delete(request, db, graph)
            self._commit(db, request, graph)
            return web.Response(status=204, headers=self._headers(db))
        body = await request.json()
        docs = body if isinstance(body, list) else [body]
        if not docs or not all(isinstance(d, dict) for d in docs):
            raise self._violation("a write body must be a JSON object or a non-empty array of objects")
        ids = self._write(request, db, graph, docs)
        self._commit(db, request, graph)
        return web.json_response(ids, headers=self._headers(db))

    def _commit(self, db: FakeDatabase, request: web.Request, graph: str) -> None:
        db.commits.append(Commit(uuid.uuid4().hex, request.query["author"], request.query["message"], graph))

    def _get(self, db: FakeDatabase, params: dict[str, Any]) -> web.StreamResponse:
        graph = params.get("graph_type", "instance")
        store = db.schema if graph == "schema" else db.instances
        if "id" in params:
            doc_id = _short(str(params["id"]))
            if doc_id in store:
                return web.json_response(_public(store[doc_id]), headers=self._headers(db))
            error = {"@type": "api:DocumentNotFound", "api:document_id": doc_id}
            if doc_id in db.deleted_ids:
                # Section 9: seen live, a deleted document answers 200 with the status in the body.
                body = {"@type": "api:GetDocumentErrorResponse", "api:status": "api:not_found", "api:error": error,
                        "api:message": "Document not found"}
                return web.Response(status=200, text=f"Status: 404\n\n{json.dumps(body)}",
                                    headers=self._headers(db))
            raise ApiError("api:not_found", error, "Document not found")
        docs = list(store.values())
        if "type" in params or isinstance(params.get("query"), dict):
            wanted = params.get("type") or params["query"].get("@type")
            family = self._descendants(db, str(wanted))
            docs = [d for d in docs if d.get("@type") in family]
        if isinstance(params.get("query"), dict):
            template = {k: v for k, v in params["query"].items() if k != "@type"}
            docs = [d for d in docs if all(d.get(k) == v for k, v in template.items())]
        skip = int(params.get("skip", 0))
        count = params.get("count")
        docs = [_public(d) for d in docs[skip:None if count is None else skip + int(count)]]
        if params.get("as_list") in (True, "true"):
            return web.json_response(docs, headers=self._headers(db))
        return web.Response(text="".join(json.dumps(d) + "\n" for d in docs), content_type="application/json",
                            headers=self._headers(db))

    async def _delete(self, request: web.Request, db: FakeDatabase, graph: str) -> list[str]:
        if "type" in request.query or self._flag(request, "nuke"):
            raise self._violation("DELETE by type or nuke is not modelled by the fake")
        if "id" in request.query:
            ids = [request.query["id"]]
        else:
            raw = await request.text()
            listed = json.loads(raw) if raw.strip() else None
            if not isinstance(listed, list) or not listed:
                raise ApiError("api:failure", {"@type": "api:MissingTargets"})
            ids = listed
        ids = [_short(str(i)) for i in ids]
        store = copy.deepcopy(db.schema if graph == "schema" else db.instances)
        for doc_id in ids:
            if doc_id not in store:
                raise ApiError("api:not_found", {"@type": "api:DocumentNotFound", "api:document_id": doc_id})
            del store[doc_id]
        schema, instances = (store, db.instances) if graph == "schema" else (db.schema, store)
        self._validate(schema, instances)
        if graph == "schema":
            db.schema = store
        else:
            db.instances = store
            db.deleted_ids.update(ids)
        return ids

    def _write(self, request: web.Request, db: FakeDatabase, graph: str, docs: list[dict[str, Any]]) -> list[str]:
        insert, create = request.method == "POST", self._flag(request, "create")
        store = copy.deepcopy(db.schema if graph == "schema" else db.instances)
        if insert and self._flag(request, "full_replace"):
            if graph == "schema" and docs[0].get("@type") != "@context":
                raise ApiError("api:failure", {"@type": "api:NoContextFoundInSchema"})
            store = {}
            docs = docs[1:] if graph == "schema" else docs
        ids: list[str] = []
        for doc in docs:
            if doc.get("@type") == "@context":
                raise ApiError("api:failure", {"@type": "api:InsertingContext"})
            doc = self._check_schema_doc(doc) if graph == "schema" else self._check_instance_doc(doc, db, insert)
            doc_id = doc["@id"]
            if doc_id in ids and not self._flag(request, "merge_repeats"):
                raise ApiError("api:failure", {"@type": "api:SameDocumentIdsMutatedInOneTransaction",
                                               "api:duplicate_ids": [doc_id]})
            if insert and doc_id in store:
                raise ApiError("api:failure", {"@type": "api:DocumentIdAlreadyExists", "api:document_id": doc_id,
                                               "api:document": doc})
            if not insert and not create and doc_id not in store:
                raise ApiError("api:not_found", {"@type": "api:DocumentNotFound", "api:document_id": doc_id,
                                                 "api:document": doc})
            store[doc_id] = doc
            ids.append(doc_id)
        schema, instances = (store, db.instances) if graph == "schema" else (db.schema, store)
        self._validate(schema, instances)
        if graph == "schema":
            db.schema = store
            return ids
        db.instances = store
        db.deleted_ids.difference_update(ids)
        return [BASE + i for i in ids]

    # -- schema and instance checks (sections 4 and 5) --------------------------------------------

    def _check_schema_doc(self, doc: dict[str, Any]) -> dict[str, Any]:
        if doc.get("@type") not in ("Class", "Enum"):
            raise self._violation(f"schema document of @type {doc.get('@type')!r} (expected Class or Enum)")
        class_id = doc.get("@id")
        if not isinstance(class_id, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", class_id):
            raise self._violation(f"schema @id {class_id!r} is not a class name")
        if doc["@type"] == "Enum":
            if not isinstance(doc.get("@value"), list):
                raise ApiError("api:failure", {"@type": "api:InvalidEnumValues"})
            return doc
        for keyword in (k for k in doc if k.startswith("@")):
            if keyword not in CLASS_KEYWORDS:
                raise self._violation(f"class {class_id}: unknown keyword {keyword}")
        for keyword in ("@abstract", "@subdocument", "@unfoldable"):
            if keyword in doc and doc[keyword] != []:
                raise self._violation(f"class {class_id}: {keyword} must be []")
        inherits = doc.get("@inherits", [])
        if not (isinstance(inherits, str) or (isinstance(inherits, list)
                                               and all(isinstance(p, str) for p in inherits))):
            raise self._violation(f"class {class_id}: @inherits must be a class name or a list of them")
        if "@key" in doc:
            key = doc["@key"]
            if not isinstance(key, dict):
                raise ApiError("api:failure", {"@type": "api:DocumentKeyNotObject", "api:key_value": key})
            if key.get("@type") not in KEY_TYPES:
                raise self._violation(f"class {class_id}: @key type {key.get('@type')!r}")
            if key["@type"] in ("Lexical", "Hash"):
                if "@fields" not in key:
                    raise ApiError("api:failure", {"@type": "api:KeyMissingFields"})
                if not isinstance(key["@fields"], list):
                    raise ApiError("api:failure", {"@type": "api:KeyFieldsNotAnArray"})
                if not key["@fields"]:
                    raise ApiError("api:failure", {"@type": "api:KeyFieldsIsEmpty"})
        if "@documentation" in doc:
            self._check_documentation(class_id, doc["@documentation"])
        for name, range_ in doc.items():
            if not name.startswith("@"):
                self._check_range_shape(class_id, name, range_)
        return doc

    def _check_documentation(self, class_id: str, documentation: Any) -> None:
        entries = documentation if isinstance(documentation, list) else [documentation]
        if len(entries) > 1 and not all(isinstance(e, dict) and "@language" in e for e in entries):
            raise ApiError("api:failure", {"@type": "api:NoLanguageTagForMultilingual"})
        languages = [e.get("@language") for e in entries if isinstance(e, dict) and "@language" in e]
        if len(languages) != len(set(languages)):
            raise ApiError("api:failure", {"@type": "api:LanguageTagsRepeated", "api:languages": languages})
        for entry in entries:
            if not isinstance(entry, dict) or set(entry) - {"@language", "@comment", "@label", "@properties"}:
                raise self._violation(f"class {class_id}: bad @documentation entry {entry!r}")
            for text in (entry.get("@comment"), entry.get("@label")):
                if text is not None and not isinstance(text, str):
                    raise self._violation(f"class {class_id}: @documentation texts must be strings")
            for prop, value in (entry.get("@properties") or {}).items():
                if not (isinstance(value, str) or (isinstance(value, dict) and set(value) <= {"@label", "@comment"}
                                                   and all(isinstance(v, str) for v in value.values()))):
                    raise self._violation(f"class {class_id}: @documentation of {prop} is {value!r}")

    def _check_range_shape(self, class_id: str, name: str, range_: Any) -> None:
        if isinstance(range_, str):
            return
        if not isinstance(range_, dict) or range_.get("@type") not in FAMILIES or "@class" not in range_:
            raise self._violation(f"class {class_id}: property {name} has range {range_!r}")
        if set(range_) - {"@type", "@class", "@dimensions", "@cardinality", "@min_cardinality", "@max_cardinality"}:
            raise self._violation(f"class {class_id}: property {name} has unknown range keys {range_!r}")
        self._check_range_shape(class_id, name, range_["@class"])

    def _check_instance_doc(self, doc: dict[str, Any], db: FakeDatabase, insert: bool) -> dict[str, Any]:
        type_ = doc.get("@type")
        if not isinstance(type_, str):
            raise self._violation("an instance document needs an @type (the fake does not infer types)")
        if "@id" not in doc:
            if not insert:
                raise self._violation("PUT of an instance without @id")
            doc = {**doc, "@id": f"{type_}/{uuid.uuid4().hex[:16]}"}
        doc_id = _short(str(doc["@id"]))
        if not doc_id.startswith(f"{type_}/"):  # section 5: a supplied @id starts with the class prefix
            raise ApiError("api:failure", {"@type": "api:SubmittedDocumentIdDoesNotHaveExpectedPrefix",
                                           "api:submitted_id": BASE + doc_id, "api:prefix": f"{BASE}{type_}/"})
        out: dict[str, Any] = {"@type": type_, "@id": doc_id}
        for name, value in doc.items():
            if name.startswith("@"):
                continue
            out[name] = self._normalise_value(value)
        return out

    def _normalise_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._normalise_value(v) for v in value]
        if isinstance(value, dict):
            if set(value) == {"@id", "@type"} and value["@type"] == "@id":
                return {"@ref": _short(str(value["@id"]))}
            raise self._violation(f"inline objects are not modelled by the fake: {value!r}")
        return value

    def _descendants(self, db: FakeDatabase, class_id: str, schema: dict[str, dict[str, Any]] | None = None
                     ) -> set[str]:
        schema = db.schema if schema is None else schema
        found, changed = {class_id}, True
        while changed:
            changed = False
            for cid, doc in schema.items():
                parents = doc.get("@inherits", [])
                parents = [parents] if isinstance(parents, str) else parents
                if cid not in found and found & set(parents):
                    found.add(cid)
                    changed = True
        return found

    @staticmethod
    def _fields(schema: dict[str, dict[str, Any]], class_id: str) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        doc = schema[class_id]
        parents = doc.get("@inherits", [])
        for parent in [parents] if isinstance(parents, str) else parents:
            if parent in schema:
                fields.update(FakeTerminusDB._fields(schema, parent))
        fields.update({k: v for k, v in doc.items() if not k.startswith("@")})
        return fields

    def _validate(self, schema: dict[str, dict[str, Any]], instances: dict[str, dict[str, Any]]) -> None:
        """The whole-graph schema check TerminusDB runs at commit: refusal is 400 SchemaCheckFailure."""
        witnesses: list[dict[str, Any]] = []
        for class_id, doc in schema.items():
            parents = doc.get("@inherits", [])
            for parent in [parents] if isinstance(parents, str) else parents:
                if parent not in schema:
                    witnesses.append({"@type": "inheritance_of_undefined_class", "class": class_id, "parent": parent})
            for name, range_ in doc.items():
                if name.startswith("@"):
                    continue
                base = range_
                while isinstance(base, dict):
                    base = base["@class"]
                if base not in BASE_TYPES and base not in schema:
                    witnesses.append({"@type": "not_a_class_or_base_type", "class": base, "property": name})
        if witnesses:
            raise _failure(witnesses)
        for doc in instances.values():
            witnesses += self._instance_witnesses(schema, instances, doc)
        if witnesses:
            raise _failure(witnesses)

    def _instance_witnesses(self, schema: dict[str, dict[str, Any]], instances: dict[str, dict[str, Any]],
                            doc: dict[str, Any]) -> list[dict[str, Any]]:
        type_ = doc["@type"]
        if type_ not in schema:
            return [{"@type": "unknown_type", "type": type_, "document": doc}]
        if "@abstract" in schema[type_]:
            return [{"@type": "reifying_abstract_class", "class": type_, "document": doc}]
        fields = self._fields(schema, type_)
        out: list[dict[str, Any]] = []
        for name in doc:
            if not name.startswith("@") and name not in fields:
                out.append({"@type": "unknown_property_for_type", "property": name, "type": type_})
        for name, range_ in fields.items():
            value = doc.get(name)
            family = range_["@type"] if isinstance(range_, dict) else None
            target = range_["@class"] if isinstance(range_, dict) else range_
            if value is None:
                if family is None:
                    out.append({"@type": "required_field_does_not_exist_in_document", "document": doc,
                                "field": f"terminusdb:///schema#{name}"})
                continue
            if isinstance(value, list) and family in (None, "Optional"):
                out.append({"@type": "unexpected_list", "field": name, "document": doc})
                continue
            for item in value if isinstance(value, list) else [value]:
                out += self._value_witnesses(schema, instances, name, target, item)
        return out

    def _value_witnesses(self, schema: dict[str, dict[str, Any]], instances: dict[str, dict[str, Any]],
                         name: str, target: str, value: Any) -> list[dict[str, Any]]:
        if target in schema:
            ref = value.get("@ref") if isinstance(value, dict) else (_short(value) if isinstance(value, str) else None)
            if ref is None:
                return [{"@type": "not_a_reference", "field": name, "value": value}]
            if ref not in instances:
                return [{"@type": "references_untyped_object", "object": ref}]
            if instances[ref]["@type"] not in self._descendants(FakeDatabase("", "", schema=schema), target, schema):
                return [{"@type": "instance_not_of_class", "class": target, "instance": ref}]
            return []
        checks: dict[str, Callable[[Any], bool]] = {
            "xsd:string": lambda v: isinstance(v, str),
            "xsd:integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
            or (isinstance(v, str) and re.fullmatch(r"-?\d+", v) is not None),
            "xsd:decimal": lambda v: (isinstance(v, int | float) and not isinstance(v, bool))
            or (isinstance(v, str) and re.fullmatch(r"-?\d+(\.\d+)?", v) is not None),
            "xsd:boolean": lambda v: isinstance(v, bool),
            "xsd:date": lambda v: isinstance(v, str) and re.fullmatch(DATE, v) is not None,
            "xsd:dateTime": lambda v: isinstance(v, str) and re.fullmatch(DATETIME, v) is not None,
        }
        check = checks.get(target)
        if check is None or check(value):
            return []
        return [{f"terminusdb:///schema#{name}": {"@type": "could_not_interpret_as_type",
                                                  "type": XSD + target.split(":", 1)[1], "value": value}}]
