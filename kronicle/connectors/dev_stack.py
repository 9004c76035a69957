"""The whole local stack in one object: Kafka (optional), the namespace registry, the engine, visibility, the frontend.

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

from kronicle.connectors.frontend import Frontend, NamespaceInfo, NamespaceRegistry
from kronicle.connectors.local_kafka import LocalBroker
from kronicle.connectors.visibility import ProjectorConfig, VisibilityProjector, VisibilityStore
from kronicle.engine.service import EngineService
from kronicle.engine.workflow import WorkflowOptions
from kronicle.state.store import StoreOptions

__all__ = ["DevStack"]

log = logging.getLogger(__name__)


class DevStack:
    """A local Kronicle: a broker unless ``kafka`` is given, one namespace's engine, visibility, the HTTP frontend.

    The namespace is registered in ``kronicle._namespaces`` (created if missing),
    and the engine takes its retention from there at start. Visibility is a
    projector of the namespace's visibility topic into SQLite
    (``<data_dir>/visibility.db``), which the frontend lists and counts from.

    Args:
        kafka: Bootstrap servers of an existing Kafka; None starts a local broker.
        data_dir: Keep broker data and engine state here (survives restarts);
            None uses a temporary directory removed by :meth:`stop`.
        host: Interface of the frontend.
        port: Frontend port (0 picks a free one).
        namespace: The namespace to create and serve.
        partitions: Partitions of the namespace's topics when they are created.
        kafka_port: Port of the local broker (0/None: any free port).
        store_options: RocksDB tuning of the engine's state (default: ``StoreOptions()``, 64 MiB).
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
        store_options: StoreOptions | None = None,
    ) -> None:
        self._kafka = kafka
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="kronicle-dev-"))
        self._host = host
        self._port = port
        self.namespace = namespace
        self._partitions = partitions
        self._kafka_port = kafka_port
        self._store_options = store_options or StoreOptions()
        self.broker: LocalBroker | None = None
        self.namespaces: NamespaceRegistry | None = None
        self.namespace_info: NamespaceInfo | None = None
        """The namespace as registered when the engine started (its retention is the engine's)."""
        self.engine: EngineService | None = None
        self.projector: VisibilityProjector | None = None
        self._stores: list[VisibilityStore] = []
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

    @property
    def visibility_url(self) -> str:
        """The SQLite database visibility is projected into."""
        return str((self.data_dir / "visibility.db").resolve())

    async def start(self) -> None:
        """Start Kafka (if owned), the registry, the engine (creating the namespace), visibility and the frontend."""
        loop = asyncio.get_running_loop()
        try:
            if not self._kafka:
                self.broker = LocalBroker(self._kafka_port or None, data_dir=self.data_dir / "kafka")
                await loop.run_in_executor(None, self.broker.start)
            self.namespaces = NamespaceRegistry(self.kafka_bootstrap_servers)
            await loop.run_in_executor(None, self.namespaces.start)
            wanted = NamespaceInfo(self.namespace, partitions=self._partitions, description="the development namespace")
            info = self.namespace_info = await loop.run_in_executor(None, self.namespaces.ensure, wanted)
            self.engine = EngineService(
                self.kafka_bootstrap_servers,
                self.namespace,
                state_dir=self.data_dir / "state",
                partitions=info.partitions,  # a registered namespace keeps its own count
                instance_id="dev-engine",
                options=WorkflowOptions(retention_ms=info.retention_ms),
                store_options=self._store_options,
            )
            await loop.run_in_executor(None, self.engine.start)
            # Two stores on one database: the frontend's reads do not queue behind the projector's writes.
            projector_store = await VisibilityStore.open(self.visibility_url)
            self._stores.append(projector_store)
            frontend_store = await VisibilityStore.open(self.visibility_url)
            self._stores.append(frontend_store)
            self.projector = VisibilityProjector(
                ProjectorConfig(self.kafka_bootstrap_servers, self.namespace), projector_store
            )
            await self.projector.start()
            self.frontend = Frontend(
                self.engine, host=self._host, port=self._port, visibility=frontend_store, namespaces=self.namespaces
            )
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
        if self.projector is not None:
            projector, self.projector = self.projector, None
            await projector.stop()
        while self._stores:
            await self._stores.pop().close()
        if self.engine is not None:
            engine, self.engine = self.engine, None
            await loop.run_in_executor(None, engine.stop)
        if self.namespaces is not None:
            namespaces, self.namespaces = self.namespaces, None
            await loop.run_in_executor(None, namespaces.stop)
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
