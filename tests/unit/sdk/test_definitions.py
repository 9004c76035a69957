"""@workflow.defn and friends validate the class once and store a frozen definition."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from kronicle import activity, workflow
from kronicle.workflow import WorkflowDefinition


def test_definition_records_run_signals_queries_and_updates() -> None:
    @workflow.defn(name="Custom", sandboxed=False)
    class Wf:
        @workflow.run
        async def run(self, a: int, b: str) -> list[str]:
            return []

        @workflow.signal(name="go")
        async def signal_go(self, n: int) -> None: ...

        @workflow.signal(dynamic=True)
        def any_signal(self, name: str, *args: Any) -> None: ...

        @workflow.query
        def state(self) -> dict[str, int]:
            return {}

        @workflow.update
        def bump(self, by: int) -> int:
            return by

        @bump.validator
        def check_bump(self, by: int) -> None: ...

    d = WorkflowDefinition.from_class(Wf)
    assert (d.name, d.arg_types, d.ret_type) == ("Custom", (int, str), list[str])
    assert set(d.signals) == {"go", None}
    assert d.signals["go"].arg_types == (int,)
    assert d.signals["go"].is_async
    assert d.queries["state"].ret_type == dict[str, int]
    assert d.updates["bump"].validator is Wf.check_bump
    assert WorkflowDefinition.from_run_fn(Wf.run) is d
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.name = "x"  # type: ignore[misc]


def test_all_problems_are_reported_in_one_error() -> None:
    with pytest.raises(ValueError) as info:

        @workflow.defn
        class Bad:
            @workflow.init
            def __init__(self, x: int) -> None: ...

            @workflow.run
            def run(self, y: int) -> None: ...

            @workflow.run
            async def run_again(self) -> None: ...

            @workflow.query
            async def slow_query(self) -> int:
                return 1

            @workflow.signal(name="s")
            def one(self) -> None: ...

            @workflow.signal(name="s")
            def two(self) -> None: ...

            @workflow.update
            def upd(self) -> None: ...

            @upd.validator
            async def _v(self) -> None: ...

    message = str(info.value)
    assert message.startswith("Invalid workflow class")
    for fragment in [
        "more than one @workflow.run method (run, run_again)",
        "query 'slow_query' must be a plain def",
        "signal name 's' is used by both",
        "validator of update 'upd' must be a plain def",
    ]:
        assert fragment in message, fragment
    assert message.count("\n  - ") == 4


def test_missing_run_and_init_mismatch_are_both_reported() -> None:
    with pytest.raises(ValueError, match=r"no @workflow\.run method"):

        @workflow.defn
        class NoRun:
            pass

    with pytest.raises(ValueError) as info:

        @workflow.defn
        class Mismatch:
            @workflow.init
            def __init__(self, x: int) -> None: ...

            @workflow.run
            def run(self, y: int) -> None: ...

    assert "must be async def" in str(info.value)
    assert "parameters ['x'] must match the run method's ['y']" in str(info.value)


def test_defn_on_a_function_and_undecorated_class_lookup_fail_clearly() -> None:
    with pytest.raises(ValueError, match="goes on a class"):
        workflow.defn(lambda: None)  # type: ignore[type-var]

    class Plain:
        pass

    with pytest.raises(ValueError, match=r"decorate it with @workflow.defn"):
        WorkflowDefinition.from_class(Plain)


def test_subclass_may_override_the_run_method() -> None:
    @workflow.defn
    class Base:
        @workflow.run
        async def run(self) -> int:
            return 1

    @workflow.defn
    class Child(Base):
        @workflow.run
        async def run(self) -> int:
            return 2

    assert WorkflowDefinition.from_class(Child).run_fn is Child.run
    assert WorkflowDefinition.from_class(Base).run_fn is Base.run


def test_dynamic_handlers_cannot_have_names() -> None:
    with pytest.raises(ValueError, match="dynamic handler cannot also have a name"):
        workflow.signal(name="x", dynamic=True)(lambda self: None)


def test_activity_defn_records_name_and_types() -> None:
    @activity.defn
    async def fetch(url: str, retries: int = 3) -> bytes:
        return b""

    @activity.defn(name="custom")
    def blocking(x: float) -> None: ...

    d = activity.ActivityDefinition.from_callable(fetch)
    assert (d.name, d.is_async, d.arg_types, d.ret_type) == ("fetch", True, (str, int), bytes)
    b = activity.ActivityDefinition.from_callable(blocking)
    assert (b.name, b.is_async, b.arg_types) == ("custom", False, (float,))
    with pytest.raises(ValueError, match=r"decorate it with @activity\.defn"):
        activity.ActivityDefinition.from_callable(lambda: None)
