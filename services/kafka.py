"""Apache Kafka for development, tests and benchmarks: one KRaft node (broker and controller) on 127.0.0.1.

The jars come from Maven Central through `kafka/pom.xml` and are copied once into `.cache/kafka/lib`
(gitignored). A node keeps its log under the data directory it is given, formatted on first start,
so a node started again on the same directory has every topic, offset and group it had.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POM = ROOT / "kafka" / "pom.xml"
LOG4J = ROOT / "kafka" / "log4j2.properties"
LIB = ROOT / ".cache" / "kafka" / "lib"
START_TIMEOUT_S = 90.0


class KafkaUnavailable(RuntimeError):
    """This machine cannot run the development Kafka; the message says what is missing and the ways around."""


def _missing(what: str) -> KafkaUnavailable:
    return KafkaUnavailable(
        f"cannot start Apache Kafka: {what}.\n"
        "Either install Java 17+ and Maven (the broker's jars come from Maven Central through kafka/pom.xml),\n"
        "or use a broker you already run: KAFKA_BOOTSTRAP_SERVERS=host:port,\n"
        "or the memory-only Tansu broker: PRESENCE_BROKER=tansu (loses everything when it stops; "
        "its defects are listed in docs/configuration.md)."
    )


def resolve_jars() -> Path:
    """The directory of the broker's jars, resolved through Maven the first time."""
    if (LIB / ".complete").exists():
        return LIB
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise _missing(f"`{tool}` is not on PATH")
    partial = LIB.with_name("lib.partial")
    shutil.rmtree(partial, ignore_errors=True)
    result = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
         f"-DoutputDirectory={partial}", "-DincludeScope=runtime"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise _missing(f"Maven could not resolve kafka/pom.xml:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    (partial / ".complete").touch()
    shutil.rmtree(LIB, ignore_errors=True)
    partial.rename(LIB)
    return LIB


@dataclass(frozen=True)
class KafkaNode:
    data_dir: Path
    port: int
    controller_port: int
    heap: str = "768m"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def server_properties(self) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "log.dirs": str(self.data_dir / "log"),
            # One node: every internal topic has one replica, and a group forms as soon as its first member joins.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "8",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def start(self) -> subprocess.Popen[bytes]:
        """Starts the node (formatting its storage the first time) and returns once it answers requests."""
        lib = resolve_jars()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        properties = self.data_dir / "server.properties"
        properties.write_text(self.server_properties())
        classpath = f"{lib}/*"
        java = ["java", f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                "-Djava.awt.headless=true",
                "-Djava.net.preferIPv4Stack=true",  # IPv4 sockets: listens on 127.0.0.1, not ::ffff:127.0.0.1
                f"-Dlog4j2.configurationFile={LOG4J}", "-cp", classpath]
        if not (self.data_dir / "log" / "meta.properties").exists():
            cluster_id = _cluster_id()
            subprocess.run([*java, "kafka.tools.StorageTool", "format", "--standalone", "--ignore-formatted",
                            "-t", cluster_id, "-c", str(properties)],
                           check=True, capture_output=True, stdin=subprocess.DEVNULL)
        log = open(self.data_dir / "kafka.log", "ab")  # noqa: SIM115  (the broker process owns it)
        process = subprocess.Popen(
            [*java, "kafka.Kafka", str(properties)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the worker and edge; the broker is stopped after them
        )
        log.close()
        try:
            self._wait_started(process)
        except BaseException:
            stop(process)
            raise
        return process

    def _wait_started(self, process: subprocess.Popen[bytes]) -> None:
        # The start-up line comes once the broker serves requests (its metadata is loaded and it is unfenced).
        deadline = time.monotonic() + START_TIMEOUT_S
        log = self.data_dir / "kafka.log"
        offset = log.stat().st_size if log.exists() else 0
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"Kafka exited with {process.returncode}; see {log}")
            with open(log, "rb") as f:
                f.seek(offset)
                started = b"Kafka Server started" in f.read()
            if started and _listens(self.port):
                return
            time.sleep(0.1)
        raise RuntimeError(f"Kafka did not start within {START_TIMEOUT_S:.0f} s; see {log}")


def _cluster_id() -> str:
    """A random Kafka cluster id: 16 bytes, URL-safe base64. As Kafka's own `Uuid.randomUuid`, none
    that starts with "-", which the storage tool would read as an option."""
    while (cluster_id := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))[0] == "-":
        pass
    return cluster_id


def _listens(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def stop(process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """A controlled shutdown (SIGTERM), then SIGKILL if it takes longer than `timeout_s`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
