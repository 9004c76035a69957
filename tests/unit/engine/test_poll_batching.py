"""How the processor's ``_poll`` forms a batch: no wait for a lone command, a short wait for bunches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kronicle.engine.counter import CounterHandler
from kronicle.engine.processor import Processor, ProcessorConfig
from tests.engine_harness import counter_codec


class FakeConsumer:
    """Stands in for the confluent-kafka consumer: ``fetched`` records are there, ``arriving`` come during a wait."""

    def __init__(self) -> None:
        self.fetched: list[str] = []
        self.arriving: list[str] = []
        self.waits: list[float] = []

    def poll(self, timeout: float) -> str | None:
        if not self.fetched:
            return None
        return self.fetched.pop(0)

    def consume(self, num_messages: int, timeout: float) -> list[str]:
        if timeout > 0:
            self.waits.append(timeout)
            self.fetched.extend(self.arriving)
            self.arriving.clear()
        taken, self.fetched = self.fetched[:num_messages], self.fetched[num_messages:]
        return taken


@pytest.fixture
def processor(tmp_path: Path) -> Iterator[Any]:
    codec = counter_codec()
    config = ProcessorConfig("unused:9092", "ns", tmp_path, "e0", max_batch_ms=2.0, max_batch_records=10)
    proc = Processor(config, CounterHandler("ns.history", codec.encode), codec)
    proc._consumer = FakeConsumer()  # type: ignore[assignment]
    yield proc
    proc.store.close_all()


def test_a_lone_command_on_an_idle_engine_is_taken_without_waiting(processor: Any) -> None:
    consumer: FakeConsumer = processor._consumer
    consumer.fetched = ["a"]
    consumer.arriving = ["late"]
    assert processor._poll() == ["a"]
    assert consumer.waits == []


def test_commands_already_fetched_together_wait_max_batch_ms_for_more(processor: Any) -> None:
    consumer: FakeConsumer = processor._consumer
    consumer.fetched = ["a", "b"]
    consumer.arriving = ["c"]
    assert processor._poll() == ["a", "b", "c"]
    assert consumer.waits == [0.002]


def test_after_a_bunched_batch_even_a_lone_command_waits_for_company(processor: Any) -> None:
    consumer: FakeConsumer = processor._consumer
    consumer.fetched = ["a", "b"]
    processor._poll()
    consumer.fetched = ["c"]
    consumer.arriving = ["d"]
    assert processor._poll() == ["c", "d"]
    consumer.fetched = ["e"]
    assert processor._poll() == ["e"]
    consumer.fetched = ["f"]
    consumer.arriving = ["g"]
    assert processor._poll() == ["f"]
    assert consumer.waits == [0.002, 0.002, 0.002]


def test_a_batch_never_exceeds_max_batch_records(processor: Any) -> None:
    consumer: FakeConsumer = processor._consumer
    consumer.fetched = [str(i) for i in range(8)]
    consumer.arriving = [f"late{i}" for i in range(8)]
    batch = processor._poll()
    assert len(batch) == 10
    assert batch[:8] == [str(i) for i in range(8)]
