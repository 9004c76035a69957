"""The public surface of kronicle.testing is locked: a change to it must change this test too."""

from __future__ import annotations

import kronicle.testing


def test_kronicle_testing_exports_exactly_these_names() -> None:
    assert kronicle.testing.__all__ == ["ActivityEnvironment", "WorkflowEnvironment", "default_info"]
    for name in kronicle.testing.__all__:
        assert getattr(kronicle.testing, name) is not None
