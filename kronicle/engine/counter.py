"""A counter per key: the small reference handler the engine shell is tested and benchmarked with.

It exercises everything the shell offers — state reads and writes, output
records, durable timers and dead-lettering — with results that are easy to
check: every ``CounterAdd`` (request id, amount) produces exactly one
``CounterOutput`` carrying the key's new total, either at once or, with
``delay_ms``, when its timer fires. It deliberately does *not* deduplicate
request ids, so a command applied twice shows up as a duplicate output.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kronicle import schemas
from kronicle.engine.handler import CommandRecord, Context, InvalidCommand
from kronicle.schemas import SchemaRegistry

__all__ = ["COUNTER_ADD", "COUNTER_OUTPUT", "COUNTER_SCHEMAS", "CounterHandler", "counter_registry"]

COUNTER_ADD = "kronicle.example.CounterAdd"
COUNTER_OUTPUT = "kronicle.example.CounterOutput"

COUNTER_SCHEMAS: list[tuple[int, dict[str, Any]]] = [
    (
        90,
        {
            "type": "record",
            "name": "CounterAdd",
            "namespace": "kronicle.example",
            "fields": [
                {"name": "request_id", "type": "string"},
                {"name": "amount", "type": "long"},
                {"name": "delay_ms", "type": "long", "default": 0},
                {"name": "padding", "type": "bytes", "default": ""},
            ],
        },
    ),
    (
        91,
        {
            "type": "record",
            "name": "CounterOutput",
            "namespace": "kronicle.example",
            "fields": [
                {"name": "key", "type": "string"},
                {"name": "request_id", "type": "string"},
                {"name": "total", "type": "long"},
                {"name": "source", "type": {"type": "enum", "name": "Source", "symbols": ["COMMAND", "TIMER"]}},
            ],
        },
    ),
]

_TOTAL = struct.Struct(">q")


def counter_registry() -> SchemaRegistry:
    """A registry with Kronicle's own schemas plus the counter's (a new one per call)."""
    registry = SchemaRegistry()
    registry.load_dir(Path(schemas.__file__).parent)
    for schema_id, schema in COUNTER_SCHEMAS:
        registry.register(schema, schema_id)
    return registry


class CounterHandler:
    """Adds amounts to a total per key and reports every new total."""

    column_families = ("counters",)

    def __init__(self, output_topic: str, encode: Callable[[str, Any], bytes]) -> None:
        self._output_topic = output_topic
        self._encode = encode

    def handle(self, ctx: Context, command: CommandRecord) -> None:
        if command.schema != COUNTER_ADD:
            raise InvalidCommand(f"the counter handles {COUNTER_ADD} only, not {command.schema}")
        if command.key is None:
            raise InvalidCommand("a CounterAdd needs a key")
        amount = command.value["amount"]
        if amount < 0:
            raise InvalidCommand(f"amount must not be negative, got {amount}")
        request_id: str = command.value["request_id"]
        delay = command.value["delay_ms"]
        if delay > 0:
            ctx.schedule_timer(request_id.encode(), ctx.now_ms + delay, command.key, _TOTAL.pack(amount))
            return
        self._add(ctx, command.key, request_id, amount, "COMMAND")

    def on_timer(self, ctx: Context, key: bytes, timer_id: bytes, payload: bytes) -> None:
        (amount,) = _TOTAL.unpack(payload)
        self._add(ctx, key, timer_id.decode(), amount, "TIMER")

    def _add(self, ctx: Context, key: bytes, request_id: str, amount: int, source: str) -> None:
        raw = ctx.get("counters", key)
        total = (_TOTAL.unpack(raw)[0] if raw else 0) + amount
        ctx.put("counters", key, _TOTAL.pack(total))
        out = {"key": key.decode(), "request_id": request_id, "total": total, "source": source}
        ctx.emit(self._output_topic, key, self._encode(COUNTER_OUTPUT, out))
