"""``Worker``: runs workflows and activities from a task queue's Kafka topics.

The worker talks to Kafka directly (no hop through the frontend on the hot
path):

* ``kronicle.<ns>.tq.<queue>.workflow`` (group ``kronicle-worker-<ns>-<queue>-workflow``),
  keyed by workflow id, so one worker sees all tasks of a workflow and keeps it
  cached;
* ``kronicle.<ns>.tq.<queue>.activity`` (group ``kronicle-worker-<ns>-<queue>-activity``);
* its own control topic ``kronicle.<ns>.worker.<identity>`` for the engine's
  answers to heartbeats (activity cancellation);

and answers on ``kronicle.<ns>.commands`` keyed by workflow id, with an
idempotent producer placing records as the Java client does. Delivery is
at-least-once: the engine checks every result against its state and ignores
stale or duplicate ones.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import timedelta
from typing import Any, Protocol

from confluent_kafka import OFFSET_END, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from kronicle.converter import DataConverter
from kronicle.schemas import SchemaRegistry, default_registry
from kronicle.topics import NamespaceTopics, TopicError, ensure_task_queue_topics
from kronicle.worker._activities import ActivityRunner, EagerActivity
from kronicle.worker._eager import EagerActivities
from kronicle.worker._kafka import CommandProducer, TaskConsumer
from kronicle.worker._workflow_instance import DEFAULT_DEADLOCK_TIMEOUT
from kronicle.worker._workflow_tasks import WorkflowTaskRunner

__all__ = ["Worker", "WorkerClient", "WorkerError"]

_log = logging.getLogger("kronicle.worker")
_SCHEMA_NS = "kronicle.workflow."
_CONTROL_RETENTION_MS = 3_600_000


class WorkerClient(Protocol):
    """What the worker needs from a client (``kronicle.client.Client`` provides it)."""

    namespace: str
    identity: str
    data_converter: DataConverter
    kafka_bootstrap_servers: str
    """Kafka bootstrap servers, learned from the frontend at connect time."""

    async def fetch_history_events(self, workflow_id: str, run_id: str) -> list[dict[str, Any]]:
        """Decoded ``kronicle.workflow.HistoryEvent`` datums of the run, in order (payloads as bytes)."""
        ...


class WorkerError(RuntimeError):
    """The worker could not start (Kafka unreachable, namespace missing, bad configuration)."""


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


def _sanitise(identity: str) -> str:
    return re.sub(r"[^a-zA-Z0-9._-]", "_", identity)[:120] or "worker"


class Worker:
    """Polls one task queue and runs its workflows and activities (shaped like temporalio's Worker).

    Use as ``async with Worker(client, task_queue="q", workflows=[...], activities=[...]):`` or
    ``await worker.run()`` (until :meth:`shutdown`). Several workers (task queues) may run in one
    process.

    Args:
        client: A connected client (see :class:`WorkerClient`).
        task_queue: The task queue to poll.
        workflows: ``@workflow.defn`` classes.
        activities: ``@activity.defn`` functions.
        activity_executor: Thread pool for sync activities (required if any activity is sync).
        max_concurrent_activities: Activity attempts running at once.
        max_concurrent_workflow_tasks: Workflow tasks processed at once.
        max_cached_workflows: Runs kept in the sticky cache.
        identity: Reported to the engine; defaults to the client's identity.
        graceful_shutdown_timeout: How long :meth:`shutdown` lets running activities finish
            before cancelling them.
        deadlock_timeout: How long workflow code may run without yielding (None: no limit).
        kafka_config: Extra confluent-kafka settings for every consumer and producer.
        disable_eager_activity_execution: Never run an activity a completion schedules here
            without waiting for the engine to dispatch it (Temporal's option; see docs/worker.md).
        eager_activity_hold: How long a completion waits for its eager activities to end, so their
            results and the workflow's next steps travel with it (0: send it at once).
    """

    def __init__(
        self,
        client: WorkerClient,
        *,
        task_queue: str,
        workflows: Sequence[type] = (),
        activities: Sequence[Callable[..., Any]] = (),
        activity_executor: Executor | None = None,
        max_concurrent_activities: int = 100,
        max_concurrent_workflow_tasks: int = 100,
        max_cached_workflows: int = 1000,
        identity: str | None = None,
        graceful_shutdown_timeout: timedelta = timedelta(0),
        deadlock_timeout: timedelta | None = DEFAULT_DEADLOCK_TIMEOUT,
        kafka_config: dict[str, Any] | None = None,
        disable_eager_activity_execution: bool = False,
        eager_activity_hold: timedelta = timedelta(milliseconds=20),
    ) -> None:
        if not workflows and not activities:
            raise ValueError("a Worker needs at least one workflow or activity")
        if max_concurrent_activities < 1 or max_concurrent_workflow_tasks < 1:
            raise ValueError("concurrency limits must be at least 1")
        self._client = client
        self._task_queue = task_queue
        self._namespace = client.namespace
        self._identity = identity or getattr(client, "identity", "") or f"{os.getpid()}@{socket.gethostname()}"
        self._dc = client.data_converter
        self._topics = NamespaceTopics(self._namespace)
        self._workflow_topic = self._topics.task_queue(task_queue, "workflow")
        self._activity_topic = self._topics.task_queue(task_queue, "activity")
        self.control_topic = f"{self._topics.prefix}.worker.{_sanitise(self._identity)}"
        """This worker's control topic (the ``reply_to`` of its heartbeats)."""
        self._registry: SchemaRegistry = default_registry()
        self._kafka = {"bootstrap.servers": client.kafka_bootstrap_servers, **(kafka_config or {})}
        self._graceful = graceful_shutdown_timeout.total_seconds()
        self._wf_slots = max_concurrent_workflow_tasks
        self._act_slots = max_concurrent_activities
        self._workflows = list(workflows)
        if eager_activity_hold < timedelta(0):
            raise ValueError("eager_activity_hold must not be negative")
        # Workflow code runs between awaits without yielding; off the loop it cannot stall polling.
        self._workflow_threads = ThreadPoolExecutor(
            max_workers=max(1, min(4, max_concurrent_workflow_tasks)), thread_name_prefix="kronicle-workflow"
        )
        self._activities = ActivityRunner(
            activities=activities,
            executor=activity_executor,
            data_converter=self._dc,
            namespace=self._namespace,
            identity=self._identity,
            reply_to=self.control_topic,
            send=self._send,
        )
        self._eager_running: set[asyncio.Task[None]] = set()
        eager = None
        if workflows and activities and not disable_eager_activity_execution:
            eager = EagerActivities(
                task_queue=task_queue,
                activities=self._activities,
                acquire_slot=self._acquire_activity_slot,
                release_slot=self._release_activity_slot,
                hold=eager_activity_hold,
                on_start=self._track_eager,
            )
        self._runner = WorkflowTaskRunner(
            workflows=workflows,
            namespace=self._namespace,
            identity=self._identity,
            data_converter=self._dc,
            fetch_history=client.fetch_history_events,
            max_cached_workflows=max_cached_workflows,
            deadlock_timeout=deadlock_timeout,
            executor=self._workflow_threads,
            eager=eager,
        )
        self._has_activities = bool(activities)
        self._state = _State.NEW
        self._producer: CommandProducer | None = None
        self._consumers: list[TaskConsumer] = []
        self._wf_consumer: TaskConsumer | None = None
        self._act_consumer: TaskConsumer | None = None
        self._control: TaskConsumer | None = None
        self._stopped = asyncio.Event()
        self._shutdown_task: asyncio.Task[None] | None = None

    @property
    def task_queue(self) -> str:
        """The task queue this worker polls."""
        return self._task_queue

    @property
    def identity(self) -> str:
        """The identity reported to the engine."""
        return self._identity

    @property
    def is_running(self) -> bool:
        """Whether the worker is polling."""
        return self._state is _State.RUNNING

    @property
    def eager_activity_execution(self) -> bool:
        """Whether completions may run their activities here eagerly (see ``disable_eager_activity_execution``)."""
        return self._runner.eager is not None

    @property
    def workflow_task_stats(self) -> dict[str, int]:
        """Counters of the workflow-task runner (cache hits/misses, replays, failures)."""
        return dict(self._runner.stats)

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    async def run(self) -> None:
        """Start (if needed) and run until :meth:`shutdown` is called; cancelling this shuts down too."""
        if self._state is _State.NEW:
            await self.start()
        try:
            await self._stopped.wait()
        finally:
            await asyncio.shield(self.shutdown())

    async def start(self) -> None:
        """Create the topics it needs and start polling.

        Raises:
            WorkerError: Kafka cannot be reached or the namespace does not exist.
            RuntimeError: The worker was already started (a worker cannot be reused).
        """
        if self._state is not _State.NEW:
            raise RuntimeError(f"Worker for {self._task_queue!r} is {self._state.value}; create a new Worker")
        self._state = _State.RUNNING
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._prepare_topics)
            control_offset = await loop.run_in_executor(None, self._control_end_offset)
        except (KafkaException, TopicError) as err:
            self._state = _State.STOPPED
            self._workflow_threads.shutdown(wait=False)
            raise WorkerError(
                f"Worker for task queue {self._task_queue!r} could not prepare its topics on "
                f"{self._kafka['bootstrap.servers']}: {err}. Is Kafka up and the namespace "
                f"{self._namespace!r} created (the engine creates it)?"
            ) from err
        self._producer = CommandProducer(self._kafka)
        group = f"kronicle-worker-{self._namespace}-{self._task_queue}"
        consumer_cfg = {
            **self._kafka,
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 500,
            "isolation.level": "read_committed",
            "topic.metadata.refresh.interval.ms": 2000,
        }
        if self._workflows:
            self._wf_consumer = TaskConsumer(
                f"{self._task_queue}-workflow",
                # Workflow tasks are pure and cheap to redo: a task counts as consumed only once
                # answered, so a dead worker's tasks go to the next owner at once.
                {**consumer_cfg, "group.id": f"{group}-workflow", "enable.auto.offset.store": False},
                loop,
                self._on_workflow_task,
                self._wf_slots,
                topics=[self._workflow_topic],
                store_after_handling=True,
            )
            self._consumers.append(self._wf_consumer)
        if self._has_activities:
            self._act_consumer = TaskConsumer(
                f"{self._task_queue}-activity",
                # Activity tasks count as consumed when taken, as in Temporal: a dead worker's attempt
                # is retried by the engine's timeouts rather than run twice on redelivery.
                {**consumer_cfg, "group.id": f"{group}-activity"},
                loop,
                self._on_activity_task,
                self._act_slots,
                topics=[self._activity_topic],
            )
            self._consumers.append(self._act_consumer)
            self._control = TaskConsumer(
                f"{self._task_queue}-control",
                {
                    **self._kafka,
                    "group.id": f"kronicle-worker-control-{_sanitise(self._identity)}",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                },
                loop,
                self._on_control,
                1000,
                assignment=[TopicPartition(self.control_topic, 0, control_offset)],
            )
            self._control.start()
        for consumer in self._consumers:
            consumer.start()
        _log.info("Worker %s polling task queue %s", self._identity, self._task_queue)

    def _prepare_topics(self) -> None:
        admin = AdminClient(self._kafka)
        ensure_task_queue_topics(admin, self._namespace, self._task_queue)
        if not self._has_activities:
            return
        config = {"retention.ms": str(_CONTROL_RETENTION_MS), "cleanup.policy": "delete"}
        futures = admin.create_topics([NewTopic(self.control_topic, 1, -1, config=config)], operation_timeout=30)
        for future in futures.values():
            try:
                future.result()
            except KafkaException as err:
                if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise

    def _control_end_offset(self) -> int:
        """Where to start reading the control topic: its current end (older answers are for older attempts)."""
        if not self._has_activities:
            return OFFSET_END
        from confluent_kafka import Consumer

        probe = Consumer({**self._kafka, "group.id": "kronicle-worker-probe", "enable.auto.commit": False})
        try:
            last: Exception | None = None
            for _ in range(100):
                try:
                    _, high = probe.get_watermark_offsets(TopicPartition(self.control_topic, 0), timeout=2)
                    return int(high)
                except KafkaException as err:  # the new topic's leader may not be known yet
                    last = err
                    time.sleep(0.1)
            raise KafkaException(last)
        finally:
            probe.close()

    async def shutdown(self) -> None:
        """Stop polling, let work finish (activities up to ``graceful_shutdown_timeout``), then close.

        Idempotent; concurrent calls wait for the same shutdown.
        """
        if self._state is _State.NEW:
            self._state = _State.STOPPED
            self._workflow_threads.shutdown(wait=False)
            self._stopped.set()
            return
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.ensure_future(self._shutdown())
        await asyncio.shield(self._shutdown_task)

    async def _shutdown(self) -> None:
        self._state = _State.STOPPING
        try:
            await asyncio.gather(*(c.stop() for c in self._consumers))
            if self._wf_consumer is not None and self._wf_consumer.in_flight:
                # Workflow tasks are short; finishing them saves the engine a task timeout.
                await asyncio.wait(list(self._wf_consumer.in_flight), timeout=10)
            running_now = set(self._eager_running)
            if self._act_consumer is not None:
                running_now |= self._act_consumer.in_flight
            if running_now:
                running = list(running_now)
                pending: set[asyncio.Task[None]] = set(running)
                if self._graceful > 0:
                    _, pending = await asyncio.wait(running, timeout=self._graceful)
                if pending:
                    self._activities.cancel_all("WORKER_SHUTDOWN")
                    await asyncio.wait(pending, timeout=5)
            if self._control is not None:
                await self._control.stop()
            # Disposing runs pending coroutines' finally blocks, which belongs on the workflow threads.
            await asyncio.get_running_loop().run_in_executor(self._workflow_threads, self._runner.evict_all)
            self._workflow_threads.shutdown(wait=False)
            if self._producer is not None:
                await self._producer.close()
        finally:
            self._state = _State.STOPPED
            self._stopped.set()
            _log.info("Worker %s for task queue %s stopped", self._identity, self._task_queue)

    # ------------------------------------------------------------ records

    def _send(self, name: str, datum: dict[str, Any]) -> None:
        assert self._producer is not None
        value = self._registry.encode(_SCHEMA_NS + name, datum)
        self._producer.produce(self._topics.commands, str(datum["workflow_id"]).encode(), value)

    def _decode(self, msg: Message, *expected: str) -> dict[str, Any] | None:
        raw = msg.value()
        if raw is None:
            return None
        try:
            name, datum = self._registry.decode(raw)
        except Exception as err:  # noqa: BLE001 - a foreign record on our topic is logged and skipped
            _log.warning("Skipping undecodable record on %s: %s", msg.topic(), err)
            return None
        if name.removeprefix(_SCHEMA_NS) not in expected:
            _log.warning("Skipping %s record on %s (expected %s)", name, msg.topic(), " or ".join(expected))
            return None
        result: dict[str, Any] = datum
        return result

    def _acquire_activity_slot(self) -> bool:
        if self._state is not _State.RUNNING or self._act_consumer is None:
            return False
        return self._act_consumer.try_acquire()

    def _release_activity_slot(self) -> None:
        if self._act_consumer is not None:
            self._act_consumer.release()

    def _track_eager(self, eager: EagerActivity) -> None:
        assert eager.runner is not None
        self._eager_running.add(eager.runner)
        eager.runner.add_done_callback(self._eager_running.discard)

    async def _on_workflow_task(self, msg: Message) -> None:
        task = self._decode(msg, "WorkflowTask", "QueryTask")
        if task is None:
            return
        if "query_id" in task:
            reply = await self._runner.query(task)
            assert self._producer is not None
            value = self._registry.encode(_SCHEMA_NS + "QueryResult", reply)
            self._producer.produce(str(task["reply_to"]), str(task["workflow_id"]).encode(), value)
            return
        answer = await self._runner.answer(task)
        if answer is not None:
            # One pass of the loop: the completion and the eager results behind it leave in one batch.
            for record in answer.records:
                self._send(*record)
            answer.sent()

    async def _on_activity_task(self, msg: Message) -> None:
        task = self._decode(msg, "ActivityTask")
        if task is not None:
            await self._activities.run(task)

    async def _on_control(self, msg: Message) -> None:
        control = self._decode(msg, "ActivityTaskControl")
        if control is not None:
            self._activities.on_control(control)
