"""The contract between the partition processor shell and the logic it runs.

The shell (``kronicle.engine.processor``) owns Kafka, RocksDB, clocks and
transactions. The logic, a :class:`Handler`, sees one decoded command at a time
through a :class:`Context` and does no I/O of its own: every read goes through
``ctx.get`` (the batch overlay, then the partition's RocksDB store), and every
effect (a state write, an output record, a timer) is recorded on the context.
The shell turns those records into one Kafka transaction per batch.

Because a handler only talks to a ``Context``, it is tested without Kafka by
handing it an in-memory context (:class:`kronicle.engine.context.MemoryContext`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol

__all__ = [
    "TIMER_COLUMN_FAMILIES",
    "CommandRecord",
    "Context",
    "Handler",
    "InvalidCommand",
]

TIMER_COLUMN_FAMILIES = ("timers", "timer_ids")
"""Column families the shell owns for durable timers (handlers must not use them)."""


class InvalidCommand(Exception):
    """Raised by a handler for a command that cannot be applied.

    The shell sends the command to the namespace's dead-letter topic with
    ``reason`` in its headers, drops every effect the command recorded, and
    moves on to the next command.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True, slots=True)
class CommandRecord:
    """One record read from ``kronicle.<ns>.commands``, already decoded."""

    partition: int
    offset: int
    key: bytes | None
    schema: str
    """Full name of the Avro schema the value was written with (e.g. ``kronicle.StartWorkflow``)."""
    value: Any
    """The decoded Avro datum (dicts, lists, primitives, as fastavro returns it)."""
    headers: Sequence[tuple[str, bytes]]
    timestamp_ms: int


class Context(Protocol):
    """What a handler may read and do while applying one command."""

    @property
    def partition(self) -> int:
        """The partition being processed; every state read and write is on it."""
        ...

    @property
    def now_ms(self) -> int:
        """The processor's clock for this batch (milliseconds since the epoch)."""
        ...

    def get(self, cf: str, key: bytes) -> bytes | None:
        """Read a value, seeing writes made earlier in the same batch."""
        ...

    def put(self, cf: str, key: bytes, value: bytes) -> None:
        """Write a value; it reaches RocksDB and the changelog only if the batch commits."""
        ...

    def delete(self, cf: str, key: bytes) -> None:
        """Delete a value (a tombstone in the changelog)."""
        ...

    def emit(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Produce a record inside the batch's transaction.

        Without ``partition`` the record is placed by the murmur2 hash of its key
        (the Java client's default), so a command to another workflow lands on
        that workflow's partition. The shell adds the sequence-number and
        failover-version headers.
        """
        ...

    def schedule_timer(self, timer_id: bytes, due_ms: int, key: bytes, payload: bytes) -> None:
        """Arrange for ``Handler.on_timer`` to be called once, at or after ``due_ms``.

        Scheduling an existing ``timer_id`` again replaces it. When the timer is due
        the shell appends a TimerFired command (``key``, ``timer_id``, ``payload``)
        to this partition's commands topic and deletes the timer, in one
        transaction; the handler sees it when that command is read back.
        """
        ...

    def cancel_timer(self, timer_id: bytes) -> None:
        """Cancel a timer; a no-op if it already fired or never existed."""
        ...

    def set_timer(
        self, timer_id: bytes, due_ms: int, key: bytes, payload: bytes, *, previous_due_ms: int | None
    ) -> None:
        """:meth:`schedule_timer` for a handler that remembers the due times of its timers.

        The shell then keeps no timer-id index for the timer (the ``timer_ids``
        family), so arming, replacing and cancelling it cost one state write (one
        changelog record) each instead of two. ``previous_due_ms`` is the due time
        of this ``timer_id``'s armed timer that was set with ``set_timer``; None
        when there is none, and then a timer of that id armed with
        :meth:`schedule_timer` is replaced through its index.
        """
        ...

    def clear_timer(self, timer_id: bytes, due_ms: int) -> None:
        """Cancel a timer armed with :meth:`set_timer` for ``due_ms``; a no-op if it already fired."""
        ...


class Handler(Protocol):
    """Logic that applies commands to one partition's state. Pure: no I/O, no clock."""

    @property
    def column_families(self) -> Sequence[str]:
        """Column families the handler's state lives in (besides the shell's timer families)."""
        ...

    def handle(self, ctx: Context, command: CommandRecord) -> None:
        """Apply one command. Raise :class:`InvalidCommand` to dead-letter it."""
        ...

    def on_timer(self, ctx: Context, key: bytes, timer_id: bytes, payload: bytes) -> None:
        """Apply a fired timer (read back from the commands topic)."""
        ...
