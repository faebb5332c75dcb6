"""Settings read from SPICE_* environment variables, with loopback defaults for the local run."""
from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    return os.environ.get(f"SPICE_{name}", default)


def _int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


@functools.cache
def _secret_file(home: Path) -> str:
    """The secret generated once into home/secret (mode 0600); read once per process (every request verifies a
    token with it)."""
    path = home / "secret"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of the stack created it first
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def derive(secret: str, purpose: str) -> str:
    """A credential for one purpose, derived from a secret (hex, safe in URLs)."""
    return hmac.new(secret.encode(), f"spice {purpose} v1".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Settings:
    """Every port, path and name the processes share; one instance per process."""

    home: Path = field(default_factory=lambda: Path(_env("HOME", str(PROJECT_ROOT / ".spice"))))
    cache: Path = field(default_factory=lambda: Path(_env("CACHE", str(PROJECT_ROOT / ".cache"))))
    # Hosts are loopback for the local run; compose/ points them at its containers.
    pg_host: str = field(default_factory=lambda: _env("PG_HOST", "127.0.0.1"))
    redis_host: str = field(default_factory=lambda: _env("REDIS_HOST", "127.0.0.1"))
    kafka_host: str = field(default_factory=lambda: _env("KAFKA_HOST", "127.0.0.1"))
    worker_host: str = field(default_factory=lambda: _env("WORKER_HOST", "127.0.0.1"))
    worker_bind: str = field(default_factory=lambda: _env("WORKER_BIND", "127.0.0.1"))
    pg_port: int = field(default_factory=lambda: _int("PG_PORT", 55432))
    pg_database: str = field(default_factory=lambda: _env("PG_DATABASE", "spice"))
    pg_user: str = field(default_factory=lambda: _env("PG_USER", "spice"))
    # Passwords of the local PostgreSQL role and of Redis: derived from home/secret unless set
    # (compose/ sets them), so every process of one stack knows them and nothing else on the machine does.
    pg_password_override: str = field(default_factory=lambda: _env("PG_PASSWORD", ""))
    redis_password_override: str = field(default_factory=lambda: _env("REDIS_PASSWORD", ""))
    redis_port: int = field(default_factory=lambda: _int("REDIS_PORT", 56379))
    kafka_port: int = field(default_factory=lambda: _int("KAFKA_PORT", 59092))
    kafka_controller_port: int = field(default_factory=lambda: _int("KAFKA_CONTROLLER_PORT", 59093))
    web_host: str = field(default_factory=lambda: _env("WEB_HOST", "127.0.0.1"))
    web_port: int = field(default_factory=lambda: _int("WEB_PORT", 8002))
    worker_web_port: int = field(default_factory=lambda: _int("WORKER_WEB_PORT", 56066))
    # The relay's /metrics; 0: derived, two above the worker's port (a second worker takes the next one).
    relay_port_override: int = field(default_factory=lambda: _int("RELAY_PORT", 0))
    # Elasticsearch (search read model): HTTP and transport ports on loopback.
    es_host: str = field(default_factory=lambda: _env("ES_HOST", "127.0.0.1"))
    es_port: int = field(default_factory=lambda: _int("ES_PORT", 59200))
    es_transport_port: int = field(default_factory=lambda: _int("ES_TRANSPORT_PORT", 59300))
    # S3 event archive. The local run starts versitygw on s3_port; SPICE_S3_ENDPOINT="" switches to
    # the embedded local-directory archive under home/archive.
    s3_port: int = field(default_factory=lambda: _int("S3_PORT", 57090))
    s3_endpoint_override: str | None = field(default_factory=lambda: os.environ.get("SPICE_S3_ENDPOINT"))
    s3_bucket: str = field(default_factory=lambda: _env("S3_BUCKET", "spice-events"))
    s3_access_key: str = field(default_factory=lambda: _env("S3_ACCESS_KEY", "spiceadmin"))
    s3_secret_key: str = field(default_factory=lambda: _env("S3_SECRET_KEY", "spice-local-secret-key"))
    # TerminusDB document store, used instead of the PostgreSQL one when set (compose/ sets it).
    terminusdb_url: str = field(default_factory=lambda: _env("TERMINUSDB_URL", ""))
    # Its organisation, and the catalog database and database-name prefix of this deployment: two
    # deployments on one TerminusDB server keep apart by giving each its own catalog and prefix.
    terminusdb_org: str = field(default_factory=lambda: _env("TERMINUSDB_ORG", "admin"))
    terminusdb_catalog: str = field(default_factory=lambda: _env("TERMINUSDB_CATALOG", "SpiceCatalog"))
    terminusdb_prefix: str = field(default_factory=lambda: _env("TERMINUSDB_PREFIX", ""))
    # Prefix for topic names, the Faust app id and Redis channels, so test runs never share state.
    namespace: str = field(default_factory=lambda: _env("NAMESPACE", "spice"))
    partitions: int = field(default_factory=lambda: _int("PARTITIONS", 4))
    # How long an agent waits for a class or database whose create is recorded but not executed yet.
    dependency_wait_seconds: float = field(default_factory=lambda: float(_env("DEPENDENCY_WAIT", "30")))
    # A recorded command with no event after this long is queued again (reconciliation sweep).
    redeliver_after_seconds: float = field(default_factory=lambda: float(_env("REDELIVER_AFTER", "60")))
    # A final command status stays this long in the worker's status table; the status API answers for an
    # older one from the command log and the event store.
    status_ttl_seconds: float = field(default_factory=lambda: float(_env("STATUS_TTL", "86400")))
    # How often the relay reconciles every database with its event store (0: never); drift is logged and
    # shown in the health report, never repaired by itself.
    reconcile_interval_seconds: float = field(default_factory=lambda: float(_env("RECONCILE_INTERVAL", "600")))

    # Bearer tokens: HS256 signed with SPICE_SECRET, or with a secret generated once into home/secret.
    secret: str = field(default_factory=lambda: _env("SECRET", ""))
    admin_user: str = field(default_factory=lambda: _env("ADMIN_USER", "admin"))
    token_ttl_seconds: int = field(default_factory=lambda: _int("TOKEN_TTL", 30 * 24 * 3600))

    @property
    def signing_secret(self) -> str:
        """SPICE_SECRET if set, else the secret in home/secret, created on first use."""
        return self.secret or _secret_file(self.home)

    @property
    def pg_password(self) -> str:
        # From home/secret, not SPICE_SECRET: the services belong to the machine's stack, and a process
        # may sign its tokens with a secret of its own (the tests do).
        return self.pg_password_override or derive(_secret_file(self.home), "postgres password")[:32]

    @property
    def redis_password(self) -> str:
        return self.redis_password_override or derive(_secret_file(self.home), "redis password")[:32]

    @property
    def pg_dsn(self) -> str:
        user, password = quote(self.pg_user, safe=""), quote(self.pg_password, safe="")
        return f"postgresql://{user}:{password}@{self.pg_host}:{self.pg_port}/{self.pg_database}"

    @property
    def redis_url(self) -> str:
        return f"redis://:{quote(self.redis_password, safe='')}@{self.redis_host}:{self.redis_port}/0"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.kafka_host}:{self.kafka_port}"

    @property
    def relay_port(self) -> int:
        return self.relay_port_override or self.worker_web_port + 2

    @property
    def worker_url(self) -> str:
        return f"http://{self.worker_host}:{self.worker_web_port}"

    @property
    def es_url(self) -> str:
        return f"http://{self.es_host}:{self.es_port}"

    @property
    def s3_endpoint(self) -> str:
        """The S3 endpoint, or "" for the local-directory archive."""
        if self.s3_endpoint_override is not None:
            return self.s3_endpoint_override
        return f"http://127.0.0.1:{self.s3_port}"

    def topic(self, name: str) -> str:
        return f"{self.namespace}-{name}"


def load() -> Settings:
    return Settings()


# What one Kafka message of the project may carry: a command as large as the HTTP body limit (a bulk of
# 10,000 instances of ~1.6 kB each). The broker and every topic are configured for it, with room for
# the record batch's own overhead; the view refuses a larger command (413) and the relay never sends one.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
BROKER_MESSAGE_BYTES = MAX_MESSAGE_BYTES + 1024 * 1024

# Every topic the relay writes or the agents read, without the namespace prefix.
TOPICS = ("database-commands", "ontology-commands", "instance-commands", "database-events",
          "ontology-events", "instance-events", "command-status", "dead-letters",
          "projection-dead-letters")
