"""Elasticsearch 9.2.4 (integration-test distribution from Maven Central): one node on 127.0.0.1, unprivileged."""
from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import urllib.request
from pathlib import Path

from shared.config import Settings
from shared.stack.process import (
    StackError,
    alocked,
    arun,
    ensure_port_free,
    locked,
    pid_alive,
    port_open,
    read_pid,
    run,
    stop_pid,
    wait_until,
)

ES_VERSION = "9.2.4"
ARTIFACT = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{ES_VERSION}:zip"
JAVA_HOME = Path("/usr/lib/jvm/temurin-25-jdk-amd64")
OS_USER = "spice-es"
HEAP = "-Xms512m -Xmx512m"
START_DEADLINE = 240.0  # about a minute alone; longer while other JVMs share the two cores
MAIN_CLASS = "org.elasticsearch.bootstrap.Elasticsearch"


def _dist(settings: Settings) -> Path:
    return settings.cache / f"elasticsearch-{ES_VERSION}"


def _marker(settings: Settings) -> Path:
    return _dist(settings) / ".complete"


def _root(settings: Settings) -> Path:
    return settings.home / "elasticsearch"


def _conf(settings: Settings) -> Path:
    return _root(settings) / "config"


def _logs(settings: Settings) -> Path:
    return _root(settings) / "logs"


def _data(settings: Settings) -> Path:
    return _root(settings) / "data"


def _pidfile(settings: Settings) -> Path:
    return _root(settings) / "elasticsearch.pid"


def _server_log(settings: Settings) -> Path:
    return _logs(settings) / "spice-es.log"


def _stdout_log(settings: Settings) -> Path:
    return _root(settings) / "stdout.log"


async def ensure_dist(settings: Settings) -> Path:
    """Fetch the zip with Maven (kept in ~/.m2) and unzip it into settings.cache once (marker after success)."""
    dist = _dist(settings)
    if _marker(settings).exists():
        return dist
    mvn, unzip = shutil.which("mvn"), shutil.which("unzip")
    if mvn is None or unzip is None:
        raise StackError("mvn and unzip are needed to install Elasticsearch (run ./spice.sh)")
    work = settings.cache / "elasticsearch.build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    await arun([mvn, "-q", "-B", "dependency:copy", f"-Dartifact={ARTIFACT}", f"-DoutputDirectory={work}"],
               cwd=work, timeout=900)
    zips = list(work.glob("elasticsearch-*.zip"))
    if not zips:
        raise StackError(f"maven finished but no Elasticsearch zip in {work}")
    await arun([unzip, "-q", "-o", zips[0], "-d", work / "unzipped"], timeout=300)
    shutil.rmtree(dist, ignore_errors=True)
    (work / "unzipped" / f"elasticsearch-{ES_VERSION}").rename(dist)
    shutil.rmtree(work, ignore_errors=True)
    _marker(settings).write_text(ES_VERSION + "\n")
    return dist


def _ensure_user() -> None:
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        pass
    else:
        return
    res = run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
               "--shell", "/usr/sbin/nologin", OS_USER], check=False, timeout=30)
    if res.returncode not in (0, 9):  # 9: created meanwhile by a concurrent start
        raise StackError(f"could not create the system user {OS_USER}: {res.stderr.strip()}")


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for parent, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(parent, name), uid, gid)


def _write_config(settings: Settings) -> None:
    """Config folder of our own (ES_PATH_CONF): the distribution's files plus node settings and heap."""
    conf = _conf(settings)
    for d in (conf / "jvm.options.d", _logs(settings), _data(settings)):
        d.mkdir(parents=True, exist_ok=True)
    for name in ("log4j2.properties", "roles.yml", "role_mapping.yml", "users", "users_roles"):
        shutil.copyfile(_dist(settings) / "config" / name, conf / name)
    logs = _logs(settings)
    jvm = (_dist(settings) / "config" / "jvm.options").read_text()
    jvm = (jvm.replace("-XX:ErrorFile=hs_err_pid%p.log", f"-XX:ErrorFile={logs}/hs_err_pid%p.log")
              .replace("file=gc.log:", f"file={logs}/gc.log:")
              .replace("filecount=32,filesize=64m", "filecount=2,filesize=16m")
              .replace("-XX:+HeapDumpOnOutOfMemoryError", "-XX:-HeapDumpOnOutOfMemoryError"))
    (conf / "jvm.options").write_text(jvm)
    (conf / "jvm.options.d" / "spice.options").write_text("\n".join(HEAP.split()) + "\n")
    node = {
        "cluster.name": "spice-search",
        "node.name": "spice-es-1",
        "discovery.type": "single-node",
        "network.host": "127.0.0.1",
        "http.port": settings.es_port,
        "transport.port": settings.es_transport_port,
        "path.data": str(_data(settings)),
        "path.logs": str(logs),
        "xpack.security.enabled": False,
        # A bulk or index request to a missing alias fails instead of creating an unmapped index.
        "action.auto_create_index": False,
        # A shared, busy disk must not flip our indices to read-only.
        "cluster.routing.allocation.disk.threshold_enabled": False,
        # Every database has its own small indices (one shard each): the default of 1,000 shards per node
        # refused new databases' indices after about 500 databases (seen with a full test run beside
        # benchmark leftovers: "this action would add [1] shards, but this cluster currently has [1000]").
        "cluster.max_shards_per_node": 20000,
    }
    (conf / "elasticsearch.yml").write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in node.items()))
    user = pwd.getpwnam(OS_USER)
    _chown_tree(_root(settings), user.pw_uid, user.pw_gid)


