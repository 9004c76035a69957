"""The engine's transactional producer: every transaction call bounded, its errors classified and recovered.

librdkafka sorts transactional errors into three kinds (``KafkaError.retriable()``,
``txn_requires_abort()``, ``fatal()``), and Kafka Streams (``StreamsProducer``)
answers each in its own way; :class:`TransactionalProducer` does the same:

* **retriable** (a coordinator moved or is loading, a request timed out,
  ``commit_transaction`` ran out of time while the transaction coordinator was
  down) → the *same* call again, until ``retry_s`` has passed since the first
  attempt. A commit is never answered with an abort: once EndTxn(commit) may
  have reached the coordinator, only a commit or a new producer settles it;
* **abortable** (a produce failed for good, e.g. its message timed out while the
  partition had no leader; offsets rejected) → ``abort_transaction`` (retried
  the same way), then :class:`TransactionAborted`: nothing of the batch is
  visible, the caller rewinds to the batch's first offset;
* **fatal**, or an abort or commit that cannot complete in time → the producer
  is closed and a new one created with the *same* transactional id. Its
  ``init_transactions`` fences the old one and settles the transaction it
  left open (aborts it, or completes a commit the coordinator had already
  prepared), so the batch's outcome is decided but not known here:
  :class:`ProducerReplaced`, and the caller resynchronises its positions and
  state from Kafka. After ``max_replacements`` replacements in a row without a
  commit in between the producer gives up with :class:`TransactionRecoveryError`.

Fencing needs care. librdkafka reports ``PRODUCER_FENCED`` and
``INVALID_PRODUCER_EPOCH`` as the fatal ``_FENCED``, whether another live
process with the same transactional id called ``init_transactions`` (a real
zombie, which must stop: :class:`ProcessorFencedError`) or the transaction
coordinator itself aborted *our* transaction because it outlived
``transaction.timeout.ms`` and bumped the epoch (which happens when a broker
outage holds a batch up; replacing the producer is then the cure). The
coordinator can only time out a transaction that has been open for the
transaction timeout, so a fencing of a transaction younger than half of it,
which saw no retriable error before, is taken to be a real one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, Protocol, TypeVar, cast

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

__all__ = [
    "ProcessorFencedError",
    "ProducerReplaced",
    "TransactionAborted",
    "TransactionRecoveryError",
    "TransactionalProducer",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_FENCED = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})
_RETRY_PAUSE_S = 0.1


class ProcessorFencedError(RuntimeError):
    """Another producer with this instance's transactional id took over: stop this process."""


class TransactionRecoveryError(RuntimeError):
    """The transactional producer could not be brought back: the process must stop (and be restarted)."""


class TransactionAborted(Exception):
    """The batch's transaction was aborted: none of its records or offsets are visible."""


class ProducerReplaced(Exception):
    """The producer was re-created; the batch's transaction is settled, committed or aborted, unknown which."""


class _Fatal(Exception):
    """The producer must be replaced (internal)."""


class ProducerLike(Protocol):
    """The part of :class:`confluent_kafka.Producer` this module uses (a fake stands in for it in unit tests)."""

    def init_transactions(self, timeout: float) -> None: ...
    def begin_transaction(self) -> None: ...
    def send_offsets_to_transaction(self, positions: list[TopicPartition], metadata: Any, timeout: float) -> None: ...
    def commit_transaction(self, timeout: float) -> None: ...
    def abort_transaction(self, timeout: float) -> None: ...
    def produce(self, topic: str, value: bytes | None, key: bytes | None, **kwargs: Any) -> None: ...
    def poll(self, timeout: float) -> int: ...
    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None: ...
    def flush(self, timeout: float) -> int: ...


def _error(exc: KafkaException) -> KafkaError:
    err = exc.args[0] if exc.args else None
    if isinstance(err, KafkaError):
        return err
    return KafkaError(KafkaError._FAIL, str(exc))


def _new_producer(config: dict[str, Any]) -> ProducerLike:
    # The stubs type produce()'s arguments more narrowly than the call sites need.
    return cast(ProducerLike, Producer(config))


