"""The worker's producer: records of one pass of the event loop go to Kafka together, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from kronicle.worker._kafka import CommandProducer
from tests.kafka_helpers import drain


async def test_records_of_one_loop_pass_arrive_in_order_on_their_partitions(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    commands, replies = topic_factory("cmd", partitions=4), topic_factory("reply")
    producer = CommandProducer({"bootstrap.servers": kafka_bootstrap})
    try:
        for i in range(60):  # one pass: nothing is awaited in between
            producer.produce(commands, f"wf-{i % 6}".encode(), f"{i}".encode())
        producer.produce(replies, None, b"answer")
        assert producer._pending, "records wait for the end of the pass"
        await asyncio.sleep(0)
        assert not producer._pending, "the next pass of the loop hands them to librdkafka"
        for i in range(60, 66):  # the next pass
            producer.produce(commands, f"wf-{i % 6}".encode(), f"{i}".encode())
    finally:
        await producer.close()
    assert producer.failed == 0
    got = drain(kafka_bootstrap, commands, expect=66)
    by_key: dict[bytes, list[int]] = {}
    partitions: dict[bytes, set[int]] = {}
    for msg in got:
        key = msg.key() or b""
        by_key.setdefault(key, []).append(int(msg.value() or b"-1"))
        partitions.setdefault(key, set()).add(msg.partition() or 0)
    assert {k: v for k, v in by_key.items()} == {f"wf-{k}".encode(): list(range(k, 66, 6)) for k in range(6)}, (
        "every record once, in the order produced per workflow"
    )
    assert all(len(p) == 1 for p in partitions.values())
    assert [m.value() for m in drain(kafka_bootstrap, replies, expect=1)] == [b"answer"]


async def test_off_the_loop_a_record_goes_to_librdkafka_at_once(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("cmd")
    producer = CommandProducer({"bootstrap.servers": kafka_bootstrap})
    try:
        await asyncio.to_thread(producer.produce, topic, b"k", b"from a thread")
        assert not producer._pending
    finally:
        await producer.close()
    assert [m.value() for m in drain(kafka_bootstrap, topic, expect=1)] == [b"from a thread"]


async def test_a_topic_that_cannot_take_records_does_not_cost_the_others_theirs(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("cmd")
    producer = CommandProducer({"bootstrap.servers": kafka_bootstrap})
    try:
        producer.produce("", b"k", b"nowhere")  # no such topic name: librdkafka refuses it
        producer.produce(topic, b"k", b"kept")
        await asyncio.sleep(0)
    finally:
        await producer.close()
    assert producer.failed == 1
    assert [m.value() for m in drain(kafka_bootstrap, topic, expect=1)] == [b"kept"]
