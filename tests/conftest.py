"""Shared fixtures: a real Kafka broker for the session, a 3-broker cluster on demand.

Set ``KRONICLE_TEST_KAFKA=host:port`` to run the suite against a broker you
started yourself instead of the one the session starts.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from kronicle.connectors.local_kafka import LocalBroker, LocalCluster
from tests.kafka_helpers import create_topics


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a single real broker shared by the whole session."""
    external = os.environ.get("KRONICLE_TEST_KAFKA")
    if external:
        yield external
        return
    with LocalBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def kafka_cluster3() -> Iterator[LocalCluster]:
    """A 3-broker cluster (RF 3, min.insync.replicas 2); started only if a test asks."""
    with LocalCluster(3) as cluster:
        yield cluster


@pytest.fixture
def topic_factory(kafka_bootstrap: str) -> Callable[..., str]:
    """Create a uniquely named topic on the session broker; returns its name."""

    def make(prefix: str = "t", partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        create_topics(kafka_bootstrap, {name: partitions}, config=config)
        return name

    return make
