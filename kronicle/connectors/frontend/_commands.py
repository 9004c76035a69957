"""Producing client commands to the commands topic and waiting for the answers.

Kafka has no request/response, so every command names this frontend's own
reply topic in ``reply_to``. The engine answers there with a ``CommandResult``
after it applied the command (committed in its transaction), keyed by workflow
id; a worker answers a query there with a ``QueryResult``, and the engine
reports an update's stages there with ``UpdateResult``s. A consumer thread
reads the reply topic and hands each record to whoever waits for it:

- a ``CommandResult`` to the oldest caller waiting on (workflow id, request id)
  (for updates and queries the engine puts their update id / query id in
  ``request_id``, so a rejected one reaches its caller);
- a ``QueryResult`` to the subscribers of (workflow id, query id);
- an ``UpdateResult`` to every subscriber of (workflow id, update id).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from kronicle.topics import NamespaceTopics, TopicSpec, ensure_topics, partition_counts, partition_for

__all__ = ["CommandGateway", "CommandOutcome", "Reply"]

_log = logging.getLogger(__name__)

CommandOutcome = dict[str, Any]
"""A decoded ``kronicle.workflow.CommandResult`` datum."""

Reply = tuple[str, dict[str, Any]]
"""(schema full name, decoded datum) of a record on the reply topic."""

_RESULT = "kronicle.workflow.CommandResult"
_KIND_BY_SCHEMA = {"kronicle.workflow.QueryResult": "query", "kronicle.workflow.UpdateResult": "update"}
_ID_FIELD = {"query": "query_id", "update": "update_id"}

_REPLY_RETENTION_MS = 60 * 60 * 1000
_REPLY_BATCH = 500


class _Delivery:
    """Whether Kafka confirmed a produced command (set on the producer thread)."""

    __slots__ = ("confirmed",)

    def __init__(self) -> None:
        self.confirmed = False


class CommandGateway:
    """Sends commands keyed by workflow id to their partition and collects the engine's answers.

    Args:
        bootstrap_servers: Kafka bootstrap servers.
        topics: The namespace's topic names.
        encode: ``(schema full name, datum) -> Confluent-framed bytes``.
        decode: ``bytes -> (schema full name, datum)``.
        instance_id: Names this frontend's reply topic; unique per running frontend.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topics: NamespaceTopics,
        encode: Callable[[str, Any], bytes],
        decode: Callable[[bytes], tuple[str, Any]],
        *,
        instance_id: str | None = None,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._topics = topics
        self._encode = encode
        self._decode = decode
        self.reply_topic = f"{topics.prefix}.replies.{instance_id or uuid.uuid4().hex[:12]}"
        """This frontend's reply topic (created by :meth:`start`, deleted by :meth:`stop`)."""
        self._partitions = 0
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._waiting: dict[tuple[str, str], collections.deque[asyncio.Future[CommandOutcome]]] = {}
        self._subscribers: dict[tuple[str, str, str], list[asyncio.Queue[Reply]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def partitions(self) -> int:
        """Partition count of the namespace's commands topic (known after :meth:`start`)."""
        return self._partitions

    @property
    def ready(self) -> bool:
        """Whether :meth:`start` finished and :meth:`stop` has not begun."""
        return self._producer is not None and not self._stopping.is_set()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Create the reply topic, start the reply consumer and the producer (blocking; run in an executor).

        Raises:
            TopicNotFoundError: the namespace's commands topic does not exist (start the engine first).
            TopicAdminError: the broker could not be reached.
        """
        from kronicle.topics import TopicNotFoundError

        self._loop = loop
        admin = AdminClient({"bootstrap.servers": self._bootstrap})
        counts = partition_counts(admin, [self._topics.commands])
        if self._topics.commands not in counts:
            raise TopicNotFoundError(
                f"topic {self._topics.commands} does not exist; start the engine for namespace"
                f" {self._topics.namespace!r} first (it creates the namespace's topics)",
                [self._topics.commands],
            )
        self._partitions = counts[self._topics.commands]
        ensure_topics(
            admin,
            [TopicSpec(self.reply_topic, 1, config={"retention.ms": str(_REPLY_RETENTION_MS)})],
        )
        consumer = Consumer(
            {
                "bootstrap.servers": self._bootstrap,
                "group.id": f"kronicle-frontend-{self.reply_topic}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 10,
            }
        )
        # The topic is new and ours alone: reading it from the beginning cannot miss a reply.
        consumer.assign([TopicPartition(self.reply_topic, 0, OFFSET_BEGINNING)])
        self._consumer = consumer
        self._producer = Producer(
            {
                "bootstrap.servers": self._bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 0,  # a caller waits for each command: send at once
            }
        )
        for target, name in ((self._consume_replies, "replies"), (self._poll_producer, "producer")):
            thread = threading.Thread(target=target, name=f"kronicle-frontend-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the threads, flush the producer and delete the reply topic (blocking; idempotent)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._producer is not None:
            self._producer.flush(10)
        if self._consumer is not None:
            self._consumer.close()
        if self._partitions:
            admin = AdminClient({"bootstrap.servers": self._bootstrap})
            with contextlib.suppress(Exception):  # best effort: retention removes it anyway
                for future in admin.delete_topics([self.reply_topic], operation_timeout=10).values():
                    future.result(timeout=15)
        with self._lock:
            self._waiting.clear()
            self._subscribers.clear()

    async def send(
        self, schema: str, workflow_id: str, datum: dict[str, Any], *, request_id: str, timeout: float
    ) -> CommandOutcome | None:
        """Produce one command with ``reply_to`` set and wait for the engine's answer.

        Returns:
            The ``CommandResult`` datum, or None if the command is durably in the log
            but the engine did not answer within ``timeout`` seconds.

        Raises:
            RuntimeError: the gateway is not running, or the broker refused or did not confirm the record.
        """
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[CommandOutcome] = loop.create_future()
        key = (workflow_id, request_id)
        with self._lock:
            self._waiting.setdefault(key, collections.deque()).append(answer)
        try:
            # The engine answers only a command it read, so its answer also confirms the delivery:
            # no separate wait (and no wake-up of the event loop) for the delivery report. A
            # refused record fails ``answer`` instead.
            delivery = self._produce(schema, workflow_id, datum, loop, answer)
            try:
                async with asyncio.timeout(timeout):
                    return await answer
            except TimeoutError:
                if not delivery.confirmed:
                    raise RuntimeError(f"Kafka did not confirm the command within {timeout:g} s") from None
                return None
        finally:
            with self._lock:
                queue = self._waiting.get(key)
                if queue is not None and answer in queue:
                    queue.remove(answer)
                if queue is not None and not queue:
                    del self._waiting[key]

    async def produce(self, schema: str, workflow_id: str, datum: dict[str, Any], *, timeout: float = 5.0) -> None:
        """Produce one command with ``reply_to`` set and wait until Kafka has it (not for an answer).

        Raises:
            RuntimeError: the gateway is not running, or the broker refused or did not confirm the record.
        """
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()
        self._produce(schema, workflow_id, datum, loop, delivered, confirm=True)
        wait = max(timeout, 5.0)
        try:
            async with asyncio.timeout(wait):
                await delivered
        except TimeoutError as err:
            raise RuntimeError(f"Kafka did not confirm the command within {wait:.0f} s") from err

    def _produce(
        self,
        schema: str,
        workflow_id: str,
        datum: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        *,
        confirm: bool = False,
    ) -> _Delivery:
        """Produce one command; a refusal fails ``future``, a confirmation resolves it only if ``confirm``."""
        producer = self._producer
        if producer is None or self._stopping.is_set():
            raise RuntimeError("the frontend is not connected to Kafka")
        value = self._encode(schema, {**datum, "reply_to": self.reply_topic})
        kbytes = workflow_id.encode()
        delivery = _Delivery()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            # Runs on the producer thread; a loop closed meanwhile must not kill that thread.
            with contextlib.suppress(RuntimeError):
                if err is not None:
                    loop.call_soon_threadsafe(self._fail, future, RuntimeError(f"Kafka refused the command: {err}"))
                    return
                delivery.confirmed = True  # read by the event loop only after a timeout: no wake-up needed
                if confirm:
                    loop.call_soon_threadsafe(self._resolve, future, None)

        producer.produce(
            self._topics.commands,
            key=kbytes,
            value=value,
            partition=partition_for(kbytes, self._partitions),
            on_delivery=on_delivery,
        )
        return delivery

    @contextlib.contextmanager
    def subscribe(self, kind: str, workflow_id: str, ident: str) -> Iterator[asyncio.Queue[Reply]]:
        """Receive the replies about one query (``kind="query"``) or update (``"update"``) while in the block.

        The queue gets ``(schema, datum)`` for each ``QueryResult`` / ``UpdateResult``
        with that id, and a ``CommandResult`` that rejected the command. Subscribe
        before producing the command, so no reply can slip past.
        """
        if kind not in _ID_FIELD:
            raise ValueError(f"kind must be one of {sorted(_ID_FIELD)}, not {kind!r}")
        queue: asyncio.Queue[Reply] = asyncio.Queue()
        key = (kind, workflow_id, ident)
        with self._lock:
            self._subscribers.setdefault(key, []).append(queue)
        try:
            yield queue
        finally:
            with self._lock:
                queues = self._subscribers.get(key)
                if queues is not None and queue in queues:
                    queues.remove(queue)
                if queues is not None and not queues:
                    del self._subscribers[key]

    @staticmethod
    def _resolve(future: asyncio.Future[Any], value: Any) -> None:
        if not future.done():
            future.set_result(value)

    @staticmethod
    def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
        if not future.done():
            future.set_exception(error)

    def _poll_producer(self) -> None:
        producer = self._producer
        assert producer is not None
        while not self._stopping.is_set():
            producer.poll(0.05)

    def _consume_replies(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self._stopping.is_set():
            # A batch at a time: the engine commits the answers of a whole batch of commands at
            # once, and the event loop is woken once for all of them, not once per answer. (Not
            # ``consume(n, 0.1)``: it would wait out the 0.1 s unless n records came.)
            first = consumer.poll(0.1)
            if first is None:
                continue
            messages = [first, *consumer.consume(_REPLY_BATCH, 0)]
            calls: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
            for msg in messages:
                if msg.error():
                    _log.warning("reply topic %s: %s", self.reply_topic, msg.error())
                    continue
                try:
                    schema, result = self._decode(msg.value() or b"")
                except Exception:  # noqa: BLE001 - a bad record on our topic must not stop the replies
                    _log.exception("undecodable record on reply topic %s", self.reply_topic)
                    continue
                self._dispatch(schema, result, calls)
            if calls and self._loop is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting any more
                    self._loop.call_soon_threadsafe(_call_all, calls)

    def _dispatch(
        self, schema: str, result: dict[str, Any], calls: list[tuple[Callable[..., None], tuple[Any, ...]]]
    ) -> None:
        """Add to ``calls`` what hands one reply to whoever waits for it (run on the event loop)."""
        workflow_id = str(result.get("workflow_id", ""))
        with self._lock:
            if schema == _RESULT:
                request_id = str(result.get("request_id", ""))
                waiting = self._waiting.get((workflow_id, request_id))
                if waiting:
                    calls.append((self._resolve, (waiting.popleft(), result)))
                elif not result.get("ok"):
                    # A rejected query or update: the engine names it by its own id.
                    for kind in _ID_FIELD:
                        for queue in self._subscribers.get((kind, workflow_id, request_id), ()):
                            calls.append((queue.put_nowait, ((schema, result),)))
            elif schema in _KIND_BY_SCHEMA:
                kind = _KIND_BY_SCHEMA[schema]
                for queue in self._subscribers.get((kind, workflow_id, str(result.get(_ID_FIELD[kind], ""))), ()):
                    calls.append((queue.put_nowait, ((schema, result),)))


def _call_all(calls: list[tuple[Callable[..., None], tuple[Any, ...]]]) -> None:
    for fn, args in calls:
        fn(*args)