def _pid(settings: Settings) -> int | None:
    return read_pid(_pidfile(settings))


def _health(settings: Settings, timeout: float = 2.0) -> dict[str, object] | None:
    url = f"http://127.0.0.1:{settings.es_port}/_cluster/health?wait_for_status=yellow&timeout=1s"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 — loopback only
            body: dict[str, object] = json.loads(resp.read())
            return body
    except (OSError, ValueError):
        return None


def healthy(settings: Settings) -> bool:
    """`_cluster/health` answers yellow or green (this distribution has no `GET /`)."""
    body = _health(settings)
    return body is not None and body.get("status") in ("yellow", "green")


def is_running(settings: Settings) -> bool:
    """Our node is alive and its HTTP port accepts connections."""
    return pid_alive(_pid(settings), MAIN_CLASS) and port_open(settings.es_port)


async def _start(settings: Settings) -> None:
    if pid_alive(_pid(settings), MAIN_CLASS):
        if await asyncio.to_thread(healthy, settings):
            return
    else:
        if not await asyncio.to_thread(JAVA_HOME.exists):
            raise StackError(f"Elasticsearch {ES_VERSION} needs Java 21+ at {JAVA_HOME}")
        ensure_port_free(settings.es_port, "Elasticsearch")
        ensure_port_free(settings.es_transport_port, "Elasticsearch transport")
        await ensure_dist(settings)
        await asyncio.to_thread(_ensure_user)
        _root(settings).mkdir(parents=True, exist_ok=True)
        _pidfile(settings).unlink(missing_ok=True)
        await asyncio.to_thread(_write_config, settings)
        user = pwd.getpwnam(OS_USER)
        if _dist(settings).stat().st_uid != user.pw_uid:
            await asyncio.to_thread(_chown_tree, _dist(settings), user.pw_uid, user.pw_gid)
        env = {"ES_JAVA_HOME": str(JAVA_HOME), "ES_PATH_CONF": str(_conf(settings)),
               "ES_JAVA_OPTS": HEAP, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        # -d: the launcher detaches the server once it has started and writes its pid with -p.
        argv: list[str | Path] = ["env", *(f"{k}={v}" for k, v in env.items()),
                _dist(settings) / "bin" / "elasticsearch", "-d", "-p", _pidfile(settings)]
        res = await arun(argv, user=OS_USER, cwd=_root(settings), check=False,
                         timeout=START_DEADLINE, new_session=True)
        if res.returncode != 0:
            raise StackError(f"Elasticsearch did not start (exit {res.returncode}): "
                             f"{(res.stdout + res.stderr).strip()[-3000:]}")
    await wait_until(
        lambda: asyncio.to_thread(healthy, settings), what="Elasticsearch", deadline=START_DEADLINE,
        logs=[_server_log(settings)], alive=lambda: pid_alive(_pid(settings), MAIN_CLASS), interval=0.5,
    )


def _stop(settings: Settings) -> None:
    pid = _pid(settings)
    if pid_alive(pid, MAIN_CLASS):
        stop_pid(pid, grace=30)
    _pidfile(settings).unlink(missing_ok=True)


def _lockfile(settings: Settings) -> Path:
    return settings.home / "elasticsearch.lock"


async def start(settings: Settings) -> None:
    """Install on first use, start the node unless it answers, and wait (bounded) for `_cluster/health`."""
    async with alocked(_lockfile(settings)):
        await _start(settings)


def stop(settings: Settings) -> None:
    """SIGTERM, up to 30 s, then SIGKILL."""
    with locked(_lockfile(settings)):
        _stop(settings)
