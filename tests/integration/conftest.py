"""The stack most integration tests share: an engine on the session broker, a frontend over it and a Client.

Each is module-scoped. A folder's conftest overrides ``engine_namespace_prefix``
(so namespaces say which suite made them) and ``engine_options``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from kronicle.client import Client
from kronicle.connectors.frontend import Frontend
from kronicle.engine.service import EngineService
from kronicle.engine.workflow import WorkflowOptions


def new_id(prefix: str = "wf") -> str:
    """A fresh workflow id."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def engine_namespace_prefix() -> str:
    return "it"


@pytest.fixture(scope="module")
def engine_options() -> WorkflowOptions | None:
    return None


@pytest.fixture(scope="module")
def engine(
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
    engine_namespace_prefix: str,
    engine_options: WorkflowOptions | None,
) -> Iterator[EngineService]:
    service = EngineService(
        kafka_bootstrap,
        f"{engine_namespace_prefix}{uuid.uuid4().hex[:8]}",
        state_dir=tmp_path_factory.mktemp("engine"),
        partitions=2,
        options=engine_options,
    )
    service.start()
    yield service
    service.stop()
    assert service.failure is None


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def frontend(engine: EngineService) -> AsyncIterator[Frontend]:
    server = Frontend(engine, port=0)
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(frontend: Frontend, engine: EngineService) -> AsyncIterator[Client]:
    c = await Client.connect(frontend.url, namespace=engine.namespace)
    yield c
    await c.close()
