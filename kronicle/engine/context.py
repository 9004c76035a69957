"""The in-memory side of a batch: the overlay a handler writes into.

:class:`CommandContext` implements :class:`kronicle.engine.handler.Context` for
one command on top of a read function. Its writes stay in the context until the
caller folds them into the batch (:meth:`CommandContext.merge_into`) — which the
shell does only when the handler returned normally, so a command that raised
leaves no trace. :class:`MemoryContext` is the same thing over a plain dict, for
testing handlers without Kafka or RocksDB.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable, Sequence

__all__ = [
    "BatchEffects",
    "CommandContext",
    "MemoryContext",
    "OutputRecord",
    "TimerOp",
    "timer_key",
]

StateKey = tuple[str, bytes]
Reader = Callable[[str, bytes], bytes | None]

_DUE = struct.Struct(">q")


def timer_key(due_ms: int, timer_id: bytes) -> bytes:
    """Key in the ``timers`` column family: due time (big-endian) first, so a scan is in due order."""
    return _DUE.pack(due_ms) + timer_id


@dataclasses.dataclass(frozen=True, slots=True)
class OutputRecord:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: Sequence[tuple[str, bytes]] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class TimerOp:
    """A timer scheduled (``due_ms`` set) or cancelled (``due_ms`` None)."""

    timer_id: bytes
    due_ms: int | None
    key: bytes = b""
    payload: bytes = b""


@dataclasses.dataclass
class BatchEffects:
    """Everything a batch of commands did, in order, before it is committed."""

    writes: dict[StateKey, bytes | None] = dataclasses.field(default_factory=dict)
    """Last value per (column family, key); None is a delete."""
    outputs: list[OutputRecord] = dataclasses.field(default_factory=list)
    timer_ops: list[TimerOp] = dataclasses.field(default_factory=list)

    def clear(self) -> None:
        self.writes.clear()
        self.outputs.clear()
        self.timer_ops.clear()


class CommandContext:
    """A :class:`~kronicle.engine.handler.Context` for one command.

    Reads see, in order: this command's own writes, the batch's writes, then
    ``read`` (the partition's store).
    """

    __slots__ = ("_batch", "_now_ms", "_partition", "_read", "outputs", "timer_ops", "writes")

    def __init__(self, partition: int, now_ms: int, batch: BatchEffects, read: Reader) -> None:
        self._partition = partition
        self._now_ms = now_ms
        self._batch = batch
        self._read = read
        self.writes: dict[StateKey, bytes | None] = {}
        self.outputs: list[OutputRecord] = []
        self.timer_ops: list[TimerOp] = []

    @property
    def partition(self) -> int:
        return self._partition

    @property
    def now_ms(self) -> int:
        return self._now_ms

    def get(self, cf: str, key: bytes) -> bytes | None:
        sk = (cf, key)
        if sk in self.writes:
            return self.writes[sk]
        if sk in self._batch.writes:
            return self._batch.writes[sk]
        return self._read(cf, key)

    def put(self, cf: str, key: bytes, value: bytes) -> None:
        self.writes[(cf, key)] = value

    def delete(self, cf: str, key: bytes) -> None:
        self.writes[(cf, key)] = None

    def emit(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        self.outputs.append(OutputRecord(topic, key, value, partition, tuple(headers)))

    def schedule_timer(self, timer_id: bytes, due_ms: int, key: bytes, payload: bytes) -> None:
        self._drop_timer(timer_id)
        self.put("timer_ids", timer_id, _DUE.pack(due_ms))
        self.put("timers", timer_key(due_ms, timer_id), _encode_timer(key, payload))
        self.timer_ops.append(TimerOp(timer_id, due_ms, key, payload))

    def cancel_timer(self, timer_id: bytes) -> None:
        if self._drop_timer(timer_id):
            self.timer_ops.append(TimerOp(timer_id, None))

    def set_timer(
        self, timer_id: bytes, due_ms: int, key: bytes, payload: bytes, *, previous_due_ms: int | None
    ) -> None:
        if previous_due_ms is None:
            # A timer of this id may have been armed with its index (by schedule_timer, or
            # by a version that indexed every timer): replace it through the index.
            self._drop_timer(timer_id)
        elif previous_due_ms != due_ms:
            self.delete("timers", timer_key(previous_due_ms, timer_id))
        self.put("timers", timer_key(due_ms, timer_id), _encode_timer(key, payload))
        self.timer_ops.append(TimerOp(timer_id, due_ms, key, payload))

    def clear_timer(self, timer_id: bytes, due_ms: int) -> None:
        self.delete("timers", timer_key(due_ms, timer_id))
        self.timer_ops.append(TimerOp(timer_id, None))

    def _drop_timer(self, timer_id: bytes) -> bool:
        due = self.get("timer_ids", timer_id)
        if due is None:
            return False
        self.delete("timer_ids", timer_id)
        self.delete("timers", timer_key(_DUE.unpack(due)[0], timer_id))
        return True

    def merge_into(self, batch: BatchEffects) -> None:
        """Fold this command's effects into the batch (the command succeeded)."""
        batch.writes.update(self.writes)
        batch.outputs.extend(self.outputs)
        batch.timer_ops.extend(self.timer_ops)


class MemoryContext(CommandContext):
    """A context over a dict, for unit tests of handlers: effects apply at once.

    ``state`` holds the committed values; after each handler call, call
    :meth:`commit` to fold the recorded writes into ``state`` (or construct a new
    context per command, as the shell does).
    """

    def __init__(self, partition: int = 0, now_ms: int = 0, state: dict[StateKey, bytes] | None = None) -> None:
        self.state: dict[StateKey, bytes] = state if state is not None else {}
        self.effects = BatchEffects()
        super().__init__(partition, now_ms, self.effects, lambda cf, key: self.state.get((cf, key)))

    def set_now(self, now_ms: int) -> None:
        self._now_ms = now_ms

    def commit(self) -> None:
        """Apply this context's writes to ``state`` and keep its outputs in ``effects``."""
        self.merge_into(self.effects)
        for (cf, key), value in self.effects.writes.items():
            if value is None:
                self.state.pop((cf, key), None)
            else:
                self.state[(cf, key)] = value
        self.effects.writes.clear()
        self.writes = {}
        self.outputs = []
        self.timer_ops = []

    def due_timers(self, now_ms: int) -> list[tuple[bytes, bytes, bytes]]:
        """(key, timer_id, payload) of committed timers due at ``now_ms``, in due order."""
        due: list[tuple[bytes, bytes, bytes]] = []
        for (cf, tkey), value in sorted(self.state.items()):
            if cf == "timers" and _DUE.unpack(tkey[:8])[0] <= now_ms:
                key, payload = decode_timer(value)
                due.append((key, tkey[8:], payload))
        return due


def _encode_timer(key: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(key)) + key + payload


def decode_timer(value: bytes) -> tuple[bytes, bytes]:
    """(key, payload) of a value in the ``timers`` column family."""
    (n,) = struct.unpack_from(">I", value)
    return value[4 : 4 + n], value[4 + n :]
