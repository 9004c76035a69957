"""A real Apache Kafka broker (or a small cluster) on loopback.

Used by the test suite, by ``make dev`` and by ``kronicle server start-dev``.
The broker is the genuine ``kafka.Kafka`` from Maven Central in KRaft mode,
never a look-alike: Kronicle's exactly-once core depends on transactions, and
only the real broker honours them.

The jars are fetched once by Maven (``deploy/kafka/pom.xml``) into
``~/.cache/kronicle/kafka-<version>/libs``; later runs find the cache and
download nothing.

Every JVM started here is tied to the Python process that started it
(``PR_SET_PDEATHSIG`` through ``setpriv``), so a test run that is interrupted or killed cannot leave
brokers behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType

__all__ = [
    "KAFKA_VERSION",
    "BrokerStartError",
    "KafkaRuntime",
    "KafkaSetupError",
    "LocalBroker",
    "LocalCluster",
    "die_with_parent",
    "free_port",
]

log = logging.getLogger(__name__)
_QUIET_RDKAFKA = logging.getLogger("kronicle.rdkafka.readiness")
_QUIET_RDKAFKA.setLevel(logging.CRITICAL)

KAFKA_VERSION = "4.3.1"
"""The Apache Kafka release Kronicle develops and tests against (pinned in the pom)."""

_MIN_JAVA = 17
# A dev/test broker's live heap is tens of MB; 512 MB leaves room for thousands of
# test topics and caps the RSS growth of long runs (393 -> 874 MB with 768 MB).
_DEFAULT_HEAP = "-Xms128m -Xmx512m"
# The serial collector: on a shared 2-core machine G1's GC and concurrent threads
# cost the broker ~0.15-0.2 ms CPU per workflow at saturation, and a young collection
# of this small heap pauses for a few ms. C1 only: C2 was still compiling (0.6 ms
# per workflow) minutes into a run, more than the ~0.3 ms its faster code saves;
# a broker that serves for hours may prefer the default tiers (jvm_options=...).
# Figures: docs/benchmarks.md, "Kafka broker".
_DEFAULT_JVM_OPTIONS: tuple[str, ...] = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")


class KafkaSetupError(RuntimeError):
    """Java, Maven or the Kafka jars are missing or unusable."""


class BrokerStartError(RuntimeError):
    """A broker process did not come up; the message points at its log."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _deploy_dir() -> Path:
    """Locate ``deploy/kafka`` in a source checkout or inside an installed wheel."""
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / "deploy" / "kafka", here.parents[1] / "_deploy" / "kafka"]
    for candidate in candidates:
        if (candidate / "pom.xml").is_file():
            return candidate
    raise KafkaSetupError(
        "cannot find deploy/kafka/pom.xml next to the kronicle package; "
        "run from a source checkout or reinstall kronicle"
    )


def die_with_parent(cmd: Sequence[str]) -> list[str]:
    """Prefix a command so the kernel SIGKILLs it when the Python process that started it dies.

    Uses util-linux ``setpriv --pdeathsig`` (no ``preexec_fn``, which is unsafe in a
    threaded parent). Where ``setpriv`` is missing the command is returned as is
    and only the normal shutdown paths stop the child.
    """
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    return [setpriv, "--pdeathsig", "KILL", "--", *cmd] if setpriv else list(cmd)


