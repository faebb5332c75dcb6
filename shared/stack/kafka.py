"""Apache Kafka 4.1.1 in KRaft mode, one node on 127.0.0.1, jars resolved from Maven Central."""
from __future__ import annotations

import base64
import logging
import shutil
import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.config import BROKER_MESSAGE_BYTES, Settings
from shared.stack.process import (
    StackError,
    alocked,
    arun,
    ensure_port_free,
    locked,
    pid_alive,
    port_open,
    read_pid,
    spawn_detached,
    stop_pid,
    wait_until,
    write_pid,
)

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
START_DEADLINE = 90.0
MAIN_CLASS = "kafka.Kafka"
TOPIC_ALREADY_EXISTS = 36

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.spice</groupId>
  <artifactId>kafka-libs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

LOG4J2 = """status = error
name = spice-kafka
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.filePattern = {log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def _root(settings: Settings) -> Path:
    return settings.home / "kafka"


def _libs(settings: Settings) -> Path:
    return settings.cache / "kafka-libs"


def _marker(settings: Settings) -> Path:
    return _libs(settings) / f".complete-{KAFKA_VERSION}"


def _pidfile(settings: Settings) -> Path:
    return _root(settings) / "kafka.pid"


def _log(settings: Settings) -> Path:
    return _root(settings) / "server.log"


def _stdout_log(settings: Settings) -> Path:
    return _root(settings) / "stdout.log"


def _data(settings: Settings) -> Path:
    return _root(settings) / "data"


def _properties(settings: Settings) -> Path:
    return _root(settings) / "server.properties"


def _classpath(settings: Settings) -> str:
    return str(_libs(settings) / "*")


async def ensure_libs(settings: Settings) -> Path:
    """Resolve the broker jars with Maven into settings.cache/kafka-libs once (marker file after success)."""
    libs = _libs(settings)
    if _marker(settings).exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("mvn not found (run ./spice.sh)")
    work = settings.cache / "kafka-libs.build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "pom.xml").write_text(POM.format(kafka=KAFKA_VERSION, log4j=LOG4J_VERSION))
    await arun(
        [mvn, "-q", "-B", "-f", work / "pom.xml", "dependency:copy-dependencies",
         f"-DoutputDirectory={work / 'libs'}"],
        cwd=work, timeout=600,
    )
    if not any((work / "libs").glob("kafka_2.13-*.jar")):
        raise StackError(f"maven finished but no kafka jar in {work / 'libs'}")
    shutil.rmtree(libs, ignore_errors=True)
    (work / "libs").rename(libs)
    shutil.rmtree(work, ignore_errors=True)
    _marker(settings).write_text(KAFKA_VERSION + "\n")
    return libs


def _write_config(settings: Settings) -> None:
    root = _root(settings)
    root.mkdir(parents=True, exist_ok=True)
    p, c = settings.kafka_port, settings.kafka_controller_port
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{c}",
        "listeners": f"PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{p}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(_data(settings)),
        "num.partitions": str(settings.partitions),
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "min.insync.replicas": "1",
        "default.replication.factor": "1",
        "group.initial.rebalance.delay.ms": "0",
        "message.max.bytes": str(BROKER_MESSAGE_BYTES),
        # After a crash the old registration must expire before the broker can re-register (default 9 s).
        "broker.heartbeat.interval.ms": "1000",
        "broker.session.timeout.ms": "6000",
    }
    _properties(settings).write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    (root / "log4j2.properties").write_text(LOG4J2.format(log=_log(settings)))


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError("java not found (run ./spice.sh)")
    return java


async def _format_storage(settings: Settings) -> None:
    """Format the log dir on first start only."""
    if (_data(settings) / "meta.properties").exists():
        return
    # One id in 32 starts with '-': passed as --cluster-id=… so the argument parser never takes it for
    # an option (seen failing a fresh run).
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    await arun(
        [_java(), "-cp", _classpath(settings),
         f"-Dlog4j2.configurationFile={_root(settings) / 'log4j2.properties'}",
         "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", _properties(settings)],
        timeout=120,
    )


def _pid(settings: Settings) -> int | None:
    return read_pid(_pidfile(settings))


def is_running(settings: Settings) -> bool:
    """Our broker process is alive and its port accepts connections."""
    return pid_alive(_pid(settings), MAIN_CLASS) and port_open(settings.kafka_port)


def _admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10000)


async def _metadata_ok(settings: Settings) -> bool:
    if not port_open(settings.kafka_port):
        return False
    admin = _admin(settings)
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    finally:
        await admin.close()
        quiet.setLevel(level)


async def _start(settings: Settings) -> None:
    if pid_alive(_pid(settings), MAIN_CLASS):
        try:
            if await _metadata_ok(settings):
                return
        except Exception:  # alive but not answering yet: fall through to the wait below
            pass
    else:
        ensure_port_free(settings.kafka_port, "Kafka")
        ensure_port_free(settings.kafka_controller_port, "Kafka controller")
        await ensure_libs(settings)
        _write_config(settings)
        await _format_storage(settings)
        root = _root(settings)
        pid = spawn_detached(
            [_java(), "-Xmx512m", "-Djava.awt.headless=true", "-Djava.net.preferIPv4Stack=true",
             f"-Dlog4j2.configurationFile={root / 'log4j2.properties'}",
             f"-Dkafka.logs.dir={root}", "-cp", _classpath(settings), MAIN_CLASS, _properties(settings)],
            cwd=root, log=_stdout_log(settings), env={"LOG_DIR": str(root)},
        )
        write_pid(_pidfile(settings), pid)
    await wait_until(
        lambda: _metadata_ok(settings), what="Kafka", deadline=START_DEADLINE,
        logs=[_log(settings), _stdout_log(settings)],
        alive=lambda: pid_alive(_pid(settings), MAIN_CLASS), interval=0.25,
    )


def _stop(settings: Settings) -> None:
    pid = _pid(settings)
    if pid_alive(pid, MAIN_CLASS):
        stop_pid(pid, grace=30)
    _pidfile(settings).unlink(missing_ok=True)


async def ensure_topics(settings: Settings, names: list[str], partitions: int) -> None:
    """Create the missing topics (replication 1); existing ones are left as they are."""
    admin = _admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if not missing:
            return
        resp = await admin.create_topics(
            # Sized per topic too, so a broker with the default 1 MiB (compose/) carries the same commands.
            [NewTopic(name=n, num_partitions=partitions, replication_factor=1,
                      topic_configs={"max.message.bytes": str(BROKER_MESSAGE_BYTES)}) for n in missing]
        )
        errors = [
            (t[0], t[1], t[2] if len(t) > 2 else "")
            for t in resp.topic_errors
            if t[1] not in (0, TOPIC_ALREADY_EXISTS)
        ]
        if errors:
            raise StackError(f"creating Kafka topics failed: {errors}")
    finally:
        await admin.close()


def _lockfile(settings: Settings) -> Path:
    return settings.home / "kafka.lock"


async def start(settings: Settings) -> None:
    """Start the broker (fetching jars and formatting storage the first time) and wait for metadata."""
    async with alocked(_lockfile(settings)):
        await _start(settings)


def stop(settings: Settings) -> None:
    """SIGTERM (controlled shutdown), up to 30 s, then SIGKILL."""
    with locked(_lockfile(settings)):
        _stop(settings)
