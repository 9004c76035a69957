"""Public workflow API (``@workflow.defn`` and the in-workflow functions).

Not built yet: see the SDK issue. The package exists so the layout in
STYLE.md is in place from the first commit.
"""
