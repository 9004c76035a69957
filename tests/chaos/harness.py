"""Drive the workflow engine under faults without the SDK: a scripted worker, a load driver, a history reader.

The scripted workflow ``ChaosWorkflow(x)``:

1. its first workflow task schedules activity ``double(x)`` (the activity answers ``2x``);
2. once the activity has completed and ``SIGNALS`` signals have arrived, it starts a
   short timer;
3. when the timer fires it completes with ``2x + sum(signal values)``.

Every decision is computed from the run's history alone, so the worker is
stateless apart from a cache of the events the engine sent it; a stale or
repeated task is answered from the same history and the engine ignores what
does not match. The expected result of every workflow is known in advance, so
:func:`kronicle.testing.history_check.check_histories` can check it.
"""

from __future__ import annotations

import collections
import itertools
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from kronicle.connectors.local_kafka import die_with_parent
from kronicle.schemas import SchemaRegistry, default_registry
from kronicle.testing.history_check import Report, check_histories
from kronicle.topics import NamespaceTopics, ensure_namespace_topics
from tests.kafka_helpers import consumer

REPO = Path(__file__).resolve().parents[2]
SIGNALS = 2
WORKFLOW_TYPE = "ChaosWorkflow"
TIMER_MS = 300
TASK_TIMEOUT_MS = 120_000  # the cap: a workflow task outlives any engine outage in these tests


def signal_value(index: int, j: int) -> int:
    return index * 10 + j


def expected_result(index: int) -> list[bytes]:
    return [str(2 * index + sum(signal_value(index, j) for j in range(SIGNALS))).encode()]


def workflow_id(prefix: str, index: int) -> str:
    return f"{prefix}-{index}"


def _producer(bootstrap: str) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",  # the Java default: commands land on the workflow's partition
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 300_000,  # ride out a broker restart instead of failing the record
        }
    )


