"""`kronicle server start-dev` brings the whole stack up, runs the demo, and stops everything it started."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_start_dev_runs_the_demo_and_leaves_nothing_behind() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kronicle", "server", "start-dev", "--port", "0", "--demo", "--exit-after-demo"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "returned 'Hello, World!'" in proc.stdout
    assert "WorkflowExecutionCompleted" in proc.stdout
    match = re.search(r"data\s+(\S+)", proc.stdout)
    assert match, proc.stdout
    data_dir = match.group(1)
    assert not Path(data_dir).exists(), "the temporary data directory was not removed"
    # No broker (or anything else) still runs on that data directory.
    left = subprocess.run(["pgrep", "-f", data_dir], capture_output=True, text=True, check=False)
    assert left.stdout.strip() == "", f"processes left behind: {left.stdout}"
