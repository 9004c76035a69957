"""The 3-broker cluster survives the loss of any one broker (RF 3, min.insync.replicas 2)."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer

from kronicle.connectors.local_kafka import LocalCluster
from tests.kafka_helpers import create_topics, drain


@pytest.mark.cluster3
def test_acks_all_writes_survive_a_killed_broker(kafka_cluster3: LocalCluster) -> None:
    bootstrap = kafka_cluster3.bootstrap_servers
    topic = f"ha-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, {topic: 3}, replication_factor=3)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(50):
        producer.produce(topic, key=str(i).encode(), value=f"before-{i}".encode())
    assert producer.flush(30) == 0

    victim = kafka_cluster3.node_ids()[0]
    kafka_cluster3.kill(victim)
    assert not kafka_cluster3.is_running(victim)
    for i in range(50):
        producer.produce(topic, key=str(i).encode(), value=f"during-{i}".encode())
    assert producer.flush(60) == 0

    kafka_cluster3.restart(victim)
    assert kafka_cluster3.is_running(victim)
    values = {m.value() for m in drain(bootstrap, topic, expect=100, timeout=60)}
    assert len(values) == 100