def _produce(producer: Producer, topic: str, value: bytes, key: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:
            producer.poll(0.1)


class LoadDriver:
    """Starts ``ChaosWorkflow`` runs and signals them, as a client would through the commands topic."""

    def __init__(self, bootstrap: str, topics: NamespaceTopics, queue: str, registry: SchemaRegistry) -> None:
        self.topics = topics
        self.queue = queue
        self.registry = registry
        self.producer = _producer(bootstrap)
        self.started: list[int] = []
        self.prefix = "wf"

    def start(self, index: int, *, signals: bool = True) -> None:
        wid = workflow_id(self.prefix, index)
        start = {
            "workflow_id": wid,
            "workflow_type": WORKFLOW_TYPE,
            "task_queue": self.queue,
            "input": [str(index).encode()],
            "request_id": f"start-{wid}",
            "task_timeout_ms": TASK_TIMEOUT_MS,
        }
        _produce(
            self.producer,
            self.topics.commands,
            self.registry.encode("kronicle.workflow.StartWorkflow", start),
            wid.encode(),
        )
        self.started.append(index)
        if signals:
            self.signal(index)

    def signal(self, index: int) -> None:
        wid = workflow_id(self.prefix, index)
        for j in range(SIGNALS):
            sig = {
                "workflow_id": wid,
                "signal_name": "add",
                "input": [str(signal_value(index, j)).encode()],
                "request_id": f"sig-{wid}-{j}",
            }
            value = self.registry.encode("kronicle.workflow.SignalWorkflow", sig)
            _produce(self.producer, self.topics.commands, value, wid.encode())

    def resend_signals(self, indexes: Iterable[int]) -> None:
        """Send signals again with the same request ids: the engine must apply each once."""
        for index in indexes:
            self.signal(index)

    def flush(self) -> None:
        assert self.producer.flush(300) == 0, "commands not delivered"

    def expected(self) -> dict[str, list[bytes]]:
        return {workflow_id(self.prefix, i): expected_result(i) for i in self.started}

    def expected_signals(self) -> dict[str, list[str]]:
        return {
            workflow_id(self.prefix, i): [f"sig-{workflow_id(self.prefix, i)}-{j}" for j in range(SIGNALS)]
            for i in self.started
        }


def _decide(events: Sequence[dict[str, Any]], scheduled_event_id: int) -> list[dict[str, Any]]:
    """The workflow code: commands for the task scheduled at ``scheduled_event_id``."""
    history = [e for e in events if e["event_id"] <= scheduled_event_id]
    kinds = collections.Counter(e["event_type"] for e in history)
    x = int(history[0]["workflow_execution_started_event_attributes"]["input"][0])
    activity_result = next(
        (int(e["activity_task_completed_event_attributes"]["result"][0]) for e in history
         if e["event_type"] == "ActivityTaskCompleted"),
        None,
    )  # fmt: skip
    signals = [
        int(e["workflow_execution_signaled_event_attributes"]["input"][0])
        for e in history
        if e["event_type"] == "WorkflowExecutionSignaled"
    ]
    if kinds["TimerFired"]:
        result = str((activity_result or 0) + sum(signals)).encode()
        return [
            {
                "command_type": "CompleteWorkflowExecution",
                "complete_workflow_execution_command_attributes": {"result": [result]},
            }
        ]
    commands: list[dict[str, Any]] = []
    if not kinds["ActivityTaskScheduled"]:
        commands.append(
            {
                "command_type": "ScheduleActivityTask",
                "schedule_activity_task_command_attributes": {
                    "activity_id": "double",
                    "activity_type": "double",
                    "input": [str(x).encode()],
                    "start_to_close_timeout_ms": 120_000,
                },
            }
        )
    if activity_result is not None and len(signals) >= SIGNALS and not kinds["TimerStarted"]:
        commands.append(
            {
                "command_type": "StartTimer",
                "start_timer_command_attributes": {"timer_id": "t", "start_to_fire_timeout_ms": TIMER_MS},
            }
        )
    return commands


@dataclass
class WorkerStats:
    workflow_tasks: int = 0
    activity_tasks: int = 0
    gaps: int = 0
    """Tasks whose history did not join the cached events (the worker skipped them)."""
    errors: list[str] = field(default_factory=list)


class ScriptedWorker:
    """Plays workflow and activity worker for one task queue, on a background thread."""

    def __init__(self, bootstrap: str, topics: NamespaceTopics, queue: str, registry: SchemaRegistry) -> None:
        self.topics = topics
        self.registry = registry
        self.producer = _producer(bootstrap)
        self.consumer = consumer(bootstrap, **{"group.id": f"worker-{uuid.uuid4().hex[:8]}"})
        self.task_topics = [topics.task_queue(queue, "workflow"), topics.task_queue(queue, "activity")]
        self.cache: dict[str, dict[int, dict[str, Any]]] = collections.defaultdict(dict)
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scripted-worker", daemon=True)

    def start(self) -> ScriptedWorker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.consumer.close()
        self.producer.flush(60)

    def _run(self) -> None:
        subscribed = False
        while not self._stop.is_set():
            if not subscribed:
                # The engine creates the task-queue topics when it first dispatches.
                existing = self.consumer.list_topics(timeout=10).topics
                if all(t in existing for t in self.task_topics):
                    self.consumer.subscribe(self.task_topics)
                    subscribed = True
                else:
                    time.sleep(0.3)
                    continue
            for msg in self.consumer.consume(500, 0.2):
                if msg.error() is not None:
                    continue
                try:
                    self._handle(msg.value())  # type: ignore[arg-type]
                except Exception as exc:  # noqa: BLE001 - recorded and asserted on by the test
                    self.stats.errors.append(repr(exc))
            self.producer.poll(0)

    def _handle(self, value: bytes) -> None:
        name, task = self.registry.decode(value)
        wid = task["workflow_id"]
        if name == "kronicle.workflow.WorkflowTask":
            cached = self.cache[task["run_id"]]
            if task["first_event_id"] > len(cached) + 1:
                self.stats.gaps += 1
                return
            for event in task["history"]:
                cached[event["event_id"]] = event
            events = [cached[i] for i in sorted(cached)]
            reply = {
                "workflow_id": wid,
                "run_id": task["run_id"],
                "scheduled_event_id": task["scheduled_event_id"],
                "attempt": task["attempt"],
                "started_time_ms": time.time_ns() // 1_000_000,
                "identity": "scripted",
                "commands": _decide(events, task["scheduled_event_id"]),
            }
            self.stats.workflow_tasks += 1
            encoded = self.registry.encode("kronicle.workflow.CompleteWorkflowTask", reply)
        elif name == "kronicle.workflow.ActivityTask":
            result = str(2 * int(task["input"][0])).encode()
            reply = {
                "workflow_id": wid,
                "run_id": task["run_id"],
                "scheduled_event_id": task["scheduled_event_id"],
                "attempt": task["attempt"],
                "started_time_ms": time.time_ns() // 1_000_000,
                "identity": "scripted",
                "result": [result],
            }
            self.stats.activity_tasks += 1
            encoded = self.registry.encode("kronicle.workflow.CompleteActivityTask", reply)
        else:
            return
        _produce(self.producer, self.topics.commands, encoded, wid.encode())


class HistoryReader:
    """Follows the history topic (read_committed): events per workflow, and when progress arrived."""

    def __init__(self, bootstrap: str, topics: NamespaceTopics, registry: SchemaRegistry) -> None:
        self.registry = registry
        self.consumer = consumer(bootstrap)
        self.consumer.subscribe([topics.history])
        self.events: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        self.runs: dict[str, set[str]] = collections.defaultdict(set)
        self.closed: set[str] = set()
        self.arrivals: list[tuple[float, int]] = []
        """(monotonic time, partition) of every history batch read."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="history-reader", daemon=True)

    def start(self) -> HistoryReader:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self.consumer.consume(1000, 0.2):
                if msg.error() is not None:
                    continue
                _, batch = self.registry.decode(msg.value())  # type: ignore[arg-type]
                with self._lock:
                    self.arrivals.append((time.monotonic(), msg.partition()))  # type: ignore[arg-type]
                    wid = batch["workflow_id"]
                    self.runs[wid].add(batch["run_id"])
                    self.events[wid].extend(batch["events"])
                    if any(e["event_type"] == "WorkflowExecutionCompleted" for e in batch["events"]):
                        self.closed.add(wid)

    def closed_count(self) -> int:
        with self._lock:
            return len(self.closed)

    def wait_closed(self, count: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.closed_count() < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.closed_count()

    def settle(self, quiet: float = 3.0) -> None:
        """Wait until no history arrives for ``quiet`` seconds, to catch late duplicates."""
        while True:
            with self._lock:
                last = self.arrivals[-1][0] if self.arrivals else 0.0
            if time.monotonic() - last >= quiet:
                return
            time.sleep(0.2)

    def check(self, driver: LoadDriver) -> Report:
        with self._lock:
            histories = {wid: list(events) for wid, events in self.events.items()}
            multi = {wid: runs for wid, runs in self.runs.items() if len(runs) > 1}
        assert not multi, f"workflows with more than one run: {sorted(multi)[:5]}"
        return check_histories(histories, driver.expected(), expected_signals=driver.expected_signals())

    def last_arrival(self) -> float:
        """When the last history batch was read (monotonic), or now if none was."""
        with self._lock:
            return self.arrivals[-1][0] if self.arrivals else time.monotonic()

    def longest_gap(self, since: float, until: float) -> float:
        """Longest time without any committed history between ``since`` and ``until``."""
        with self._lock:
            times = [t for t, _ in self.arrivals if since <= t <= until]
        points = [since, *times, until]
        return max(b - a for a, b in itertools.pairwise(points))

    def longest_partition_gap(self, since: float, partitions: Iterable[int]) -> dict[int, float]:
        """Per partition, the longest time without committed history from ``since`` to its last batch."""
        out: dict[int, float] = {}
        with self._lock:
            for p in partitions:
                times = [since, *(t for t, q in self.arrivals if q == p and t >= since)]
                out[p] = max((b - a for a, b in itertools.pairwise(times)), default=float("nan"))
        return out

    def first_after(self, since: float, partitions: Iterable[int]) -> dict[int, float]:
        """Seconds from ``since`` to the first history batch of each partition after it."""
        wanted = set(partitions)
        out: dict[int, float] = {}
        with self._lock:
            for t, p in self.arrivals:
                if t >= since and p in wanted and p not in out:
                    out[p] = t - since
        return out


class WorkflowEngineProcess:
    """``kronicle engine run --handler workflow`` as a subprocess that can be killed -9."""

    def __init__(
        self, bootstrap: str, topics: NamespaceTopics, state_dir: Path, instance_id: str, *, standby: bool = False
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.state_dir = state_dir
        self.instance_id = instance_id
        self.standby = standby
        state_dir.parent.mkdir(parents=True, exist_ok=True)
        self.log = state_dir.parent / f"engine-{instance_id}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> WorkflowEngineProcess:
        cmd = [
            sys.executable, "-m", "kronicle", "engine", "run", "--handler", "workflow",
            "--kafka", self.bootstrap,
            "--state-dir", str(self.state_dir),
            "--namespace", self.topics.namespace,
            "--instance-id", self.instance_id,
        ]  # fmt: skip
        if self.standby:
            cmd.append("--standby")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(die_with_parent(cmd), stdout=out, stderr=subprocess.STDOUT, env=env)
        self.starts += 1
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def terminate(self, timeout: float = 30) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def new_registry() -> SchemaRegistry:
    return default_registry()


def rng(seed: int | None = None) -> random.Random:
    return random.Random(seed if seed is not None else int(os.environ.get("KRONICLE_CHAOS_SEED", "9")))


def print_figures(scenario: str, **figures: object) -> None:
    """One line per scenario that docs/reliability.md quotes (run pytest with -s to see it)."""
    parts = " ".join(f"{k}={v}" for k, v in figures.items())
    line = f"CHAOS {scenario}: {parts}"
    print(line)
    path = os.environ.get("KRONICLE_CHAOS_REPORT")
    if path:
        with open(path, "a") as out:
            out.write(line + "\n")


def fresh_namespace(bootstrap: str, partitions: int = 4, replication_factor: int = -1) -> NamespaceTopics:
    ns = f"chaos{uuid.uuid4().hex[:8]}"
    ensure_namespace_topics(
        AdminClient({"bootstrap.servers": bootstrap}), ns, partitions, replication_factor=replication_factor
    )
    return NamespaceTopics(ns)


class SteadyLoad:
    """Starts workflows at a steady rate on a background thread, so every partition is always busy."""

    def __init__(self, driver: LoadDriver, first: int, count: int, per_second: float) -> None:
        self.driver = driver
        self.indexes = range(first, first + count)
        self.interval = 1.0 / per_second
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-load", daemon=True)

    def start(self) -> SteadyLoad:
        self._thread.start()
        return self

    def _run(self) -> None:
        next_at = time.monotonic()
        for index in self.indexes:
            if self._stop.is_set():
                break
            self.driver.start(index)
            self.driver.producer.poll(0)
            next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        self.driver.producer.flush(300)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def restore_counts(log_text: str) -> list[int]:
    """Changelog records read by each partition restore an engine process logged."""
    return [int(m) for m in re.findall(r"restored: (\d+) changelog records read", log_text)]
