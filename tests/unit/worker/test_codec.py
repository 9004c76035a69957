"""A PayloadCodec is applied to every payload the worker reads from history and writes in commands."""

from __future__ import annotations

from collections.abc import Sequence

from kronicle import _wire
from kronicle.converter import DataConverter, Payload, PayloadCodec
from kronicle.worker._history import attrs
from tests.unit.worker.memory import MemoryLoop
from tests.unit.worker.workflows import Approval


class XorCodec(PayloadCodec):
    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [Payload({"encoding": b"binary/xor"}, _wire.payload_to_bytes(_xor(p))) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [_xor(_wire.payload_from_bytes(p.data)) for p in payloads]


def _xor(p: Payload) -> Payload:
    return Payload(p.metadata, bytes(b ^ 0x5A for b in p.data))


async def test_codec_applies_to_history_payloads_and_command_payloads() -> None:
    dc = DataConverter(payload_codec=XorCodec())
    loop = MemoryLoop([Approval], converter=dc)
    loop.start("wf", "Approval")
    await loop.run_until_idle()
    for who in ("ann", "bob"):
        encoded = _wire.payloads_to_bytes(await dc.to_payloads([who]))
        loop.bench.send("SignalWorkflow", {"workflow_id": "wf", "signal_name": "approve", "input": encoded})
    await loop.run_until_idle()
    raw = attrs(loop.history("wf")[-1])["result"]
    payload = _wire.payload_from_bytes(raw[0])
    assert payload.metadata["encoding"] == b"binary/xor"  # what the engine stores is encoded
    assert await dc.from_payloads([payload]) == [["ann", "bob"]]
