"""The engine of one namespace as a service: the workflow handler in a processor thread.

:class:`EngineService` is what ``kronicle server start-dev``, the frontend and
the tests run: it creates the namespace's topics if they are missing, runs a
:class:`~kronicle.engine.processor.Processor` with the
:class:`~kronicle.engine.workflow.WorkflowHandler` on a background thread, and
offers the read side the frontend needs (describe, history, waiting for a
workflow to change).

Reads go straight to the partition's RocksDB store, which is safe beside the
processor's writes; opening and closing a store happen under the processor's
``store_lock``, which readers take too, and a partition that is not active in
this process (not owned, or still restoring) answers :class:`NotServingError`.
With several engine processes, a caller must ask the one that owns the
workflow's partition; routing between them is not built yet.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from kronicle.engine import metrics
from kronicle.engine.processor import Processor, ProcessorConfig
from kronicle.engine.workflow import WorkflowHandler, WorkflowOptions, WorkflowTopics, describe, read_history
from kronicle.schemas import SchemaRegistry, default_registry
from kronicle.topics import (
    InvalidNameError,
    NamespaceTopics,
    ensure_namespace_topics,
    ensure_task_queue_topics,
    partition_for,
)

__all__ = ["EngineService", "NotServingError"]

log = logging.getLogger(__name__)


class NotServingError(RuntimeError):
    """The workflow's partition is not active in this engine process (not owned, or restoring)."""


