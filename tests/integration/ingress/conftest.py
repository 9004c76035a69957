"""A real engine, a frontend over it (the schema registry endpoint) and a client, shared per test module."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from kronicle.client import Client
from kronicle.connectors.frontend import Frontend
from kronicle.engine.service import EngineService


@pytest.fixture(scope="module")
def engine(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineService]:
    service = EngineService(
        kafka_bootstrap, f"in{uuid.uuid4().hex[:8]}", state_dir=tmp_path_factory.mktemp("engine"), partitions=2
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


def new_id(prefix: str = "wf") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
