"""Schema maintenance helpers.

``python -m kronicle.schemas entry FILE.avsc ID VERSION`` prints the ``ids.json``
entry for a new schema file; ``python -m kronicle.schemas check [DIR]`` loads a
schema tree (default: Kronicle's own) and reports every manifest problem.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kronicle.schemas._errors import SchemaManifestError
from kronicle.schemas._manifest import manifest_entry
from kronicle.schemas._registry import SchemaRegistry

_USAGE = "usage: python -m kronicle.schemas entry FILE.avsc ID VERSION | check [DIR]"


def main(argv: list[str]) -> int:
    """Run the helper; returns the process exit code."""
    if len(argv) == 4 and argv[0] == "entry":
        print(json.dumps(manifest_entry(Path(argv[1]), int(argv[2]), int(argv[3])), indent=2))
        return 0
    if argv[:1] == ["check"] and len(argv) <= 2:
        root = Path(argv[1]) if len(argv) == 2 else Path(__file__).parent
        registry = SchemaRegistry()
        try:
            registry.load_dir(root)
        except SchemaManifestError as exc:
            print(exc, file=sys.stderr)
            return 1
        for subject in registry.subjects():
            ids = [registry.schema_id(subject, v) for v in registry.versions(subject)]
            print(f"{subject}: versions {registry.versions(subject)} ids {ids}")
        return 0
    print(_USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
