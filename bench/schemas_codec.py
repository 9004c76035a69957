"""Microseconds per encode and per decode of a TimerFired record.

Run: ``PYTHONPATH=$PWD python bench/schemas_codec.py [N]``. It also times an old
version read through schema resolution (a test-only v1 -> v2 pair), which is
the slow path a record takes after its schema evolved.
"""

from __future__ import annotations

import sys
import timeit

from kronicle.schemas import SchemaRegistry, default_registry


def _per_call_us(fn: object, n: int) -> float:
    best = min(timeit.repeat(fn, number=n, repeat=5))  # type: ignore[arg-type]
    return best / n * 1e6


def main(n: int = 200_000) -> None:
    """Print the timings."""
    registry = default_registry()
    datum = {"key": b"order-123456", "timer_id": b"activity-7/attempt-2", "due_ms": 1_764_000_000_000, "payload": b""}
    data = registry.encode("kronicle.TimerFired", datum)
    print(f"TimerFired record: {len(data)} bytes")
    print(f"encode:     {_per_call_us(lambda: registry.encode('kronicle.TimerFired', datum), n):6.2f} us")
    print(f"decode:     {_per_call_us(lambda: registry.decode(data), n):6.2f} us")
    print(f"decode_as:  {_per_call_us(lambda: registry.decode_as(data, 'kronicle.TimerFired'), n):6.2f} us")

    evolving = SchemaRegistry()
    v1 = {"type": "record", "name": "Bench", "fields": [{"name": "a", "type": "bytes"}, {"name": "b", "type": "int"}]}
    v2 = {
        "type": "record",
        "name": "Bench",
        "fields": [
            {"name": "a", "type": "bytes"},
            {"name": "b", "type": "long"},
            {"name": "c", "type": "int", "default": 0},
        ],
    }
    evolving.register(v1, 901, version=1)
    old = evolving.encode("Bench", {"a": b"x", "b": 1})
    evolving.register(v2, 902, version=2)
    print(f"decode v1 as v2 (resolution): {_per_call_us(lambda: evolving.decode(old), n // 4):6.2f} us")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
