"""A process killed mid-write leaves a store whose data and offset agree (the WAL's job)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from kronicle.state.store import StateStore

CFS = ("state", "timers")

_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from kronicle.state.store import StateStore

    store = StateStore(Path(sys.argv[1]), "ns", ("state", "timers"))
    store.open(0)
    offset = 0
    while True:
        offset += 1
        n = str(offset).encode()
        # Every batch touches both families and the offset; a torn batch would show.
        writes = {("state", b"counter"): n, ("timers", b"mirror"): n}
        writes.update({("state", b"bulk-%d" % i): n * 20 for i in range(50)})
        store.apply(0, writes, changelog_offset=offset)
        if offset % 50 == 0:
            print(offset, flush=True)
    """
)


def test_sigkill_mid_write_leaves_data_and_offset_consistent(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    acknowledged = 0
    deadline = time.monotonic() + 30
    while acknowledged < 2000:
        assert time.monotonic() < deadline, "the writer did not make progress"
        line = child.stdout.readline()
        assert line, "the writer exited early"
        acknowledged = int(line)
    child.send_signal(signal.SIGKILL)  # no close, no flush: only the WAL survives
    child.wait(10)

    store = StateStore(tmp_path, "ns", CFS)
    store.open(0)
    try:
        offset = store.changelog_offset(0)
        # Nothing a returned apply() wrote is lost to a process crash...
        assert offset >= acknowledged
        # ...and every family reflects exactly the batch the offset names.
        expected = str(offset).encode()
        assert store.get(0, "state", b"counter") == expected
        assert store.get(0, "timers", b"mirror") == expected
        assert {v for _, v in store.scan(0, "state", start=b"bulk-", end=b"bulk.")} == {expected * 20}
    finally:
        store.close_all()
