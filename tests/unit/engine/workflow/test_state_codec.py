"""The run-state codec: canonical JSON with bytes as {"$b": base64}, the same bytes as it always wrote."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from kronicle.engine.workflow._state import copy_state, dumps, loads

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text() | st.binary()
states = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text().filter(lambda k: k != "$b"), inner, max_size=4)
    ),
    max_leaves=30,
)


def reference_dumps(obj: Any) -> bytes:
    """How the state was encoded before the C-encoder hook: walk, replace bytes, then json.dumps."""

    def walk(value: Any) -> Any:
        if isinstance(value, bytes):
            return {"$b": base64.b64encode(value).decode("ascii")}
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        return value

    return json.dumps(walk(obj), sort_keys=True, separators=(",", ":")).encode()


@given(states)
@example({"\x7f": None})  # DEL: ASCII, but json escapes it and orjson does not
@example({"k": ["a\x7fb", "\x1f\n\t\\"]})
def test_dumps_writes_the_same_bytes_as_before_and_loads_reads_them_back(state: Any) -> None:
    assert dumps(state) == reference_dumps(state)
    assert loads(dumps(state)) == state


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_read_back_equal_and_in_the_usual_range_as_the_same_bytes(value: float) -> None:
    state = {"retry_policy": {"backoff_coefficient": value}}
    assert loads(dumps(state)) == state
    if value == 0 or 1e-4 <= abs(value) < 1e16:
        assert dumps(state) == reference_dumps(state)


def test_what_orjson_refuses_is_written_by_json() -> None:
    state = {"big": 2**70, "keys": {10: "ten", 2: "two"}, "text": "gr\u00fc\u00dfe \ud800"}
    assert dumps(state) == json.dumps(state, sort_keys=True, separators=(",", ":")).encode()


@given(states)
def test_copy_state_is_equal_and_shares_no_container(state: Any) -> None:
    copied = copy_state({"x": state})
    assert copied == {"x": state}
    copied["x"] = "changed"
    if isinstance(state, (dict, list)) and state:
        inner = copy_state(state)
        assert inner == state
        assert inner is not state


def test_copy_state_copies_nested_containers_deeply() -> None:
    state = {"a": [{"b": [1, b"x"]}]}
    copied = copy_state(state)
    copied["a"][0]["b"].append(2)
    assert state == {"a": [{"b": [1, b"x"]}]}


def test_a_value_json_cannot_hold_is_refused_with_what_is_allowed() -> None:
    with pytest.raises(TypeError, match="not allowed in workflow state"):
        dumps({"a": {1, 2}})
