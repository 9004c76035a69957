"""The transactional producer's error ladder: retry, abort, replace, or stop, per librdkafka's error class.

A fake client stands in for confluent-kafka here (no Kafka in unit tests); the
same paths run against real brokers in tests/integration/engine/test_processor.py
and tests/chaos/test_broker_kill.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from kronicle.engine import _transactions
from kronicle.engine._transactions import (
    ProcessorFencedError,
    ProducerReplaced,
    TransactionAborted,
    TransactionalProducer,
    TransactionRecoveryError,
)

Script = dict[str, list[KafkaError]]


def retriable(code: int = KafkaError._TIMED_OUT) -> KafkaError:
    return KafkaError(code, "retriable", retriable=True)


def abortable(code: int = KafkaError._MSG_TIMED_OUT) -> KafkaError:
    return KafkaError(code, "abortable", txn_requires_abort=True)


def fatal(code: int) -> KafkaError:
    return KafkaError(code, "fatal", fatal=True)


class FakeClient:
    """Records calls; each method fails with the next scripted error for it, then succeeds."""

    def __init__(self, script: Script, calls: list[str]) -> None:
        self.script = script
        self.calls = calls

    def _call(self, name: str) -> None:
        self.calls.append(name)
        errors = self.script.get(name)
        if errors:
            raise KafkaException(errors.pop(0))

    def init_transactions(self, timeout: float) -> None:
        self._call("init")

    def begin_transaction(self) -> None:
        self._call("begin")

    def send_offsets_to_transaction(self, positions: list[TopicPartition], metadata: Any, timeout: float) -> None:
        self._call("offsets")

    def commit_transaction(self, timeout: float) -> None:
        self._call("commit")

    def abort_transaction(self, timeout: float) -> None:
        self._call("abort")

    def produce(self, topic: str, value: bytes | None, key: bytes | None, **kwargs: Any) -> None:
        self._call("produce")

    def poll(self, timeout: float) -> int:
        return 0

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        self.calls.append("purge")

    def flush(self, timeout: float) -> int:
        return 0


class Harness:
    def __init__(self, script: Script, *, retry_s: float = 5.0, max_replacements: int = 3) -> None:
        self.calls: list[str] = []
        self.events: list[str] = []
        self.clients = 0

        def factory(config: dict[str, Any]) -> FakeClient:
            assert config["transactional.id"] == "tx"
            self.clients += 1
            return FakeClient(script, self.calls)

        self.producer = TransactionalProducer(
            {"transactional.id": "tx"},
            transaction_timeout_ms=10_000,
            retry_s=retry_s,
            max_replacements=max_replacements,
            factory=factory,
            on_event=self.events.append,
        )
        self.producer.start()
        self.calls.clear()

    def transaction(self) -> None:
        self.producer.begin()
        self.producer.produce("t", b"k", b"v")
        self.producer.commit([TopicPartition("c", 0, 5)], object())


@pytest.fixture(autouse=True)
def no_retry_pause(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_transactions, "_RETRY_PAUSE_S", 0.0)
    yield


def test_a_clean_transaction_is_begin_produce_offsets_commit() -> None:
    h = Harness({})
    h.transaction()
    assert h.calls == ["begin", "produce", "offsets", "commit"]
    assert h.events == []


def test_a_retriable_commit_is_retried_not_aborted() -> None:
    h = Harness({"commit": [retriable(), retriable(KafkaError.COORDINATOR_NOT_AVAILABLE)]})
    h.transaction()
    assert h.calls == ["begin", "produce", "offsets", "commit", "commit", "commit"]
    assert h.events == ["retried", "retried"]


def test_a_retriable_send_offsets_is_retried() -> None:
    h = Harness({"offsets": [retriable()]})
    h.transaction()
    assert h.calls.count("offsets") == 2 and "abort" not in h.calls


def test_an_abortable_error_aborts_and_reports_the_abort() -> None:
    h = Harness({"offsets": [abortable()]})
    with pytest.raises(TransactionAborted):
        h.transaction()
    assert h.calls == ["begin", "produce", "offsets", "abort"]
    assert h.events == ["aborted"]
    assert h.clients == 1


def test_an_abortable_commit_error_aborts() -> None:
    h = Harness({"commit": [abortable()]})
    with pytest.raises(TransactionAborted):
        h.transaction()
    assert h.calls[-2:] == ["commit", "abort"]


def test_a_retriable_abort_is_retried() -> None:
    h = Harness({"offsets": [abortable()], "abort": [retriable()]})
    with pytest.raises(TransactionAborted):
        h.transaction()
    assert h.calls.count("abort") == 2


def test_a_commit_that_keeps_timing_out_replaces_the_producer_instead_of_aborting() -> None:
    h = Harness({"commit": [retriable()] * 1000}, retry_s=0.05)
    with pytest.raises(ProducerReplaced):
        h.transaction()
    assert "abort" not in h.calls, "an abort after a commit may have reached the coordinator is not allowed"
    assert h.clients == 2 and h.calls[-1] == "init"
    assert h.events[-1] == "replaced"


@pytest.mark.parametrize("code", [KafkaError.INVALID_TXN_STATE, KafkaError._FATAL])
def test_a_fatal_error_replaces_the_producer(code: int) -> None:
    h = Harness({"commit": [fatal(code)]})
    with pytest.raises(ProducerReplaced):
        h.transaction()
    assert h.clients == 2
    assert h.calls[-2:] == ["purge", "init"]


def test_an_abort_that_fails_fatally_replaces_the_producer() -> None:
    h = Harness({"offsets": [abortable()], "abort": [fatal(KafkaError.INVALID_TXN_STATE)]})
    with pytest.raises(ProducerReplaced):
        h.transaction()
    assert h.clients == 2


def test_fencing_of_a_fresh_healthy_transaction_is_a_real_fencing() -> None:
    h = Harness({"offsets": [fatal(KafkaError._FENCED)]})
    with pytest.raises(ProcessorFencedError, match="another process with the same instance id"):
        h.transaction()
    assert h.clients == 1
    assert h.events == ["fenced"]


def test_fencing_after_retriable_errors_is_the_coordinator_timing_us_out_and_replaces() -> None:
    h = Harness({"commit": [retriable(), fatal(KafkaError._FENCED)]})
    with pytest.raises(ProducerReplaced):
        h.transaction()
    assert h.events == ["retried", "replaced"]


def test_fencing_of_a_transaction_older_than_half_the_timeout_replaces(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness({"commit": [fatal(KafkaError._FENCED)]})
    h.producer.begin()
    real = time.monotonic
    monkeypatch.setattr(_transactions.time, "monotonic", lambda: real() + 6.0)
    with pytest.raises(ProducerReplaced):
        h.producer.commit([], object())


def test_a_produce_into_a_failed_transaction_aborts() -> None:
    h = Harness({"produce": [KafkaError(KafkaError._STATE, "Operation not valid in state AbortableError")]})
    with pytest.raises(TransactionAborted):
        h.transaction()


def test_a_commit_after_a_replacement_resets_the_count() -> None:
    h = Harness({"commit": [fatal(KafkaError.INVALID_TXN_STATE)]}, max_replacements=1)
    with pytest.raises(ProducerReplaced):
        h.transaction()
    assert h.producer.replacements == 1
    h.transaction()
    assert h.producer.replacements == 0


def test_too_many_replacements_in_a_row_give_up_with_a_clear_error() -> None:
    h = Harness({"commit": [fatal(KafkaError.INVALID_TXN_STATE)] * 3}, max_replacements=2)
    for _ in range(2):
        with pytest.raises(ProducerReplaced):
            h.transaction()
    with pytest.raises(TransactionRecoveryError, match="2 times in a row"):
        h.transaction()


def test_init_transactions_that_keeps_failing_gives_up() -> None:
    script: Script = {"commit": [fatal(KafkaError.INVALID_TXN_STATE)]}
    h = Harness(script, retry_s=0.02)
    script["init"] = [retriable()] * 100_000
    with pytest.raises(TransactionRecoveryError, match="init_transactions"):
        h.transaction()


def test_buffer_full_waits_for_room() -> None:
    h = Harness({})
    client: Any = h.producer._client
    full = [True, True]
    original: Callable[..., None] = client.produce

    def produce(*args: Any, **kwargs: Any) -> None:
        if full:
            full.pop()
            raise BufferError("queue full")
        original(*args, **kwargs)

    client.produce = produce
    h.transaction()
    assert h.calls.count("produce") == 1


def test_abandoning_a_transaction_for_an_outside_error_aborts_it() -> None:
    h = Harness({})
    h.producer.begin()
    with pytest.raises(TransactionAborted):
        h.producer.abandon(KafkaException(KafkaError(KafkaError._STATE, "consumer closed")), "position")
    assert h.calls == ["begin", "abort"]
