"""The whole local stack in one object: Kafka (optional), the engine and the frontend.

Used by ``kronicle server start-dev`` and by ``kronicle.testing``. Everything it
starts it also stops, in reverse order, even when a later step fails.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from kronicle.connectors.frontend import Frontend
from kronicle.connectors.local_kafka import LocalBroker
from kronicle.engine.service import EngineService

__all__ = ["DevStack"]

log = logging.getLogger(__name__)


class DevStack:
    """A local Kronicle: a broker unless ``kafka`` is given, one namespace's engine, the HTTP frontend.

    Args:
        kafka: Bootstrap servers of an existing Kafka; None starts a local broker.
        data_dir: Keep broker data and engine state here (survives restarts);
            None uses a temporary directory removed by :meth:`stop`.
        host: Interface of the frontend.
        port: Frontend port (0 picks a free one).
        namespace: The namespace to create and serve.
        partitions: Partitions of the namespace's topics when they are created.
        kafka_port: Port of the local broker (0/None: any free port).
    """

    def __init__(
        self,
        *,
        kafka: str | None = None,
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 7333,
        namespace: str = "default",
        partitions: int = 4,
        kafka_port: int | None = None,
    ) -> None:
        self._kafka = kafka
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="kronicle-dev-"))
        self._host = host
        self._port = port
        self.namespace = namespace
        self._partitions = partitions
        self._kafka_port = kafka_port
        self.broker: LocalBroker | None = None
        self.engine: EngineService | None = None
        self.frontend: Frontend | None = None

    @property
    def kafka_bootstrap_servers(self) -> str:
        if self._kafka:
            return self._kafka
        if self.broker is None:
            raise RuntimeError("the stack is not started")
        return self.broker.bootstrap_servers

    @property
    def frontend_address(self) -> str:
        """``host:port`` of the frontend, what ``Client.connect`` takes."""
        if self.frontend is None:
            raise RuntimeError("the stack is not started")
        return f"{self._host}:{self.frontend.port}"

    async def start(self) -> None:
        """Start Kafka (if owned), the engine (creating the namespace) and the frontend."""
        loop = asyncio.get_running_loop()
        try:
            if not self._kafka:
                self.broker = LocalBroker(self._kafka_port or None, data_dir=self.data_dir / "kafka")
                await loop.run_in_executor(None, self.broker.start)
            self.engine = EngineService(
                self.kafka_bootstrap_servers,
                self.namespace,
                state_dir=self.data_dir / "state",
                partitions=self._partitions,
                instance_id="dev-engine",
            )
            await loop.run_in_executor(None, self.engine.start)
            self.frontend = Frontend(self.engine, host=self._host, port=self._port)
            await self.frontend.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop everything this stack started, last started first; idempotent."""
        loop = asyncio.get_running_loop()
        if self.frontend is not None:
            frontend, self.frontend = self.frontend, None
            await frontend.stop()
        if self.engine is not None:
            engine, self.engine = self.engine, None
            await loop.run_in_executor(None, engine.stop)
        if self.broker is not None:
            broker, self.broker = self.broker, None
            await loop.run_in_executor(None, broker.stop)
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    async def __aenter__(self) -> DevStack:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