@dataclasses.dataclass(frozen=True)
class KafkaRuntime:
    """The Kafka jars and the JVM that runs them."""

    libs: Path
    """Directory holding kafka_2.13 and its runtime dependencies."""
    java: str
    """Path of the ``java`` executable (17 or newer)."""
    log4j_config: Path
    """log4j2 configuration that sends broker logs to a file."""

    @classmethod
    def ensure(cls, version: str = KAFKA_VERSION, cache_dir: Path | None = None) -> KafkaRuntime:
        """Find (or fetch with Maven) the Kafka jars and check Java.

        Args:
            version: Kafka release; must match the pom's ``kafka.version``.
            cache_dir: where jars are cached; default ``$KRONICLE_CACHE`` or
                ``~/.cache/kronicle``.

        Raises:
            KafkaSetupError: Java 17+ or Maven is missing, or the download failed.
        """
        java = _find_java()
        deploy = _deploy_dir()
        root = cache_dir or Path(os.environ.get("KRONICLE_CACHE", Path.home() / ".cache" / "kronicle"))
        libs = root / f"kafka-{version}" / "libs"
        marker = libs / ".complete"
        # The marker holds the pom's digest, so a changed pom (another dependency,
        # a pinned version) refetches instead of running with stale jars.
        wanted = f"kafka {version} pom {hashlib.sha256((deploy / 'pom.xml').read_bytes()).hexdigest()}\n"
        if not marker.exists() or marker.read_text() != wanted:
            # Two processes may set up at once (parallel test runs, make dev beside
            # make test): one fetches, the other waits and then finds the marker.
            root.mkdir(parents=True, exist_ok=True)
            with open(root / f".kafka-{version}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not marker.exists() or marker.read_text() != wanted:
                    if libs.exists():
                        shutil.rmtree(libs)
                    _fetch_with_maven(deploy / "pom.xml", libs, version)
                    marker.write_text(wanted)
        return cls(libs=libs, java=java, log4j_config=deploy / "log4j2.properties")

    def command(
        self,
        main_class: str,
        *args: str,
        heap: str = _DEFAULT_HEAP,
        jvm_options: Sequence[str] = _DEFAULT_JVM_OPTIONS,
        logs_dir: Path,
    ) -> list[str]:
        """The JVM command line for one of Kafka's main classes."""
        return [
            self.java,
            *heap.split(),
            *jvm_options,
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={logs_dir}",
            f"-Dlog4j2.configurationFile={self.log4j_config}",
            "-cp",
            f"{self.libs}/*",
            main_class,
            *args,
        ]


def _find_java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise KafkaSetupError("Java 17 or newer is required to run Kafka: install a JDK or set JAVA_HOME")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise KafkaSetupError(f"cannot tell the version of {java}: {out.stderr.strip()}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < _MIN_JAVA:
        raise KafkaSetupError(f"{java} is Java {major}; Kafka {KAFKA_VERSION} needs Java {_MIN_JAVA}+ (set JAVA_HOME)")
    return java


def _fetch_with_maven(pom: Path, libs: Path, version: str) -> None:
    mvn = shutil.which("mvn")
    if not mvn:
        raise KafkaSetupError("Maven (mvn) is required once to fetch the Kafka jars from Maven Central")
    libs.mkdir(parents=True, exist_ok=True)
    log.info("fetching Apache Kafka %s into %s (first run only)", version, libs)
    with tempfile.TemporaryDirectory(prefix="kronicle-mvn-") as build_dir:
        proc = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom),
                f"-Dkafka.version={version}",
                f"-Dkafka.libs={libs}",
                f"-DbuildDirectory={build_dir}",
                "package",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise KafkaSetupError(f"Maven could not fetch Kafka {version}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise KafkaSetupError(f"Maven finished but {libs} holds no kafka_2.13 jar")


@dataclasses.dataclass
class _Node:
    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / "server.log"


class LocalCluster:
    """One or more KRaft brokers on loopback, each both broker and controller.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. With three
    nodes the defaults are replication factor 3 and ``min.insync.replicas`` 2, so
    any single node can be killed (:meth:`kill`) and restarted (:meth:`restart`)
    without losing committed data.

    Args:
        size: Number of nodes.
        data_dir: Where logs and data go; default a temporary directory removed on stop.
        ports: The client port of each node; default free ports.
        runtime: The jars and JVM; default :meth:`KafkaRuntime.ensure`.
        heap: The JVM's heap flags.
        jvm_options: Other JVM flags (garbage collector, JIT); they replace the defaults.
        extra_config: Server properties that override the defaults.
        start_timeout: Seconds to wait for every node to serve.
    """

    def __init__(
        self,
        size: int = 1,
        *,
        data_dir: Path | None = None,
        ports: Sequence[int] | None = None,
        runtime: KafkaRuntime | None = None,
        heap: str = _DEFAULT_HEAP,
        jvm_options: Sequence[str] = _DEFAULT_JVM_OPTIONS,
        extra_config: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one broker")
        if ports is not None and len(ports) != size:
            raise ValueError(f"{size} brokers need {size} ports, got {len(ports)}")
        self.size = size
        self._runtime = runtime
        self._heap = heap
        self._jvm_options = tuple(jvm_options)
        self._extra = dict(extra_config or {})
        self._start_timeout = start_timeout
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="kronicle-kafka-"))
        self.cluster_id = _cluster_id()
        self._nodes: list[_Node] = []
        for i in range(size):
            port = ports[i] if ports else free_port()
            if _port_in_use(port):
                raise BrokerStartError(f"port {port} on 127.0.0.1 is already in use; choose another with --port")
            self._nodes.append(_Node(i + 1, port, free_port(), self.data_dir / f"node-{i + 1}"))

    # -- lifecycle -------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def bootstrap_servers(self) -> str:
        """Comma-separated ``host:port`` list of every node."""
        return ",".join(f"127.0.0.1:{n.port}" for n in self._nodes)

    def node_ids(self) -> list[int]:
        return [n.node_id for n in self._nodes]

    def port_of(self, node_id: int) -> int:
        return self._node(node_id).port

    def log_file(self, node_id: int) -> Path:
        return self._node(node_id).log_file

    def start(self) -> None:
        """Format storage (first time only), start every node and wait until all serve."""
        runtime = self._runtime = self._runtime or KafkaRuntime.ensure()
        for node in self._nodes:
            self._write_config(node)
            if not (node.data_dir / "data" / "meta.properties").exists():
                self._format(runtime, node)
        try:
            for node in self._nodes:
                self._spawn(runtime, node)
            self.wait_ready(expected_brokers=self.size)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 20.0) -> None:
        """Stop every node (SIGTERM, then SIGKILL after ``timeout``); idempotent."""
        for node in self._nodes:
            if node.process and node.process.poll() is None:
                node.process.terminate()
        deadline = time.monotonic() + timeout
        for node in self._nodes:
            if node.process:
                try:
                    node.process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait()
                node.process = None
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self, node_id: int) -> None:
        """``kill -9`` one node; its data stays for :meth:`restart`."""
        node = self._node(node_id)
        if node.process and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait()
        node.process = None

    def restart(self, node_id: int, wait: bool = True) -> None:
        """Start a node that was killed or stopped, on the same ports and data."""
        node = self._node(node_id)
        if node.process and node.process.poll() is None:
            raise RuntimeError(f"broker {node_id} is still running")
        assert self._runtime is not None, "start() the cluster first"
        self._spawn(self._runtime, node)
        if wait:
            self.wait_ready(expected_brokers=self.size)

    def is_running(self, node_id: int) -> bool:
        proc = self._node(node_id).process
        return proc is not None and proc.poll() is None

    def wait_ready(self, expected_brokers: int | None = None, timeout: float | None = None) -> None:
        """Block until the cluster answers metadata requests with every broker registered."""
        from confluent_kafka.admin import AdminClient

        expected = expected_brokers or self.size
        deadline = time.monotonic() + (timeout or self._start_timeout)
        admin: AdminClient | None = None
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            for node in self._nodes:
                if node.process is not None and node.process.poll() is not None:
                    raise BrokerStartError(
                        f"Kafka broker {node.node_id} exited with code {node.process.returncode}; "
                        f"see {node.log_file}\n{_tail(node.log_file)}"
                    )
            # Wait for the listeners before creating a client, so librdkafka does not
            # log a connection-refused line every 50 ms while the JVM boots.
            if not all(_accepts(n.port) for n in self._nodes if n.process is not None):
                time.sleep(0.1)
                continue
            if admin is None:
                admin = AdminClient(
                    {"bootstrap.servers": self.bootstrap_servers, "socket.connection.setup.timeout.ms": 2000},
                    logger=_QUIET_RDKAFKA,
                )
            try:
                md = admin.list_topics(timeout=2)
                if len(md.brokers) >= expected:
                    return
            except Exception as exc:  # noqa: BLE001 - librdkafka raises KafkaException while the broker boots
                last_error = exc
            time.sleep(0.2)
        logs = "\n".join(f"--- {n.log_file}\n{_tail(n.log_file)}" for n in self._nodes)
        raise BrokerStartError(
            f"Kafka at {self.bootstrap_servers} did not become ready within "
            f"{timeout or self._start_timeout:.0f}s (last error: {last_error})\n{logs}"
        )

    # -- internals -------------------------------------------------------

    def _node(self, node_id: int) -> _Node:
        for node in self._nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(f"no broker with id {node_id}; ids are {self.node_ids()}")

    def _config(self, node: _Node) -> dict[str, str]:
        rf = min(3, self.size)
        min_isr = 2 if self.size >= 3 else 1
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self._nodes)
        config = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(node.data_dir / "data"),
            "num.partitions": "1",
            "default.replication.factor": str(rf),
            "min.insync.replicas": str(min_isr),
            "offsets.topic.replication.factor": str(rf),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(rf),
            "transaction.state.log.min.isr": str(min_isr),
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": str(rf),
            "share.coordinator.state.topic.min.isr": str(min_isr),
            "group.initial.rebalance.delay.ms": "0",
            # KIP-848 groups: notice a dead member in seconds, not the default 45 s,
            # so takeover tests and local failover are quick.
            "group.consumer.min.session.timeout.ms": "3000",
            "group.consumer.session.timeout.ms": "6000",
            "group.consumer.min.heartbeat.interval.ms": "500",
            "group.consumer.heartbeat.interval.ms": "1000",
            "auto.create.topics.enable": "false",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.retention.check.interval.ms": "60000",
            # Local development: small segments keep disk use down.
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        config.update(self._extra)
        return config

    def _write_config(self, node: _Node) -> None:
        (node.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        lines = [f"{k}={v}" for k, v in self._config(node).items()]
        (node.data_dir / "server.properties").write_text("\n".join(lines) + "\n")

    def _format(self, runtime: KafkaRuntime, node: _Node) -> None:
        cmd = runtime.command(
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={self.cluster_id}",  # "=" form: a random id may start with "-"
            f"--config={node.data_dir / 'server.properties'}",
            heap="-Xmx256m",
            logs_dir=node.data_dir / "logs",
        )
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BrokerStartError(
                f"formatting KRaft storage for broker {node.node_id} failed:\n{proc.stdout}{proc.stderr}"
            )

    def _spawn(self, runtime: KafkaRuntime, node: _Node) -> None:
        cmd = runtime.command(
            "kafka.Kafka",
            str(node.data_dir / "server.properties"),
            heap=self._heap,
            jvm_options=self._jvm_options,
            logs_dir=node.data_dir / "logs",
        )
        out = open(node.data_dir / "logs" / "stdout.log", "ab")  # noqa: SIM115 - owned by the child
        node.process = subprocess.Popen(
            die_with_parent(cmd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop brokers cleanly
        )
        out.close()


class LocalBroker(LocalCluster):
    """A single-node Kafka on loopback (replication factor 1)."""

    def __init__(
        self,
        port: int | None = None,
        *,
        data_dir: Path | None = None,
        runtime: KafkaRuntime | None = None,
        heap: str = _DEFAULT_HEAP,
        jvm_options: Sequence[str] = _DEFAULT_JVM_OPTIONS,
        extra_config: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        super().__init__(
            1,
            data_dir=data_dir,
            ports=[port] if port else None,
            runtime=runtime,
            heap=heap,
            jvm_options=jvm_options,
            extra_config=extra_config,
            start_timeout=start_timeout,
        )

    @property
    def port(self) -> int:
        return self.port_of(1)


def _cluster_id() -> str:
    # KRaft wants a base64url-encoded 16-byte UUID (what `kafka-storage random-uuid` prints).
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log yet)"


@contextlib.contextmanager
def running_broker(**kwargs: object) -> Iterator[LocalBroker]:
    """``with running_broker() as broker:`` — start a broker, stop it afterwards."""
    broker = LocalBroker(**kwargs)  # type: ignore[arg-type]
    with broker:
        yield broker
