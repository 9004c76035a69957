"""Fixtures shared by the worker's integration tests: one engine per module, a fresh task queue per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from kronicle.engine.service import EngineService


@pytest.fixture(scope="module")
def engine(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineService]:
    service = EngineService(
        kafka_bootstrap, f"wk{uuid.uuid4().hex[:8]}", state_dir=tmp_path_factory.mktemp("state"), partitions=2
    )
    service.start()
    yield service
    service.stop()
    assert service.failure is None


@pytest.fixture
def queue(engine: EngineService) -> str:
    name = f"q{uuid.uuid4().hex[:8]}"
    engine.ensure_task_queue(name)
    return name