def _fatal(err: KafkaError) -> bool:
    return bool(err.fatal()) or err.code() in (KafkaError._FATAL, *_FENCED)


class TransactionalProducer:
    """One transactional producer that survives broker failures (see the module docstring).

    Args:
        config: librdkafka settings, including ``transactional.id``.
        transaction_timeout_ms: The producer's ``transaction.timeout.ms`` (for telling
            self-inflicted fencing from a real one).
        retry_s: How long one transactional call is retried while its error is retriable.
        max_replacements: Replacements in a row (without a commit between) before giving up.
        factory: Creates the client (a fake in unit tests).
        on_event: Called with ``"retried"``, ``"aborted"``, ``"replaced"`` or ``"fenced"``
            (the processor counts them in a metric).
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        transaction_timeout_ms: int,
        retry_s: float = 30.0,
        max_replacements: int = 5,
        factory: Callable[[dict[str, Any]], ProducerLike] | None = None,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self._config = dict(config)
        self.transactional_id = str(self._config["transactional.id"])
        self._txn_timeout_s = transaction_timeout_ms / 1000
        self._retry_s = retry_s
        self._max_replacements = max_replacements
        self._factory: Callable[[dict[str, Any]], ProducerLike] = factory or _new_producer
        self._on_event = on_event
        self._producer: ProducerLike | None = None
        self._began = 0.0
        self._troubled = False
        """The open transaction already met a retriable error (a broker was unwell)."""
        self.replacements = 0
        """Replacements since the last commit."""

    # -- lifecycle -----------------------------------------------------

    def start(self) -> None:
        """Create the client and initialise transactions (fencing a predecessor with the same id)."""
        self._producer = self._factory(dict(self._config))
        try:
            self._retrying("init_transactions", self._client.init_transactions)
        except (KafkaException, _Fatal) as exc:
            raise TransactionRecoveryError(
                f"init_transactions for {self.transactional_id} failed: {exc}; check that the brokers are "
                "reachable and allow transactions (transaction.state.log.* settings)"
            ) from exc

    def close(self) -> None:
        """Drop the client without waiting for anything (an open transaction is aborted by its successor)."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.purge(in_queue=True, in_flight=True, blocking=False)
            producer.flush(0)
        except (KafkaException, RuntimeError) as exc:
            log.debug("dropping producer %s: %s", self.transactional_id, exc)

    @property
    def _client(self) -> ProducerLike:
        if self._producer is None:
            raise RuntimeError("the transactional producer is not started")
        return self._producer

    # -- one transaction -------------------------------------------------

    def begin(self) -> None:
        """Begin a transaction. Raises :class:`ProducerReplaced` if the producer had to be replaced first."""
        self._began = time.monotonic()
        self._troubled = False
        try:
            self._client.begin_transaction()
        except KafkaException as exc:
            self._recover(_error(exc), "begin_transaction")

    def produce(self, topic: str, key: bytes | None, value: bytes | None, **kwargs: Any) -> None:
        """Produce into the open transaction, waiting for queue space if the local queue is full."""
        while True:
            try:
                self._client.produce(topic, value, key, **kwargs)
                return
            except BufferError:
                self._client.poll(0.05)
            except KafkaException as exc:
                self._recover(_error(exc), "produce")

    def commit(self, offsets: list[TopicPartition], group_metadata: Any) -> None:
        """Add the consumed offsets and commit.

        Raises:
            TransactionAborted: The transaction was aborted; nothing of it is visible.
            ProducerReplaced: The producer was re-created; the outcome is unknown.
            ProcessorFencedError: Another live instance took over the transactional id.
            TransactionRecoveryError: Recovery failed too often in a row.
        """
        client = self._client
        try:
            if offsets:
                self._retrying(
                    "send_offsets_to_transaction",
                    lambda t: client.send_offsets_to_transaction(offsets, group_metadata, t),
                )
        except KafkaException as exc:
            self._recover(_error(exc), "send_offsets_to_transaction")
        except _Fatal as exc:
            self._recover(exc.args[0], "send_offsets_to_transaction")
        try:
            self._retrying("commit_transaction", client.commit_transaction)
        except KafkaException as exc:
            self._recover(_error(exc), "commit_transaction", committing=True)
        except _Fatal as exc:
            self._recover(exc.args[0], "commit_transaction", committing=True)
        self.replacements = 0

    def abandon(self, exc: KafkaException, what: str) -> NoReturn:
        """Give up the open transaction because of an error outside the producer (abort, or replace)."""
        self._recover(_error(exc), what)

    def poll(self, timeout: float = 0) -> None:
        """Serve delivery reports."""
        self._client.poll(timeout)

    # -- recovery --------------------------------------------------------

    def _retrying(self, what: str, call: Callable[[float], _T]) -> _T:
        """``call(timeout)`` again while it fails retriably, for up to ``retry_s``.

        Raises the last :class:`KafkaException` if it is not retriable, or
        :class:`_Fatal` if it still fails retriably when the time is up.
        """
        deadline = time.monotonic() + self._retry_s
        attempts = 0
        while True:
            remaining = deadline - time.monotonic()
            try:
                return call(max(0.1, remaining))
            except KafkaException as exc:
                err = _error(exc)
                if not err.retriable() or _fatal(err):
                    raise
                attempts += 1
                self._troubled = True
                self._event("retried")
                if time.monotonic() >= deadline:
                    raise _Fatal(
                        KafkaError(
                            err.code(), f"{what} still failing after {attempts} attempts in {self._retry_s:.1f}s: {err}"
                        )
                    ) from exc
                log.info("%s: retriable error, trying again: %s", what, err)
                time.sleep(_RETRY_PAUSE_S)

    def _recover(self, err: KafkaError, what: str, *, committing: bool = False) -> NoReturn:
        """Abort or replace after ``err``; always raises."""
        # A commit that failed retriably may have reached the coordinator: only a new
        # producer settles it. An abortable error means it did not (librdkafka says so).
        if not _fatal(err) and (not committing or err.txn_requires_abort()):
            log.warning("transaction failed in %s, aborting: %s", what, err)
            try:
                self._retrying("abort_transaction", self._client.abort_transaction)
            except KafkaException as exc:
                err, what = _error(exc), "abort_transaction"
            except _Fatal as exc:
                err, what = exc.args[0], "abort_transaction"
            else:
                self._event("aborted")
                raise TransactionAborted(str(err))
        if err.code() in _FENCED and not self._self_inflicted():
            self._event("fenced")
            raise ProcessorFencedError(
                f"transactional id {self.transactional_id} was fenced in {what} ({err}): another process with "
                "the same instance id is running; stopping this one"
            )
        self._replace(err, what)

    def _self_inflicted(self) -> bool:
        """Whether a fencing can be the coordinator timing out our own transaction (see the module docstring)."""
        return self._troubled or time.monotonic() - self._began >= self._txn_timeout_s / 2

    def _replace(self, err: KafkaError, what: str) -> NoReturn:
        while True:
            self.replacements += 1
            if self.replacements > self._max_replacements:
                raise TransactionRecoveryError(
                    f"the transactional producer {self.transactional_id} failed {self._max_replacements} times in a "
                    f"row without a commit in between (last: {what}: {err}); check the brokers' health and logs"
                )
            log.warning(
                "replacing the transactional producer %s (%d of at most %d in a row) after %s failed: %s",
                self.transactional_id,
                self.replacements,
                self._max_replacements,
                what,
                err,
            )
            self._event("replaced")
            self.close()
            try:
                self.start()
            except TransactionRecoveryError as exc:
                err, what = KafkaError(KafkaError._FAIL, str(exc)), "init_transactions"
                continue
            raise ProducerReplaced(f"{what}: {err}")

    def _event(self, kind: str) -> None:
        if self._on_event is not None:
            self._on_event(kind)
