"""Answering workflow tasks: the sticky cache, replay on a miss, and the completion record.

:class:`WorkflowTaskRunner` takes a decoded ``kronicle.workflow.WorkflowTask``
and returns the record to send back (``CompleteWorkflowTask`` or
``FailWorkflowTask``), or None for a task that is stale. It does no Kafka I/O,
so the worker and the unit tests drive it the same way.

Sticky cache: an LRU of runs keyed by run id. A task whose ``first_event_id``
is exactly the next event the cached run expects continues it incrementally
(the task carries only the new events). Anything else (a miss, a run whose
last task failed or was lost, a task the engine retried) starts a fresh
instance from the full history (``fetch_history``) and replays it.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any

from kronicle import _wire
from kronicle import exceptions as exc
from kronicle.converter import DataConverter
from kronicle.worker import _activation as act
from kronicle.worker._commands import commands_to_wire
from kronicle.worker._history import RunHistory, UnsupportedCommandError, WorkflowTaskFailedError
from kronicle.worker._inline import InlinePolicy
from kronicle.worker._workflow_instance import DEFAULT_DEADLOCK_TIMEOUT, WorkflowInstance
from kronicle.workflow._definition import WorkflowDefinition

__all__ = ["FetchHistory", "WorkflowTaskRunner"]

_log = logging.getLogger("kronicle.worker")

FetchHistory = Callable[[str, str], Awaitable[list[dict[str, Any]]]]
"""``(workflow_id, run_id) -> events`` of the run, in order."""

_TERMINAL = (act.CompleteWorkflow, act.FailWorkflow, act.CancelWorkflowExecution, act.ContinueAsNew)


class WorkflowTaskRunner:
    """Turns workflow tasks into completions, keeping recently used runs in memory.

    Args:
        workflows: The ``@workflow.defn`` classes this worker runs.
        namespace: The namespace (``workflow.info().namespace``).
        identity: Reported in completions.
        data_converter: Converter and codec for payloads.
        fetch_history: Reads a run's full history on a cache miss.
        max_cached_workflows: Runs kept in the sticky cache (0 disables it).
        deadlock_timeout: Deadlock threshold of workflow code.
        history_wait: How long to wait for a fetched history to reach the task (the engine's
            store is written just after the transaction that sent the task commits).
        clock: The wall clock giving a live task's start time (tests pass the engine's clock).
        executor: Threads to run activations on (None: the event loop's thread).
        inline_activations: With an executor and a deadlock timeout, let workflow types whose live
            activations prove cheap run them on the event loop's thread (see :mod:`kronicle.worker._inline`).
    """

    def __init__(
        self,
        *,
        workflows: Sequence[type],
        namespace: str,
        identity: str,
        data_converter: DataConverter,
        fetch_history: FetchHistory,
        max_cached_workflows: int = 1000,
        deadlock_timeout: timedelta | None = DEFAULT_DEADLOCK_TIMEOUT,
        history_wait: timedelta = timedelta(seconds=5),
        clock: Callable[[], datetime] | None = None,
        executor: Executor | None = None,
        inline_activations: bool = True,
    ) -> None:
        self._definitions = {}
        for cls in workflows:
            defn = WorkflowDefinition.from_class(cls)
            self._definitions[defn.name] = defn
        self._namespace = namespace
        self._identity = identity
        self._dc = data_converter
        self._fetch = fetch_history
        self._max_cached = max_cached_workflows
        self._deadlock_timeout = deadlock_timeout
        self._history_wait = history_wait.total_seconds()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._executor = executor
        # Without the deadlock detector nothing would ever free a loop that workflow code blocked.
        inline = inline_activations and executor is not None and deadlock_timeout is not None
        self._inline: dict[str | None, InlinePolicy] | None = {} if inline else None
        self._cache: collections.OrderedDict[str, RunHistory] = collections.OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self.stats: collections.Counter[str] = collections.Counter()
        """Counts of cache hits/misses, replays, stale tasks and failures (for tests and metrics)."""

    @property
    def workflow_types(self) -> list[str]:
        """Names of the registered workflow types."""
        return sorted(name or "<dynamic>" for name in self._definitions)

    @property
    def cached_runs(self) -> list[str]:
        """Run ids in the cache, least recently used first."""
        return list(self._cache)

    def evict(self, run_id: str) -> None:
        """Drop a run from the cache (its next task replays the full history)."""
        run = self._cache.pop(run_id, None)
        if run is not None:
            run.instance.dispose()

    def evict_all(self) -> None:
        """Drop every cached run."""
        for run_id in list(self._cache):
            self.evict(run_id)

    async def handle(self, task: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """Answer one workflow task.

        Returns:
            ``(schema short name, datum)`` to send to the commands topic, or None if the task is stale
            (history has moved past it) and must be dropped.
        """
        lock = self._locks.setdefault(str(task["workflow_id"]), asyncio.Lock())
        async with lock:
            try:
                return await self._handle(task)
            finally:
                if not lock.locked() and not lock._waiters:
                    self._locks.pop(str(task["workflow_id"]), None)

    async def query(self, task: Mapping[str, Any]) -> dict[str, Any]:
        """Answer a ``QueryTask``: the ``QueryResult`` datum for its ``reply_to``.

        The answer comes from a fresh replay of the run's full history (cached instances are
        not touched, so a query can never disturb a running workflow); a closed run works the same.
        """
        lock = self._locks.setdefault(str(task["workflow_id"]), asyncio.Lock())
        async with lock:
            try:
                return await self._query(task)
            finally:
                if not lock.locked() and not lock._waiters:
                    self._locks.pop(str(task["workflow_id"]), None)

    async def _query(self, task: Mapping[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "workflow_id": task["workflow_id"],
            "run_id": task["run_id"],
            "query_id": task["query_id"],
            "answer": [],
            "failure": None,
        }
        self.stats["query"] += 1
        defn = self._definitions.get(str(task["workflow_type"])) or self._definitions.get(None)
        run: RunHistory | None = None
        try:
            if defn is None:
                raise exc.ApplicationError(
                    f"Workflow type {task['workflow_type']!r} is not registered on this worker", type="NotFoundError"
                )
            events = await self._fetch(str(task["workflow_id"]), str(task["run_id"]))
            run = RunHistory(
                WorkflowInstance(  # type: ignore[abstract]  # asyncio's I/O methods stay unimplemented on purpose
                    defn,
                    payload_converter=self._dc.payload_converter,
                    failure_converter=self._dc.failure_converter,
                    deadlock_timeout=self._deadlock_timeout,
                ),
                workflow_id=str(task["workflow_id"]),
                run_id=str(task["run_id"]),
                namespace=self._namespace,
                data_converter=self._dc,
                executor=self._executor,
            )
            await run.advance(events)
            completion = await run.query(str(task["query_id"]), str(task["query_type"]), task.get("query_args") or [])
            if completion.failure is not None:
                raise WorkflowTaskFailedError(completion.failure)
            response = next(c for c in completion.commands if isinstance(c, act.RespondToQuery))
            if response.failure is not None:
                copy = json.loads(json.dumps(response.failure))
                await self._dc._map_failure_payloads(copy, self._dc.encode_payloads)
                reply["failure"] = _wire.failure_to_wire(copy)
            elif response.result is not None:
                reply["answer"] = _wire.payloads_to_bytes(await self._dc.encode_payloads([response.result]))
        except WorkflowTaskFailedError as err:
            reply["failure"] = _wire.failure_to_wire(err.failure)
        except Exception as err:  # noqa: BLE001 - whatever went wrong is the caller's answer
            reply["failure"] = _wire.failure_to_wire(await self._dc.encode_failure(err))
        finally:
            if run is not None:
                run.instance.dispose()
        return reply

    async def _handle(self, task: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        run_id = str(task["run_id"])
        scheduled = int(task["scheduled_event_id"])
        now = self._clock()
        run = self._cache.get(run_id)
        events: list[dict[str, Any]] | None
        if run is not None and run.next_event_id == int(task["first_event_id"]) and not run.closed:
            self._cache.move_to_end(run_id)
            self.stats["cache_hit"] += 1
            events = list(task["history"])
        else:
            self.evict(run_id)
            self.stats["cache_miss"] += 1
            if int(task["first_event_id"]) == 1:
                events = list(task["history"])
            else:
                events = await self._full_history(task)
                if events is None:
                    self.stats["stale_task"] += 1
                    return None
            defn = self._definitions.get(str(task["workflow_type"])) or self._definitions.get(None)
            if defn is None:
                self.stats["unknown_workflow_type"] += 1
                error = exc.ApplicationError(
                    f"Workflow type {task['workflow_type']!r} is not registered on this worker (it has: "
                    f"{', '.join(self.workflow_types) or 'none'}); add it to Worker(workflows=[...])",
                    type="NotFoundError",
                )
                return await self._fail(task, now, error, "WORKFLOW_TASK_FAILED")
            run = RunHistory(
                WorkflowInstance(  # type: ignore[abstract]  # asyncio's I/O methods stay unimplemented on purpose
                    defn,
                    payload_converter=self._dc.payload_converter,
                    failure_converter=self._dc.failure_converter,
                    deadlock_timeout=self._deadlock_timeout,
                ),
                workflow_id=str(task["workflow_id"]),
                run_id=run_id,
                namespace=self._namespace,
                data_converter=self._dc,
                executor=self._executor,
                inline=self._inline_policy(defn.name),
            )
            self._remember(run)
        if events and int(events[-1]["event_id"]) > scheduled:
            self.stats["stale_task"] += 1
            self.evict(run_id)
            return None
        try:
            await run.advance(events)
            if run.next_event_id != scheduled + 1:
                raise ValueError(f"history ends at event {run.next_event_id - 1}, task scheduled at {scheduled}")
            completion = await run.activate_live(scheduled, now, task.get("updates") or ())
            if completion.failure is not None:
                raise WorkflowTaskFailedError(completion.failure)
            commands = await commands_to_wire(
                completion.commands, run=run, scheduled_event_id=scheduled, data_converter=self._dc
            )
        except exc.NondeterminismError as err:
            self.stats["nondeterminism"] += 1
            self.evict(run_id)
            _log.warning("Workflow %s run %s: %s", task["workflow_id"], run_id, err)
            return await self._fail(task, now, err, "NON_DETERMINISTIC_ERROR")
        except WorkflowTaskFailedError as err:
            self.stats["task_failed"] += 1
            self.evict(run_id)
            _log.warning("Workflow %s run %s failed its workflow task: %s", task["workflow_id"], run_id, err)
            return await self._fail(task, now, None, err.cause, failure=err.failure)
        except (UnsupportedCommandError, ValueError) as err:
            self.stats["task_failed"] += 1
            self.evict(run_id)
            return await self._fail(task, now, err, "WORKFLOW_TASK_FAILED")
        if any(isinstance(c, _TERMINAL) for c in completion.commands):
            self.evict(run_id)  # nothing more will come for this run
        self.stats["completed"] += 1
        return "CompleteWorkflowTask", {
            **self._ref(task),
            "started_time_ms": run.started_time_ms(now),
            "identity": self._identity,
            "commands": commands,
        }

    def _inline_policy(self, name: str | None) -> InlinePolicy | None:
        if self._inline is None:
            return None
        policy = self._inline.get(name)
        if policy is None:
            policy = self._inline[name] = InlinePolicy(name or "<dynamic>")
        return policy

    def _remember(self, run: RunHistory) -> None:
        if self._max_cached <= 0:
            return
        self._cache[run.run_id] = run
        while len(self._cache) > self._max_cached:
            # The least recently used run that is not being activated right now (disposing one
            # mid-activation would corrupt it); if all are busy, the cache stays over size for now.
            victim = next((r for r in self._cache.values() if r is not run and not self._busy(r.workflow_id)), None)
            if victim is None:
                return
            self.stats["cache_evicted"] += 1
            self.evict(victim.run_id)

    def _busy(self, workflow_id: str) -> bool:
        lock = self._locks.get(workflow_id)
        return lock is not None and lock.locked()

    async def _full_history(self, task: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        scheduled = int(task["scheduled_event_id"])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._history_wait
        while True:
            events = await self._fetch(str(task["workflow_id"]), str(task["run_id"]))
            last = int(events[-1]["event_id"]) if events else 0
            if last > scheduled:
                return None
            # The task's own events continue stored history: a retried (transient) task's
            # WorkflowTaskScheduled is only in the task until an attempt completes.
            tail = [e for e in task["history"] if int(e["event_id"]) > last]
            if tail and int(tail[0]["event_id"]) == last + 1:
                events = [*events, *tail]
                last = int(events[-1]["event_id"])
            if last == scheduled:
                self.stats["full_replay"] += 1
                return events
            if loop.time() >= deadline:
                raise RuntimeError(
                    f"history of {task['workflow_id']}/{task['run_id']} ends at event {last}, but the task was "
                    f"scheduled at {scheduled}; is the engine reachable?"
                )
            await asyncio.sleep(0.02)

    @staticmethod
    def _ref(task: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "workflow_id": task["workflow_id"],
            "run_id": task["run_id"],
            "scheduled_event_id": task["scheduled_event_id"],
            "attempt": task["attempt"],
        }

    async def _fail(
        self,
        task: Mapping[str, Any],
        now: datetime,
        error: BaseException | None,
        cause: str,
        *,
        failure: Any = None,
    ) -> tuple[str, dict[str, Any]]:
        if failure is None:
            assert error is not None
            failure = await self._dc.encode_failure(error)
        return "FailWorkflowTask", {
            **self._ref(task),
            "started_time_ms": int(now.timestamp() * 1000),
            "identity": self._identity,
            "cause": cause,
            "failure": _wire.failure_to_wire(failure),
        }
