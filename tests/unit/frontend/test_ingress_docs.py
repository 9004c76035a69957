"""docs/kafka-ingress.md shows code that is really in examples/kafka_ingress.py (which the integration tests run)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[3]


def test_the_documented_excerpt_is_in_the_example() -> None:
    doc = (ROOT / "docs" / "kafka-ingress.md").read_text(encoding="utf-8")
    example = (ROOT / "examples" / "kafka_ingress.py").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    excerpt = next(b for b in blocks if "class CommandProducer" in b)
    missing = [line for line in excerpt.splitlines() if line.strip() and line not in example.splitlines()]
    assert not missing, f"lines of docs/kafka-ingress.md not in examples/kafka_ingress.py: {missing}"


def test_the_documented_kcat_script_exists_and_the_dlq_headers_are_the_engines() -> None:
    from kronicle.engine.batch import DLQ_HEADER_ERROR_TYPE, DLQ_HEADER_REASON

    doc = (ROOT / "docs" / "kafka-ingress.md").read_text(encoding="utf-8")
    assert (ROOT / "examples" / "kcat_start.sh").is_file()
    assert f"`{DLQ_HEADER_REASON}`" in doc and f"`{DLQ_HEADER_ERROR_TYPE}`" in doc
