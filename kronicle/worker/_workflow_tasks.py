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

With eager activities (:mod:`kronicle.worker._eager`), :meth:`WorkflowTaskRunner.answer`
may start activities itself, hold the completion for them, and chain the next
workflow tasks into it as continuation steps; its :class:`Answer` then also
carries the results to send right behind the completion.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any

from kronicle import _wire
from kronicle import exceptions as exc
from kronicle.converter import DataConverter
from kronicle.engine.workflow.schema_gen import attributes_field
from kronicle.worker import _activation as act
from kronicle.worker._activities import EagerActivity
from kronicle.worker._commands import commands_to_wire
from kronicle.worker._eager import (
    MAX_CHAIN_BYTES,
    MAX_CHAIN_STEPS,
    MAX_EAGER_PER_COMPLETION,
    EagerActivities,
    approx_size,
    speculative_events,
)
from kronicle.worker._history import RunHistory, UnsupportedCommandError, WorkflowTaskFailedError
from kronicle.worker._inline import InlinePolicy
from kronicle.worker._workflow_instance import DEFAULT_DEADLOCK_TIMEOUT, WorkflowInstance
from kronicle.workflow._definition import WorkflowDefinition

__all__ = ["Answer", "FetchHistory", "WorkflowTaskRunner"]

_log = logging.getLogger("kronicle.worker")

FetchHistory = Callable[[str, str], Awaitable[list[dict[str, Any]]]]
"""``(workflow_id, run_id) -> events`` of the run, in order."""

_TERMINAL = (act.CompleteWorkflow, act.FailWorkflow, act.CancelWorkflowExecution, act.ContinueAsNew)
_DEFAULT_TASK_TIMEOUT_MS = 10_000
_SCHEDULE = attributes_field("ScheduleActivityTask", "command")


