"""The broker is real and honours transactions: the guarantees the engine is built on."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from tests.kafka_helpers import consumer, drain


def _producer(bootstrap: str, transactional_id: str | None = None) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": transactional_id or f"test-{uuid.uuid4()}",
            "transaction.timeout.ms": 10_000,
        }
    )


def _produce_plain(bootstrap: str, topic: str, values: list[bytes]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for v in values:
        p.produce(topic, value=v)
    assert p.flush(30) == 0


def test_consume_transform_produce_commits_output_and_offsets_atomically(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    source, sink = topic_factory("src"), topic_factory("sink")
    _produce_plain(kafka_bootstrap, source, [f"n{i}".encode() for i in range(20)])
    group = f"ctp-{uuid.uuid4().hex[:8]}"

    def run_once(limit: int, commit: bool) -> int:
        c = consumer(kafka_bootstrap, **{"group.id": group})
        p = _producer(kafka_bootstrap, transactional_id=f"ctp-{group}")
        p.init_transactions(30)
        c.subscribe([source])
        seen = 0
        try:
            p.begin_transaction()
            while seen < limit:
                msg = c.poll(1.0)
                if msg is None or msg.error():
                    continue
                p.produce(sink, value=msg.value().upper())
                seen += 1
            p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
            if commit:
                p.commit_transaction(30)
            else:
                p.abort_transaction(30)
        finally:
            c.close()
        return seen

    # A first pass that aborts after 10 records leaves neither output nor offsets behind.
    run_once(10, commit=False)
    # The retry starts over from offset 0 and commits everything exactly once.
    run_once(20, commit=True)

    out = sorted(m.value() for m in drain(kafka_bootstrap, sink, expect=20))
    assert out == sorted(f"N{i}".encode() for i in range(20))
    assert len(drain(kafka_bootstrap, sink, timeout=5)) == 20  # and nothing more arrives

    check = consumer(kafka_bootstrap, **{"group.id": group})
    committed = check.committed([TopicPartition(source, 0)], timeout=10)
    check.close()
    assert committed[0].offset == 20


def test_aborted_transaction_is_invisible_to_read_committed(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("abort")
    p = _producer(kafka_bootstrap)
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(topic, value=b"aborted")
    p.flush(30)
    p.abort_transaction(30)
    p.begin_transaction()
    p.produce(topic, value=b"committed")
    p.commit_transaction(30)

    committed_view = [m.value() for m in drain(kafka_bootstrap, topic, expect=1)]
    uncommitted_view = [m.value() for m in drain(kafka_bootstrap, topic, expect=2, read_committed=False)]
    assert committed_view == [b"committed"]
    assert uncommitted_view == [b"aborted", b"committed"]


def test_second_producer_with_same_transactional_id_fences_the_first(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("fence")
    tid = f"fence-{uuid.uuid4()}"
    old = _producer(kafka_bootstrap, tid)
    old.init_transactions(30)
    old.begin_transaction()
    old.produce(topic, value=b"zombie")
    old.flush(30)

    new = _producer(kafka_bootstrap, tid)
    new.init_transactions(30)  # bumps the epoch and aborts the old open transaction

    with pytest.raises(KafkaException) as info:
        old.produce(topic, value=b"zombie-2")
        old.commit_transaction(30)
    assert info.value.args[0].code() in {
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
    }

    new.begin_transaction()
    new.produce(topic, value=b"live")
    new.commit_transaction(30)
    assert [m.value() for m in drain(kafka_bootstrap, topic, expect=1)] == [b"live"]
