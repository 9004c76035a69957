"""One batch of one partition: decode, apply, dead-letter, fire timers — no Kafka here.

:class:`PartitionBatch` is the synchronous middle of the processor. The Kafka
shell (``processor.py``) feeds it the records it consumed and the partition's
store; the batch runs the handler on each command through a
:class:`~kronicle.engine.context.CommandContext` and collects every effect in a
:class:`~kronicle.engine.context.BatchEffects`. Nothing leaves the batch until
the shell commits its transaction, so an abort only has to drop the object.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from kronicle.engine.context import BatchEffects, CommandContext, OutputRecord, decode_timer
from kronicle.engine.handler import CommandRecord, Handler, InvalidCommand

__all__ = [
    "DLQ_HEADER_ERROR_TYPE",
    "DLQ_HEADER_OFFSET",
    "DLQ_HEADER_PARTITION",
    "DLQ_HEADER_REASON",
    "DLQ_HEADER_TOPIC",
    "TIMER_FIRED_SCHEMA",
    "Codec",
    "InputRecord",
    "PartitionBatch",
]

log = logging.getLogger(__name__)

TIMER_FIRED_SCHEMA = "kronicle.TimerFired"

DLQ_HEADER_REASON = "kronicle.dlq.reason"
DLQ_HEADER_ERROR_TYPE = "kronicle.dlq.error-type"
DLQ_HEADER_TOPIC = "kronicle.dlq.topic"
DLQ_HEADER_PARTITION = "kronicle.dlq.partition"
DLQ_HEADER_OFFSET = "kronicle.dlq.offset"

_MAX_REASON = 4000
_DUE = struct.Struct(">q")


class Codec(Protocol):
    """The part of :class:`kronicle.schemas.SchemaRegistry` the engine uses."""

    def encode(self, name: str, datum: Any) -> bytes: ...

    def decode(self, data: bytes) -> tuple[str, Any]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class InputRecord:
    """A consumed command record, before decoding (what ``confluent_kafka.Message`` holds)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    timestamp_ms: int


Reader = Callable[[str, bytes], bytes | None]
Scanner = Callable[[str, bytes, bytes | None, int], Iterator[tuple[bytes, bytes]]]


class PartitionBatch:
    """The effects of a run of commands on one partition, not yet committed."""

    def __init__(
        self,
        *,
        partition: int,
        now_ms: int,
        handler: Handler,
        codec: Codec,
        read: Reader,
        commands_topic: str,
        dlq_topic: str,
        namespace: str = "",
    ) -> None:
        self.partition = partition
        self.now_ms = now_ms
        self.effects = BatchEffects()
        self.next_offset: int | None = None
        """Offset to commit for the commands partition (last consumed + 1)."""
        self.first_offset: int | None = None
        """Offset of the first command in the batch; the consumer rewinds here on abort."""
        self.applied = 0
        self.dead_lettered: list[str] = []
        """Error type of each dead-lettered command, for metrics."""
        self.timers_fired = 0
        self.keys: set[bytes] = set()
        """Keys of the commands in the batch (workflow ids), reported after the commit."""
        self._handler = handler
        self._codec = codec
        self._read = read
        self._commands_topic = commands_topic
        self._dlq_topic = dlq_topic
        self._namespace = namespace

    # -- commands ------------------------------------------------------

    def add(self, record: InputRecord) -> None:
        """Apply one consumed record (or dead-letter it) and advance the offset to commit."""
        if self.first_offset is None:
            self.first_offset = record.offset
        self.next_offset = record.offset + 1
        if record.key is not None:
            self.keys.add(record.key)
        if record.value is None:
            self._dead_letter(record, "decode", "record has no value (commands are never tombstones)")
            return
        try:
            schema, datum = self._codec.decode(record.value)
        except Exception as exc:  # noqa: BLE001 - every decode failure, typed or not, is bad input
            self._dead_letter(record, "decode", f"{type(exc).__name__}: {exc}")
            return
        command = CommandRecord(
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            schema=schema,
            value=datum,
            headers=record.headers,
            timestamp_ms=record.timestamp_ms,
        )
        ctx = CommandContext(self.partition, self.now_ms, self.effects, self._read)
        try:
            if schema == TIMER_FIRED_SCHEMA:
                self._handler.on_timer(ctx, datum["key"], datum["timer_id"], datum["payload"])
            else:
                self._handler.handle(ctx, command)
        except InvalidCommand as exc:
            self._dead_letter(record, "invalid", exc.reason)
            return
        except Exception as exc:
            log.exception(
                "handler failed on %s[%d]@%d; dead-lettering", self._commands_topic, record.partition, record.offset
            )
            reason = f"internal error: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
            self._dead_letter(record, "internal", reason)
            return
        ctx.merge_into(self.effects)
        self.applied += 1

    def _dead_letter(self, record: InputRecord, error_type: str, reason: str) -> None:
        headers = [
            *record.headers,
            (DLQ_HEADER_REASON, reason[:_MAX_REASON].encode("utf-8", "replace")),
            (DLQ_HEADER_ERROR_TYPE, error_type.encode()),
            (DLQ_HEADER_TOPIC, self._commands_topic.encode()),
            (DLQ_HEADER_PARTITION, str(record.partition).encode()),
            (DLQ_HEADER_OFFSET, str(record.offset).encode()),
        ]
        self.effects.outputs.append(OutputRecord(self._dlq_topic, record.key, record.value, None, headers))
        self.dead_lettered.append(error_type)

    # -- timers --------------------------------------------------------

    def fire_due_timers(self, scan: Scanner, limit: int) -> int:
        """Append a TimerFired command for each timer due by ``now_ms`` and delete it.

        At most ``limit`` timers fire per batch, so a burst of timers cannot stall
        commands; the rest fire in the next batches. Returns how many fired.
        """
        end = _DUE.pack(self.now_ms + 1)
        fired = 0
        for tkey, value in scan("timers", b"", end, limit):
            timer_id = tkey[8:]
            key, payload = decode_timer(value)
            datum = {"key": key, "timer_id": timer_id, "due_ms": _DUE.unpack(tkey[:8])[0], "payload": payload}
            self.effects.outputs.append(
                OutputRecord(self._commands_topic, key, self._codec.encode(TIMER_FIRED_SCHEMA, datum), self.partition)
            )
            self.effects.writes[("timers", tkey)] = None
            if self._indexed(timer_id):
                self.effects.writes[("timer_ids", timer_id)] = None
            fired += 1
        self.timers_fired += fired
        return fired

    def _indexed(self, timer_id: bytes) -> bool:
        # Only timers armed with schedule_timer have an index entry; deleting one that
        # does not exist would still cost a changelog tombstone.
        sk = ("timer_ids", timer_id)
        if sk in self.effects.writes:
            return self.effects.writes[sk] is not None
        return self._read("timer_ids", timer_id) is not None

    @property
    def has_output(self) -> bool:
        return bool(self.effects.writes or self.effects.outputs or self.next_offset is not None)
