"""``WorkflowEnvironment``: a real local Kronicle for tests, optionally with time skipping.

Shaped like ``temporalio.testing.WorkflowEnvironment``::

    async with await WorkflowEnvironment.start_time_skipping() as env:
        async with Worker(env.client, task_queue="q", workflows=[Reminder], activities=[notify]):
            # sleeps 30 days in workflow time, well under a second of wall time
            assert await env.client.execute_workflow(Reminder.run, id="r-1", task_queue="q") == "sent"

Every environment runs the real thing: a Kafka broker (started, or an existing
one), the engine and the HTTP frontend in this process; ``env.client`` is a
:class:`kronicle.client.Client` connected to that frontend. See
``docs/testing.md`` for how time skipping decides that nothing is runnable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from kronicle import activity
from kronicle.client import Client, WorkflowHandle
from kronicle.converter import DataConverter
from kronicle.testing._skipping import ActivityRef, SkippingClock, TimeSkipper

if TYPE_CHECKING:
    from kronicle.connectors.frontend import Frontend
    from kronicle.connectors.local_kafka import LocalBroker
    from kronicle.engine.service import EngineService

__all__ = ["WorkflowEnvironment"]

log = logging.getLogger(__name__)

_POLL_BUSY_S = 0.01


class _Stack:
    """Broker (optional), engine and frontend of one environment; stops what it started."""

    def __init__(self) -> None:
        self.broker: LocalBroker | None = None
        self.engine: EngineService | None = None
        self.frontend: Frontend | None = None
        self.data_dir: Path | None = None

    async def start(
        self,
        *,
        kafka: str | None,
        namespace: str,
        partitions: int,
        data_dir: Path | None,
        host: str,
        port: int,
        clock: SkippingClock | None,
    ) -> None:
        # Imported here: the engine and the frontend are only needed once an environment starts.
        from kronicle.connectors.frontend import Frontend
        from kronicle.connectors.local_kafka import LocalBroker
        from kronicle.engine.service import EngineService

        loop = asyncio.get_running_loop()
        self.data_dir = Path(tempfile.mkdtemp(prefix="kronicle-test-")) if data_dir is None else None
        root = data_dir if data_dir is not None else self.data_dir
        assert root is not None
        try:
            if kafka is None:
                self.broker = LocalBroker(None, data_dir=root / "kafka")
                await loop.run_in_executor(None, self.broker.start)
                kafka = self.broker.bootstrap_servers
            self.engine = EngineService(
                kafka,
                namespace,
                state_dir=root / "state",
                partitions=partitions,
                instance_id=f"test-engine-{uuid.uuid4().hex[:8]}",
                clock=clock.now_ms if clock is not None else None,
            )
            await loop.run_in_executor(None, self.engine.start)
            self.frontend = Frontend(self.engine, host=host, port=port)
            await self.frontend.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        if self.frontend is not None:
            frontend, self.frontend = self.frontend, None
            await frontend.stop()
        if self.engine is not None:
            engine, self.engine = self.engine, None
            await loop.run_in_executor(None, engine.stop)
            if engine.failure is not None:
                log.error("the test engine had stopped on an error: %s", engine.failure)
        if self.broker is not None:
            broker, self.broker = self.broker, None
            await loop.run_in_executor(None, broker.stop)
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None


class _TimeSkippingHandle(WorkflowHandle[Any]):
    """A handle whose ``result()`` turns automatic time skipping on while it waits."""

    _env: WorkflowEnvironment

    async def result(self, *, follow_runs: bool = True, rpc_timeout: timedelta | None = None) -> Any:
        if not self._env._auto_time_skipping or self._env._skipper is None:
            return await super().result(follow_runs=follow_runs, rpc_timeout=rpc_timeout)
        return await self._env._skipper.run_unlocked(super().result(follow_runs=follow_runs, rpc_timeout=rpc_timeout))


class _TimeSkippingClient(Client):
    """``env.client`` of a time-skipping environment: its handles skip time while awaiting a result."""

    _env: WorkflowEnvironment

    def _wrap(self, handle: WorkflowHandle[Any]) -> WorkflowHandle[Any]:
        wrapped = _TimeSkippingHandle(
            self,
            handle.id,
            run_id=handle.run_id,
            result_run_id=handle.result_run_id,
            first_execution_run_id=handle.first_execution_run_id,
            result_type=handle._result_type,
        )
        wrapped._env = self._env
        return wrapped

    async def start_workflow(self, workflow: Any, *args: Any, **kwargs: Any) -> WorkflowHandle[Any]:
        return self._wrap(await super().start_workflow(workflow, *args, **kwargs))

    def get_workflow_handle(self, workflow_id: str, **kwargs: Any) -> WorkflowHandle[Any]:
        return self._wrap(super().get_workflow_handle(workflow_id, **kwargs))


class WorkflowEnvironment:
    """A Kronicle to run workflows against in tests (temporalio's ``WorkflowEnvironment``).

    Create one with :meth:`start_time_skipping`, :meth:`start_local` or
    :meth:`from_client`; use it as ``async with`` (or call :meth:`shutdown`).
    """

    def __init__(
        self,
        client: Client,
        *,
        stack: _Stack | None = None,
        clock: SkippingClock | None = None,
        skipper: TimeSkipper | None = None,
    ) -> None:
        self._client = client
        self._stack = stack
        self._clock = clock
        self._skipper = skipper
        self._auto_time_skipping = skipper is not None
        self._shut_down = False

    # -- construction ------------------------------------------------------------------------

    @staticmethod
    def from_client(client: Client) -> WorkflowEnvironment:
        """An environment over an existing Kronicle (e.g. ``make dev``); no time skipping, nothing to stop."""
        return WorkflowEnvironment(client)

    @staticmethod
    async def start_local(
        *,
        kafka: str | None = None,
        namespace: str | None = None,
        partitions: int = 1,
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        data_converter: DataConverter = DataConverter.default,
    ) -> WorkflowEnvironment:
        """Start a real local Kronicle (engine and frontend in this process; Kafka too unless given).

        Time runs at wall-clock speed. The environment stops everything it started.

        Args:
            kafka: Bootstrap servers of an existing broker; None starts a local one
                (needs Java and the Kafka jars, as ``make dev`` does).
            namespace: The namespace to serve. Default: ``"default"`` on a broker of
                its own, a fresh ``test-<hex>`` namespace on an existing broker (so
                environments sharing a broker never share workflows or engine groups).
            partitions: Partitions of the namespace's topics.
            data_dir: Keep broker data and engine state here (default: a temporary
                directory, removed on shutdown).
            host: Interface of the frontend.
            port: Frontend port (0 picks a free one).
            data_converter: Data converter of ``env.client`` (and so of workers using it).
        """
        return await WorkflowEnvironment._start(
            kafka, namespace, partitions, data_dir, host, port, data_converter, time_skipping=False
        )

    @staticmethod
    async def start_time_skipping(
        *,
        kafka: str | None = None,
        namespace: str | None = None,
        partitions: int = 1,
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        data_converter: DataConverter = DataConverter.default,
    ) -> WorkflowEnvironment:
        """Start a local Kronicle whose engine runs off a clock that skips ahead when nothing is runnable.

        While ``result()`` of a handle from ``env.client`` is awaited (and
        :meth:`auto_time_skipping_disabled` is not in effect), time jumps to the
        next timer whenever no workflow task is outstanding, no activity is
        running and no command is in flight; :meth:`sleep` skips explicitly.
        Arguments are those of :meth:`start_local`.
        """
        return await WorkflowEnvironment._start(
            kafka, namespace, partitions, data_dir, host, port, data_converter, time_skipping=True
        )

    @staticmethod
    async def _start(
        kafka: str | None,
        namespace: str | None,
        partitions: int,
        data_dir: Path | None,
        host: str,
        port: int,
        data_converter: DataConverter,
        *,
        time_skipping: bool,
    ) -> WorkflowEnvironment:
        if namespace is None:
            namespace = "default" if kafka is None else f"test-{uuid.uuid4().hex[:10]}"
        clock = SkippingClock() if time_skipping else None
        stack = _Stack()
        await stack.start(
            kafka=kafka,
            namespace=namespace,
            partitions=partitions,
            data_dir=data_dir,
            host=host,
            port=port,
            clock=clock,
        )
        skipper: TimeSkipper | None = None
        assert stack.frontend is not None and stack.engine is not None
        try:
            client = await Client.connect(stack.frontend.url, namespace=namespace, data_converter=data_converter)
            if clock is not None:
                skipper = TimeSkipper(stack.engine, clock)
                # Same connection, but handles that skip time while awaiting a result.
                client = _TimeSkippingClient(
                    client._transport,
                    namespace=client.namespace,
                    data_converter=client.data_converter,
                    identity=client.identity,
                    cluster=client.cluster,
                )
        except BaseException:
            if skipper is not None:
                skipper.close()
            await stack.stop()
            raise
        env = WorkflowEnvironment(client, stack=stack, clock=clock, skipper=skipper)
        if isinstance(client, _TimeSkippingClient):
            client._env = env
        return env

    # -- use ---------------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        """A client connected to this environment's frontend."""
        return self._client

    @property
    def supports_time_skipping(self) -> bool:
        """Whether this environment skips time (:meth:`start_time_skipping`)."""
        return self._skipper is not None

    @property
    def kafka_bootstrap_servers(self) -> str:
        """The Kafka this environment's engine uses (workers learn it from the frontend anyway)."""
        return self._client.kafka_bootstrap_servers

    @property
    def time_skipper(self) -> TimeSkipper | None:
        """The skipper (its ``skips`` and ``barriers`` counters), or None without time skipping."""
        return self._skipper

    async def sleep(self, duration: timedelta | float) -> None:
        """Let ``duration`` (a timedelta or seconds) of environment time pass.

        With time skipping this returns as soon as the environment's clock reached
        the target: timers due on the way fire in order, and after each the clock
        waits for the work they cause (workflow tasks, activities, commands) before
        it jumps again. Running activities hold time back (time then passes at wall
        speed), except the activity that calls ``env.sleep`` itself — which is how
        a test makes an activity outlive its start-to-close or heartbeat timeout.
        Without time skipping this is ``asyncio.sleep``.
        """
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
        if seconds < 0:
            raise ValueError("duration must not be negative")
        if self._skipper is None or self._clock is None:
            await asyncio.sleep(seconds)
            return
        exclude: ActivityRef | None = None
        if activity.in_activity():
            info = activity.info()
            exclude = ActivityRef(info.workflow_run_id, info.activity_id, info.attempt)
        target = self._clock.now_ms() + int(seconds * 1000)
        while self._clock.now_ms() < target:
            outcome = await self._skipper.step(target, exclude)
            if self._clock.now_ms() >= target:
                return
            # Time passes at wall speed meanwhile, so this loop ends within ``duration`` of real time.
            remaining = (target - self._clock.now_ms()) / 1000
            await asyncio.sleep(0 if outcome == "skipped" else min(_POLL_BUSY_S, max(remaining, 0)))

    async def get_current_time(self) -> datetime:
        """The environment's current time (what the engine stamps on events and timers)."""
        ms = self._clock.now_ms() if self._clock is not None else int(datetime.now(UTC).timestamp() * 1000)
        return datetime.fromtimestamp(ms / 1000, UTC)

    @contextlib.contextmanager
    def auto_time_skipping_disabled(self) -> Iterator[None]:
        """Within this block, awaiting ``result()`` does not skip time (``env.sleep`` still does)."""
        previous = self._auto_time_skipping
        self._auto_time_skipping = False
        try:
            yield
        finally:
            self._auto_time_skipping = previous

    # -- lifecycle ---------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Close the client and stop what this environment started; idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
        if self._skipper is not None:
            self._skipper.close()
        if self._stack is not None:
            await self._client.close()
            await self._stack.stop()

    async def __aenter__(self) -> WorkflowEnvironment:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()
