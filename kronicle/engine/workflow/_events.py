"""How a run's history events are kept in :data:`~kronicle.engine.workflow._state.CF_EVENTS`.

The events a command writes to one run are stored as ONE value (a *chunk*),
keyed by the run id and the chunk's first event id (``event_key``), instead of
one value per event: every stored value is also a changelog record, and a
one-activity workflow writes 11 events in 4 commands. A chunk holds at most
:data:`EVENTS_PER_CHUNK` events (a larger write is split), which bounds the
search for the chunk holding a given event id.

Chunk value: the marker byte ``0x01``, then per event its stored bytes (a
Confluent-framed ``HistoryEvent``) preceded by their length (4 bytes,
big-endian). The events of a chunk have consecutive ids, and the chunks of a run
cover its events 1..n without gaps, so a reader that has one chunk knows the
key of the next one.

Stores written before chunks existed hold one event per key, the event's
bytes as they are (starting with the Confluent magic byte ``0x00``). A reader
treats such a value as a chunk of one event, so a run whose early events were
written one by one and later ones in chunks reads back as one history.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

from kronicle.engine.workflow._state import CF_EVENTS, event_key

__all__ = [
    "EVENTS_PER_CHUNK",
    "chunk_events",
    "encode_chunk",
    "event_chunks",
    "iter_events",
    "last_chunk_start",
    "read_event",
]

EVENTS_PER_CHUNK: Final = 64
"""Most events in one stored chunk; finding the chunk of an event id takes at most this many point reads."""

_CHUNK_MARKER: Final = 0x01
_LEGACY_MARKER: Final = 0x00  # the Confluent magic byte: one event stored on its own
_LENGTH: Final = struct.Struct(">I")

Getter = Callable[[str, bytes], bytes | None]


def encode_chunk(stored: Sequence[bytes]) -> bytes:
    """The value of a chunk holding ``stored`` (events' bytes in event id order)."""
    parts = [bytes((_CHUNK_MARKER,))]
    pack = _LENGTH.pack
    for raw in stored:
        parts.append(pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def event_chunks(stored: Sequence[bytes]) -> Iterator[tuple[int, bytes]]:
    """``(index of the chunk's first event in stored, chunk value)`` for ``stored``, in chunks of at most
    :data:`EVENTS_PER_CHUNK`."""
    for start in range(0, len(stored), EVENTS_PER_CHUNK):
        yield start, encode_chunk(stored[start : start + EVENTS_PER_CHUNK])


def last_chunk_start(events: Sequence[dict[str, Any]]) -> int:
    """The event id the last chunk of ``events`` (one write, in event id order) starts at, as
    :func:`event_chunks` splits them."""
    return int(events[(len(events) - 1) // EVENTS_PER_CHUNK * EVENTS_PER_CHUNK]["event_id"])


def chunk_events(value: bytes) -> list[bytes]:
    """The events' bytes of a stored chunk (or of a single event stored by an older version).

    Raises:
        ValueError: ``value`` is neither (the store holds something Kronicle did not write there).
    """
    marker = value[0] if value else -1
    if marker == _LEGACY_MARKER:
        return [value]
    if marker != _CHUNK_MARKER:
        raise ValueError(f"a {CF_EVENTS} value starts with byte {marker}, not a chunk (1) or an event (0)")
    events: list[bytes] = []
    pos, end = 1, len(value)
    unpack = _LENGTH.unpack_from
    while pos < end:
        (n,) = unpack(value, pos)
        pos += 4
        if pos + n > end:
            raise ValueError(f"a {CF_EVENTS} chunk is truncated: an event of {n} bytes at byte {pos} of {end}")
        events.append(value[pos : pos + n])
        pos += n
    return events


def _chunk_at(get: Getter, run_id: str, event_id: int, last_chunk: int = 0) -> tuple[int, list[bytes]] | None:
    """The chunk holding ``event_id``: (its first event id, its events), or None if no stored chunk does.

    ``last_chunk`` (the run state's ``last_chunk``, 0 if unknown) is where the run's last stored
    chunk starts: an event at or after it is in that chunk, found with one read of a key that
    exists, instead of probing the absent keys before it (each probe may load filter and index
    blocks of every level that is not in the block cache). The hint is trusted: it is written
    with the chunk it names (both in one commit, restored from one changelog), so an event
    past that chunk's end was not stored when that state was read. Pass a hint only with
    event ids of the same state (the closing event, a completed update's event): a later
    command may have written chunks after it since. A hint with no stored chunk falls back
    to probing.
    """
    if 0 < last_chunk <= event_id:
        raw = get(CF_EVENTS, event_key(run_id, last_chunk))
        if raw is not None:
            events = chunk_events(raw)
            return (last_chunk, events) if last_chunk + len(events) > event_id else None
    for first in range(event_id, max(0, event_id - EVENTS_PER_CHUNK), -1):
        raw = get(CF_EVENTS, event_key(run_id, first))
        if raw is not None:
            events = chunk_events(raw)
            return (first, events) if first + len(events) > event_id else None
    return None


def iter_events(get: Getter, run_id: str, first_event_id: int = 1, last_chunk: int = 0) -> Iterator[tuple[int, bytes]]:
    """``(event id, stored bytes)`` of the run's stored events from ``first_event_id`` on, in order.

    Stops at the first event id that is not stored (the end of the history).
    ``last_chunk`` is the run state's hint (see :func:`_chunk_at`).
    """
    event_id = max(first_event_id, 1)
    found = _chunk_at(get, run_id, event_id, last_chunk)
    while found is not None:
        first, events = found
        for i in range(event_id - first, len(events)):
            yield first + i, events[i]
        event_id = first + len(events)
        raw = get(CF_EVENTS, event_key(run_id, event_id))
        found = (event_id, chunk_events(raw)) if raw is not None else None


def read_event(get: Getter, run_id: str, event_id: int, last_chunk: int = 0) -> bytes | None:
    """The stored bytes of one event of the run, or None if it is not stored.

    ``last_chunk`` is the run state's hint (see :func:`_chunk_at`).
    """
    found = _chunk_at(get, run_id, event_id, last_chunk)
    if found is None:
        return None
    first, events = found
    return events[event_id - first]
