"""confluent-kafka from asyncio: a polling thread per consumer, a polling thread for the producer.

confluent-kafka's calls block, so none of them runs on the worker's event
loop. A :class:`TaskConsumer` polls in its own thread and hands the records
to the loop in batches; it takes no more records than it has free slots (the
worker's concurrency limit), so a busy worker stops taking tasks instead of
queueing them in memory. A :class:`CommandProducer` produces (which only enqueues) from
the loop and serves delivery reports in its own thread.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

__all__ = ["CommandProducer", "TaskConsumer"]

_log = logging.getLogger("kronicle.worker")


def _tp(msg: Message) -> tuple[str, int]:
    return (msg.topic() or "", msg.partition() or 0)


def _offset(msg: Message) -> int:
    offset = msg.offset()
    return -1 if offset is None else offset


class TaskConsumer:
    """Polls one consumer in a thread and runs ``handler`` on the loop for each record.

    The polling thread takes every record already fetched (up to the free slots) in one go
    and hands the batch to the loop with one wake-up; slots are counted under a plain lock, so
    neither side waits for the other per record.

    Args:
        name: For the thread name and logs.
        config: confluent-kafka consumer configuration.
        loop: The worker's event loop.
        handler: Awaited for each record; it runs as its own task while it holds a slot.
        slots: How many handlers may run at once; no record is taken from Kafka without a free slot.
        topics: Topics to subscribe to (consumer group), or
        assignment: Partitions to assign (no group).
        store_after_handling: Mark a record consumed only once its handler is done (and every
            earlier record of its partition too), so the records a dead worker had taken are
            delivered again after the rebalance. Needs ``enable.auto.offset.store=false``.
        max_batch: The most records handed to the loop at once.
    """

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
        handler: Callable[[Message], Awaitable[None]],
        slots: int,
        *,
        topics: list[str] | None = None,
        assignment: list[TopicPartition] | None = None,
        store_after_handling: bool = False,
        max_batch: int = 500,
    ) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self._name = name
        self._store_after = store_after_handling
        self._in_flight: dict[tuple[str, int], set[int]] = {}
        self._done_up_to: dict[tuple[str, int], int] = {}
        self._to_store: queue.SimpleQueue[TopicPartition] = queue.SimpleQueue()
        self._consumer = Consumer(config)
        self._loop = loop
        self._handler = handler
        self._max_batch = max_batch
        self._free = slots
        self._free_lock = threading.Lock()
        self._room = threading.Event()
        self._room.set()
        self._admitting = 0
        """Batches handed to the loop that it has not turned into tasks yet."""
        self._stop = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        if topics:
            self._consumer.subscribe(topics)
        if assignment:
            self._consumer.assign(assignment)
        self._thread = threading.Thread(target=self._run, name=f"kronicle-{name}", daemon=True)

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    @property
    def in_flight(self) -> set[asyncio.Task[None]]:
        """Handler tasks still running."""
        return self._tasks

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._store_pending()
                if not self._room.wait(0.1):
                    continue
                batch = self._take()
                if not batch:
                    continue
                with self._free_lock:
                    self._free -= len(batch)
                    self._admitting += 1
                    if self._free <= 0:
                        self._room.clear()
                try:
                    self._loop.call_soon_threadsafe(self._admit, batch)
                except RuntimeError:  # the loop is closed: nobody will handle these
                    self._admitting -= 1
                    break
        except Exception:  # noqa: BLE001 - a dead poller must say so, the worker keeps shutting down cleanly
            _log.exception("%s: polling thread failed", self._name)
        finally:
            if self._store_after:
                # Let running handlers finish so their offsets are committed by close().
                # A batch handed over just before the stop counts too: its records will be handled, and
                # their offsets must be stored before close() commits, or the next owner gets them again.
                deadline = time.monotonic() + 10
                while (self._tasks or self._admitting) and time.monotonic() < deadline:
                    time.sleep(0.02)
                self._store_pending()
            # Closing leaves the group at once, so another worker takes the partitions without waiting
            # for a session timeout.
            self._consumer.close()

    def _take(self) -> list[Message]:
        """Wait up to 0.1 s for a record, then take whatever else is already fetched (up to the free slots)."""
        first = self._consumer.poll(0.1)
        if first is None:
            return []
        with self._free_lock:
            room = min(self._free, self._max_batch)
        # consume() with a timeout waits until the batch is full; with none it returns what is there.
        more = self._consumer.consume(num_messages=room - 1, timeout=0) if room > 1 else []
        batch: list[Message] = []
        for msg in (first, *more):
            err = msg.error()
            if err is None:
                batch.append(msg)
            elif err.code() not in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                _log.warning("%s: consumer error: %s", self._name, err)
        return batch

    def _admit(self, batch: list[Message]) -> None:
        with self._free_lock:
            self._admitting -= 1
        for msg in batch:
            if self._store_after:
                self._in_flight.setdefault(_tp(msg), set()).add(_offset(msg))
            task = self._loop.create_task(self._handle(msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _release(self) -> None:
        with self._free_lock:
            self._free += 1
            self._room.set()

    def try_acquire(self) -> bool:
        """Take a slot for work that did not come from this consumer (give it back with :meth:`release`)."""
        with self._free_lock:
            if self._free <= 0:
                return False
            self._free -= 1
            if self._free <= 0:
                self._room.clear()
            return True

    def release(self) -> None:
        """Give back a slot taken with :meth:`try_acquire`."""
        self._release()

    async def _handle(self, msg: Message) -> None:
        try:
            await self._handler(msg)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one bad record must not stop the worker
            _log.exception("%s: handling a record failed", self._name)
        finally:
            self._release()
            if self._store_after:
                self._mark_done(msg)

    def _mark_done(self, msg: Message) -> None:
        tp = _tp(msg)
        pending = self._in_flight.get(tp, set())
        pending.discard(_offset(msg))
        self._done_up_to[tp] = max(self._done_up_to.get(tp, -1), _offset(msg))
        # Everything below the oldest record still being handled is done (records of a partition
        # are admitted in offset order); with none in flight, everything admitted is.
        next_offset = min(pending) if pending else self._done_up_to[tp] + 1
        # The consumer is only ever called from the polling thread, which stores these between polls.
        self._to_store.put(TopicPartition(tp[0], tp[1], next_offset))

    def _store_pending(self) -> None:
        offsets: dict[tuple[str, int], TopicPartition] = {}
        while True:
            try:
                tp = self._to_store.get_nowait()
            except queue.Empty:
                break
            offsets[(tp.topic, tp.partition)] = tp
        if not offsets:
            return
        try:
            self._consumer.store_offsets(offsets=list(offsets.values()))
        except KafkaException as err:  # e.g. the partition was revoked meanwhile: its new owner redelivers
            _log.debug("%s: could not store offsets %s: %s", self._name, list(offsets.values()), err)

    async def stop(self) -> None:
        """Stop polling and close the consumer (handlers already running continue)."""
        self._stop.set()
        if self._thread.is_alive():
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)


class CommandProducer:
    """An idempotent producer whose delivery reports are served by a background thread.

    Records produced from the event loop are handed to librdkafka together at the end of the
    loop's current pass (``produce_batch``, one call per topic): at saturation a pass answers a
    whole batch of tasks, and each ``produce()`` of an idle producer (``linger.ms`` 0) woke its
    broker thread and went out as a request of its own. Order per topic (and so per workflow)
    is kept; a record waits at most for the rest of the pass.

    Args:
        config: confluent-kafka producer configuration (idempotence and the partitioner are set here).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self._producer = Producer(
            {
                **config,
                "enable.idempotence": True,
                "partitioner": "murmur2_random",  # the Java client's placement, which the engine's topics use
                "linger.ms": 0,  # a workflow's every hop waits for this record: send at once
                # Only failures need a report: a Python call per delivered record (in the poll thread,
                # taking the GIL from the loop) was the producer's largest cost.
                "on_delivery": self._on_delivery,
                "delivery.report.only.error": True,
            }
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kronicle-worker-producer", daemon=True)
        self._thread.start()
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._flush_at_end_of_pass: asyncio.Handle | None = None
        self.failed = 0
        """Records the broker did not accept (logged)."""

    def _run(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            _log.error("Could not deliver a record to %s: %s", msg.topic(), err)

    def produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Enqueue one record (never blocks for long: a full queue waits for deliveries).

        On the event loop the record joins the others of this pass of the loop; elsewhere it goes
        to librdkafka at once.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._produce_now(topic, key, value)
            return
        pending = self._pending.get(topic)
        if pending is None:
            pending = self._pending[topic] = []
        pending.append({"key": key, "value": value})
        if self._flush_at_end_of_pass is None:
            self._flush_at_end_of_pass = loop.call_soon(self.flush_pending)

    def flush_pending(self) -> None:
        """Hand the records waiting for the end of the loop's pass to librdkafka."""
        self._flush_at_end_of_pass = None
        pending, self._pending = self._pending, {}
        for topic, records in pending.items():
            batch = records
            while batch:
                try:
                    self._producer.produce_batch(topic, batch)
                except BufferError:
                    retry = batch
                except Exception as exc:  # noqa: BLE001 - one topic's failure must not drop the other topics' records
                    self.failed += len(batch)
                    _log.error("Could not produce %d records to %s: %s", len(batch), topic, exc)
                    break
                else:
                    # produce_batch marks each record it could not enqueue with "_error".
                    retry = []
                    for record in batch:
                        err = record.get("_error")
                        if err is None:
                            continue
                        if isinstance(err, KafkaError) and err.code() == KafkaError._QUEUE_FULL:
                            retry.append({"key": record["key"], "value": record["value"]})
                        else:
                            self.failed += 1
                            _log.error("Could not produce a record to %s: %s", topic, err)
                if retry:
                    self._producer.poll(0.05)  # the queue is full: let deliveries make room
                batch = retry

    def _produce_now(self, topic: str, key: bytes | None, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, key=key, value=value)
                return
            except BufferError:
                self._producer.poll(0.05)

    async def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds) and stop."""
        if self._flush_at_end_of_pass is not None:
            self._flush_at_end_of_pass.cancel()
        self.flush_pending()
        loop = asyncio.get_running_loop()
        remaining = await loop.run_in_executor(None, self._producer.flush, timeout)
        if remaining:
            _log.error("%d records were not delivered before the producer closed", remaining)
        self._stop.set()
        await loop.run_in_executor(None, self._thread.join)