@dataclasses.dataclass
class Answer:
    """What to send for one workflow task, in order, then :meth:`sent` once it is handed to the producer."""

    records: list[tuple[str, dict[str, Any]]]
    """``(schema short name, datum)``: the completion first, then eager results that ended within the hold."""
    eager: list[EagerActivity] = dataclasses.field(default_factory=list)
    """Activities started for this completion; their later results wait for :meth:`sent`."""

    def sent(self) -> None:
        """The records are with the producer: eager activities may now report (and heartbeat) on their own."""
        for eager in self.eager:
            eager.release()


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
        eager: Runs activities of this worker's completions eagerly (None: never).
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
        eager: EagerActivities | None = None,
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
        self._eager = eager
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
    def eager(self) -> EagerActivities | None:
        """How this runner starts activities eagerly (None: it does not)."""
        return self._eager

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
        """Answer one workflow task (for a runner without eager activities: the answer is one record).

        Returns:
            ``(schema short name, datum)`` to send to the commands topic, or None if the task is stale
            (history has moved past it) and must be dropped.
        """
        answer = await self.answer(task)
        if answer is None:
            return None
        if len(answer.records) > 1:
            raise RuntimeError("this runner runs activities eagerly: use answer(), which returns every record")
        answer.sent()
        return answer.records[0]

    async def answer(self, task: Mapping[str, Any]) -> Answer | None:
        """Answer one workflow task.

        Returns:
            The records to send to the commands topic (call :meth:`Answer.sent` once they are with
            the producer), or None if the task is stale (history has moved past it) and must be dropped.
        """
        async with self._workflow_lock(str(task["workflow_id"])):
            return await self._handle(task)

    async def query(self, task: Mapping[str, Any]) -> dict[str, Any]:
        """Answer a ``QueryTask``: the ``QueryResult`` datum for its ``reply_to``.

        The answer comes from a fresh replay of the run's full history (cached instances are
        not touched, so a query can never disturb a running workflow); a closed run works the same.
        """
        async with self._workflow_lock(str(task["workflow_id"])):
            return await self._query(task)

    @contextlib.asynccontextmanager
    async def _workflow_lock(self, workflow_id: str) -> AsyncIterator[None]:
        """Hold the workflow's lock (one task or query of a workflow at a time); forget it when nobody waits.

        The lock is dropped from :attr:`_locks` after it is released, not inside it (where it is
        always still held): otherwise the worker keeps one lock per workflow it ever ran.
        """
        lock = self._locks.setdefault(workflow_id, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and not lock._waiters and self._locks.get(workflow_id) is lock:
                del self._locks[workflow_id]

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

    async def _handle(self, task: Mapping[str, Any]) -> Answer | None:
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
                return Answer([await self._fail(task, now, error, "WORKFLOW_TASK_FAILED")])
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
            completion, commands, predicted = await self._activate(
                run, events, scheduled, now, task.get("updates") or ()
            )
        except exc.NondeterminismError as err:
            self.stats["nondeterminism"] += 1
            self.evict(run_id)
            _log.warning("Workflow %s run %s: %s", task["workflow_id"], run_id, err)
            return Answer([await self._fail(task, now, err, "NON_DETERMINISTIC_ERROR")])
        except WorkflowTaskFailedError as err:
            self.stats["task_failed"] += 1
            self.evict(run_id)
            _log.warning("Workflow %s run %s failed its workflow task: %s", task["workflow_id"], run_id, err)
            return Answer([await self._fail(task, now, None, err.cause, failure=err.failure)])
        except (UnsupportedCommandError, ValueError) as err:
            self.stats["task_failed"] += 1
            self.evict(run_id)
            return Answer([await self._fail(task, now, err, "WORKFLOW_TASK_FAILED")])
        closing = any(isinstance(c, _TERMINAL) for c in completion.commands)
        if closing:
            self.evict(run_id)  # nothing more will come for this run
        self.stats["completed"] += 1
        datum: dict[str, Any] = {
            **self._ref(task),
            "started_time_ms": run.started_time_ms(now),
            "identity": self._identity,
            "commands": commands,
        }
        answer = Answer([("CompleteWorkflowTask", datum)])
        if self._eager is not None and not closing:
            await self._chain(task, run, completion.commands, commands, predicted, answer)
        return answer

    async def _activate(
        self,
        run: RunHistory,
        events: Sequence[Mapping[str, Any]],
        scheduled: int,
        now: datetime,
        updates: Sequence[Mapping[str, Any]] = (),
    ) -> tuple[act.Completion, list[dict[str, Any]], dict[int, int]]:
        """Feed ``events`` (ending with the task's WorkflowTaskScheduled), run the task, encode its commands.

        Returns the completion, its commands on the wire, and the event ids the engine will give
        the activities they schedule (``commands_to_wire``'s ``predicted``).

        Raises:
            ValueError: the history does not end at the task.
            WorkflowTaskFailedError: the workflow code failed the task.
        """
        await run.advance(events)
        if run.next_event_id != scheduled + 1:
            raise ValueError(f"history ends at event {run.next_event_id - 1}, task scheduled at {scheduled}")
        completion = await run.activate_live(scheduled, now, updates)
        if completion.failure is not None:
            raise WorkflowTaskFailedError(completion.failure)
        predicted: dict[int, int] = {}
        wire = await commands_to_wire(
            completion.commands, run=run, scheduled_event_id=scheduled, data_converter=self._dc, predicted=predicted
        )
        return completion, wire, predicted

    async def _chain(
        self,
        task: Mapping[str, Any],
        run: RunHistory,
        step_commands: Sequence[act.Command],
        step_wire: list[dict[str, Any]],
        predicted: dict[int, int],
        answer: Answer,
    ) -> None:
        """Start the completion's eager activities, hold it for them, and chain the next tasks onto it.

        Every step the cached run takes here is one the engine will write if it accepts the chain.
        A speculative activation that fails leaves a run the engine will never have, so the run is
        evicted (its next task replays from history) and the chain ends before that step.
        """
        eager = self._eager
        assert eager is not None
        loop = asyncio.get_running_loop()
        datum = answer.records[0][1]
        task_timeout_ms = int(task.get("start_to_close_timeout_ms") or 0) or _DEFAULT_TASK_TIMEOUT_MS
        deadline = loop.time() + task_timeout_ms / 2000  # never let the chain itself time the task out
        scheduled = int(task["scheduled_event_id"])
        started_ms = int(datum["started_time_ms"])
        continuations: list[dict[str, Any]] = []
        size = approx_size(step_wire)
        while True:
            started = self._start_eager(task, step_commands, step_wire, predicted)
            answer.eager.extend(started)
            if not started:
                break
            remaining = min(eager.hold, deadline - loop.time())
            if remaining > 0:
                # Let the attempts take their first step before the hold starts counting: on a busy
                # loop a pass alone can take most of the hold.
                await asyncio.sleep(0)
                remaining = min(eager.hold, deadline - loop.time())
                await asyncio.wait([e.finished for e in started], timeout=remaining)
            if (
                len(started) != len(step_wire)  # the step scheduled something that is not eager
                or not all(e.succeeded for e in started)
                or self._cache.get(run.run_id) is not run
                or len(continuations) >= MAX_CHAIN_STEPS
                or loop.time() >= deadline
            ):
                break
            results = [(e.predicted_scheduled_event_id, e.outcome[1]) for e in started if e.outcome is not None]
            results_size = approx_size([r for _, r in results])
            if size + results_size > MAX_CHAIN_BYTES:
                break
            events = speculative_events(scheduled, started_ms, step_wire, results)
            next_scheduled = int(events[-1]["event_id"])
            now = self._clock()
            try:
                completion, wire, next_predicted = await self._activate(run, events, next_scheduled, now)
            except Exception as err:  # noqa: BLE001 - the engine runs this task normally and the worker replays it
                self.stats["eager_step_abandoned"] += 1
                self.evict(run.run_id)
                _log.debug("Workflow %s: speculative step not sent: %s", task["workflow_id"], err)
                break
            started_ms = run.started_time_ms(now)
            for e in started:
                e.take()
            continuations.append(
                {
                    "activity_results": [
                        {"activity_id": e.activity_id, "started_time_ms": r["started_time_ms"], "result": r["result"]}
                        for e, (_, r) in zip(started, results, strict=True)
                    ],
                    "started_time_ms": started_ms,
                    "commands": wire,
                }
            )
            self.stats["eager_step"] += 1
            size += results_size + approx_size(wire)
            if any(isinstance(c, _TERMINAL) for c in completion.commands):
                self.evict(run.run_id)
                break
            scheduled, step_commands, step_wire, predicted = next_scheduled, completion.commands, wire, next_predicted
        if continuations:
            datum["continuations"] = continuations
        # Results that ended within the hold go right behind the completion, in the same batch.
        for e in answer.eager:
            record = e.take()
            if record is not None:
                answer.records.append(record)

    def _start_eager(
        self,
        task: Mapping[str, Any],
        commands: Sequence[act.Command],
        wire: list[dict[str, Any]],
        predicted: Mapping[int, int],
    ) -> list[EagerActivity]:
        """Start the eligible ScheduleActivity commands of a step here (marking them eager)."""
        assert self._eager is not None
        started: list[EagerActivity] = []
        by_id = {str(w[_SCHEDULE]["activity_id"]): w for w in wire if w["command_type"] == "ScheduleActivityTask"}
        for c in commands:
            if not isinstance(c, act.ScheduleActivity):
                continue
            if len(started) >= MAX_EAGER_PER_COMPLETION:
                break
            command = by_id.get(c.activity_id)
            if command is None or c.seq not in predicted:
                continue
            eager = self._eager.try_start(task, command, predicted[c.seq])
            if eager is not None:
                started.append(eager)
        return started

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
