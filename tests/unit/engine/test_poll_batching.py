"""How the processor's ``_poll`` forms a batch: no wait for a lone command on an idle engine, a short one when busy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kronicle.engine.counter import CounterHandler
from kronicle.engine.processor import Processor, ProcessorConfig
from tests.engine_harness import counter_codec


class FakeConsumer:
    """Stands in for the confluent-kafka consumer.

    ``fetched`` records are there already; ``incoming`` ones arrive while ``poll`` blocks
    (the first is returned, the rest are fetched with it); ``arriving`` ones come during a
    ``consume`` that waits.
    """

    def __init__(self) -> None:
        self.fetched: list[str] = []
        self.incoming: list[str] = []
        self.arriving: list[str] = []
        self.waits: list[float] = []

    def poll(self, timeout: float) -> str | None:
        if not self.fetched:
            self.fetched, self.incoming = self.incoming, []
        return self.fetched.pop(0) if self.fetched else None

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


def test_a_lone_command_reaching_an_idle_engine_is_taken_without_waiting(processor: Any) -> None:
    consumer: FakeConsumer = processor._consumer
    consumer.incoming = ["a"]
    consumer.arriving = ["late"]
    assert processor._poll() == ["a"]
    assert consumer.waits == []


def test_nothing_arriving_returns_an_empty_batch(processor: Any) -> None:
    assert processor._poll() == []
    assert processor._consumer.waits == []


def test_a_command_already_waiting_after_a_commit_waits_max_batch_ms_for_company(processor: Any) -> None:
    consumer: FakeConsumer = processor._consumer
    consumer.fetched = ["a"]
    consumer.arriving = ["b"]
    assert processor._poll() == ["a", "b"]
    assert consumer.waits == [0.002]


def test_commands_arriving_together_at_an_idle_engine_wait_max_batch_ms_for_more(processor: Any) -> None:
    consumer: FakeConsumer = processor._consumer
    consumer.incoming = ["a", "b"]
    consumer.arriving = ["c"]
    assert processor._poll() == ["a", "b", "c"]
    assert consumer.waits == [0.002]


def test_a_full_batch_does_not_wait(processor: Any) -> None:
    consumer: FakeConsumer = processor._consumer
    consumer.fetched = [str(i) for i in range(12)]
    assert processor._poll() == [str(i) for i in range(10)]
    assert consumer.waits == []


def test_a_batch_never_exceeds_max_batch_records(processor: Any) -> None:
    consumer: FakeConsumer = processor._consumer
    consumer.incoming = [str(i) for i in range(8)]
    consumer.arriving = [f"late{i}" for i in range(8)]
    batch = processor._poll()
    assert batch == [*(str(i) for i in range(8)), "late0", "late1"]
