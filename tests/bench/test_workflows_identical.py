"""The benchmark runs the same workflow code on both engines: only the imports may differ."""

from __future__ import annotations

from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
MARKER = "# --- identical below this line ---"


def _body(name: str) -> str:
    text = (BENCH / name).read_text()
    assert MARKER in text, f"{name} lost its marker line"
    return text.split(MARKER, 1)[1]


def test_workflow_bodies_are_identical_on_both_engines() -> None:
    assert _body("_wf_kronicle.py") == _body("_wf_temporal.py")


def test_each_module_imports_its_own_sdk() -> None:
    assert "from kronicle import activity, workflow" in (BENCH / "_wf_kronicle.py").read_text()
    assert "from temporalio import activity, workflow" in (BENCH / "_wf_temporal.py").read_text()