class EngineService:
    """Runs the workflow engine of one namespace and answers reads about its workflows.

    Args:
        bootstrap_servers: Kafka bootstrap servers.
        namespace: The namespace to serve.
        state_dir: Where the RocksDB stores live.
        partitions: Partition count used if the namespace's topics must be created.
        instance_id: Stable name of this engine process.
        options: Workflow engine tunables.
        replication_factor: For topics this service creates (-1: broker default).
        processor_options: Extra :class:`ProcessorConfig` fields (e.g. ``max_batch_ms``).
        clock: The engine's clock in ms since the epoch (default: the wall clock); every
            timer and timeout runs off it (``kronicle.testing`` skips time with it).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        namespace: str = "default",
        *,
        state_dir: Path,
        partitions: int = 4,
        instance_id: str = "engine-0",
        options: WorkflowOptions | None = None,
        replication_factor: int = -1,
        registry: SchemaRegistry | None = None,
        clock: Callable[[], int] | None = None,
        **processor_options: Any,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.namespace = namespace
        self.topics = NamespaceTopics(namespace)
        self.registry = registry or default_registry()
        self._partitions_wanted = partitions
        self._replication_factor = replication_factor
        self._admin = AdminClient({"bootstrap.servers": bootstrap_servers})
        self.partition_count = 0
        self.handler = WorkflowHandler(
            topics=WorkflowTopics(namespace),
            encode=self.registry.encode,
            decode=self.registry.decode,
            options=options,
        )
        self.processor = Processor(
            ProcessorConfig(bootstrap_servers, namespace, Path(state_dir), instance_id, **processor_options),
            self.handler,
            self.registry,
            topic_guard=self._topic_guard,
            on_commit=self._notify,
            on_restored=self._notify_partition,
            **({"clock": clock} if clock is not None else {}),
        )
        store = self.processor.store
        # Read at scrape time; the cache and the memtable budget are safe to read from any thread.
        memory = metrics.STATE_MEMORY
        memory.labels(namespace, "block_cache").set_function(lambda: store.memory_usage().block_cache_bytes)
        memory.labels(namespace, "memtables").set_function(lambda: store.memory_usage().memtable_bytes)
        memory.labels(namespace, "pinned").set_function(lambda: store.memory_usage().pinned_bytes)
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._waiters: dict[bytes, list[_Waiter]] = collections.defaultdict(list)
        self._waiters_lock = threading.Lock()
        self.handler.take_closed()  # start tracking closes: result long polls wake only on those
        self._task_queues: set[str] = set()

    # -- lifecycle -----------------------------------------------------

    def start(self, timeout: float = 60.0, wait_for_all_partitions: bool = True) -> None:
        """Create missing topics, start the processor thread, and wait until it serves.

        Raises:
            TimeoutError: the partitions were not all active within ``timeout``.
        """
        ensure_namespace_topics(
            self._admin, self.namespace, self._partitions_wanted, replication_factor=self._replication_factor
        )
        self.processor.start()
        self.partition_count = self.processor.partition_count
        self._thread = threading.Thread(target=self._run, name=f"kronicle-engine-{self.namespace}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        want = set(range(self.partition_count)) if wait_for_all_partitions else None
        while True:
            active = self.processor.active_partitions()
            if (want is not None and active >= want) or (want is None and active):
                return
            if self._failure is not None:
                raise RuntimeError(f"the engine stopped: {self._failure}") from self._failure
            if time.monotonic() > deadline:
                raise TimeoutError(f"engine for {self.namespace!r} not serving after {timeout:.0f}s (active: {active})")
            time.sleep(0.05)

    def _run(self) -> None:
        try:
            self.processor.run()
        except BaseException as exc:
            self._failure = exc
            log.exception("engine processor stopped")
        finally:
            self.processor.close()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the processor after its current batch; idempotent."""
        self.processor.stop()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def failure(self) -> BaseException | None:
        """Why the processor thread stopped, if it stopped on an error."""
        return self._failure

    # -- topics --------------------------------------------------------

    def ensure_task_queue(self, queue: str) -> None:
        """Create the task queue's workflow and activity topics if they do not exist."""
        if queue not in self._task_queues:
            ensure_task_queue_topics(self._admin, self.namespace, queue, replication_factor=self._replication_factor)
            self._task_queues.add(queue)

    def _topic_guard(self, topic: str) -> bool:
        prefix = f"kronicle.{self.namespace}.tq."
        if topic.startswith(prefix) and topic.endswith((".workflow", ".activity")):
            try:
                self.ensure_task_queue(topic[len(prefix) :].rsplit(".", 1)[0])
            except InvalidNameError as err:
                # A name Kafka cannot have (from a command produced straight to Kafka): drop the
                # record rather than stop every partition of the engine on it.
                log.warning("dropping a record for %s: %s", topic, err)
                return False
            return True
        metadata = self._admin.list_topics(topic, timeout=10).topics.get(topic)
        return metadata is not None and metadata.error is None

    # -- reads ---------------------------------------------------------

    def _partition(self, workflow_id: str) -> int:
        if not self.partition_count:
            raise NotServingError("the engine has not started")
        return partition_for(workflow_id.encode(), self.partition_count)

    def _read(self, workflow_id: str, fn: Any) -> Any:
        partition = self._partition(workflow_id)
        with self.processor.store_lock:
            if partition not in self.processor.active_partitions():
                raise NotServingError(
                    f"partition {partition} of {self.namespace!r} (workflow {workflow_id!r}) is not active here"
                )
            store = self.processor.store

            def get(cf: str, key: bytes) -> bytes | None:
                return store.get(partition, cf, key)

            return fn(get)

    def describe(self, workflow_id: str, run_id: str = "") -> dict[str, Any] | None:
        """The state of a run (the current one when ``run_id`` is empty), or None."""
        result: dict[str, Any] | None = self._read(workflow_id, lambda get: describe(get, workflow_id, run_id))
        return result

    def read_history(
        self,
        workflow_id: str,
        run_id: str = "",
        first_event_id: int = 1,
        max_events: int = 1000,
        last_chunk: int = 0,
    ) -> list[dict[str, Any]]:
        """One page of a run's history events (decoded ``kronicle.workflow.HistoryEvent`` datums).

        ``last_chunk``: the run state's field of that name, if the caller read the state
        (see :func:`~kronicle.engine.workflow.read_history`).
        """

        def page(get: Any) -> list[dict[str, Any]]:
            rid, hint = run_id, last_chunk
            if not rid:
                state = describe(get, workflow_id)
                if state is None:
                    return []
                rid = state["run_id"]
                # The hint holds for the events this state knows of; a later one (a long poll's
                # next event) may have been written since, so that read probes.
                hint = state.get("last_chunk", 0) if first_event_id < state["next_event_id"] else 0
            return read_history(get, self.registry.decode, rid, first_event_id, max_events, hint)

        result: list[dict[str, Any]] = self._read(workflow_id, page)
        return result

    # -- change notification -------------------------------------------

    async def wait_for_change(self, workflow_id: str, timeout: float) -> bool:
        """Wait until a batch with a command for ``workflow_id`` commits; False on timeout."""
        return await self._wait(workflow_id, timeout, closed_only=False)

    async def wait_for_close(self, workflow_id: str, timeout: float) -> bool:
        """Wait until a batch that closed a run of ``workflow_id`` commits; False on timeout.

        A result long poll waits with this: a one-activity workflow commits four
        times, and only the last one can answer it.
        """
        return await self._wait(workflow_id, timeout, closed_only=True)

    @contextlib.contextmanager
    def watch_change(self, workflow_id: str, *, closed_only: bool = False) -> Iterator[asyncio.Event]:
        """Listen, from now on and while in the block, for a commit of a batch with a command for ``workflow_id``.

        The event is set once such a batch (with ``closed_only``, one that closed a
        run of the workflow) is committed and in the store, or the workflow's
        partition was restored; it is set once, a later commit needs a new watch.
        Unlike :meth:`wait_for_change` this registers at once, without a task: a
        caller listens before it reads the store or produces a command, so no
        commit slips between the two, and awaits the event only if it must.
        """
        key = workflow_id.encode()
        entry = _Waiter(asyncio.get_running_loop(), asyncio.Event(), closed_only)
        with self._waiters_lock:
            self._waiters[key].append(entry)
        try:
            yield entry.event
        finally:
            with self._waiters_lock:
                waiting = self._waiters.get(key)
                if waiting is not None:
                    if entry in waiting:
                        waiting.remove(entry)
                    if not waiting:
                        del self._waiters[key]

    async def _wait(self, workflow_id: str, timeout: float, *, closed_only: bool) -> bool:
        with self.watch_change(workflow_id, closed_only=closed_only) as event:
            try:
                # asyncio.timeout, not wait_for: no extra task per wait (a long poll waits several times).
                async with asyncio.timeout(timeout):
                    await event.wait()
                return True
            except TimeoutError:
                return False

    def _notify(self, keys: set[bytes]) -> None:
        # Runs on the processor thread after each commit.
        closed = self.handler.take_closed()
        woken: dict[asyncio.AbstractEventLoop, list[asyncio.Event]] = {}
        with self._waiters_lock:
            for key in keys:
                waiting = self._waiters.get(key)
                if not waiting:
                    continue
                if key in closed:
                    wake, keep = waiting, []
                else:
                    wake = [w for w in waiting if not w.closed_only]
                    keep = [w for w in waiting if w.closed_only]
                for w in wake:
                    woken.setdefault(w.loop, []).append(w.event)
                if keep:
                    self._waiters[key] = keep
                else:
                    del self._waiters[key]
        # One wake-up of each event loop per commit, not one per waiter.
        for loop, events in woken.items():
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(_set_all, events)

    def _notify_partition(self, partition: int) -> None:
        # Runs on the processor thread when a partition finished restoring, e.g. after a producer
        # replacement resynchronised it: the changelog tail it read may hold a batch that
        # committed without a notification. Which workflows it touched is unknown here, so every
        # waiter on the partition is woken (closed-only ones too) and reads the state again.
        count = self.partition_count
        if not count:
            return
        woken: dict[asyncio.AbstractEventLoop, list[asyncio.Event]] = {}
        with self._waiters_lock:
            for key in [k for k in self._waiters if partition_for(k, count) == partition]:
                for w in self._waiters.pop(key):
                    woken.setdefault(w.loop, []).append(w.event)
        for loop, events in woken.items():
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(_set_all, events)


@dataclasses.dataclass(eq=False, slots=True)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event
    closed_only: bool


def _set_all(events: list[asyncio.Event]) -> None:
    for event in events:
        event.set()
