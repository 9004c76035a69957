"""Where one sequential workflow's latency goes: timestamps at every boundary, medians per boundary.

History event timestamps only show the engine's view; this tool shows the waits
between processes too. It copies a source tree to a temporary directory, inserts
trace points there (never in the tree itself: they are string edits at anchors
that must match exactly once; a client, engine or worker point that finds none
fails loudly, a frontend one is left out of the table), runs
``python -m bench.latency`` on the copy with ``KRONICLE_LAT_TRACE`` set, and
merges the per-process trace files by ``CLOCK_MONOTONIC`` (shared by all processes
of the machine). Each sequential workflow is the window from one ``C.start`` to
the next; an event's label is its name and its occurrence in the window
(``E.first#2`` is the engine's second transaction of that workflow).

Trace points: ``C.*`` the benchmark's client (start call sent / returned / result
returned), ``F.*`` the frontend (start handler sends the command, its delivery
report, the engine's reply received, the result long poll entered and woken),
``E.*`` the engine thread (first record polled, batch formed, commands applied,
records produced, offsets sent, committed, waiters notified), ``W.*`` the worker
(polling thread received a task, its handler started, a command produced).

Usage::

    python -m bench.lat_trace [--tree DIR ...] [--rounds 1] [--seq 200] [--warmup 100]
        [--slowest N [--all] [--jvm-log]]

``--slowest N`` prints the N slowest workflows with their three largest segments,
the engine's and worker's slow passes of Python's collector and allocator trims
inside them (``P.*`` markers), and with ``--jvm-log`` the broker JVM's
compilations, GC pauses and safepoints inside each workflow's window (``-Xlog``
through ``JAVA_TOOL_OPTIONS``, timestamps from the same monotonic clock), plus
latency and compilations per 25 workflows over the run. ``--all`` counts the
warm-up workflows in too (index 0 is the first workflow of the run).

With several ``--tree`` the trees take turns round by round (A/B in one sitting).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import glob
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

_TRACER = """from __future__ import annotations
import gc, os, time
_p = os.environ.get("KRONICLE_LAT_TRACE")
_fd = os.open(f"{_p}.{os.getpid()}", os.O_WRONLY | os.O_CREAT | os.O_APPEND) if _p else None
def t(name: str) -> None:
    if _fd is not None:
        os.write(_fd, f"{time.monotonic_ns()} {name}\\n".encode())
_gc_started = 0
def _gc(phase: str, info: dict) -> None:
    # Python's collector stops every thread of the process (the GIL): note the slow passes.
    global _gc_started
    if phase == "start":
        _gc_started = time.monotonic_ns()
    elif _fd is not None and (info["generation"] == 2 or time.monotonic_ns() - _gc_started > 1_000_000):
        t(f"P.gc{info['generation']}:{(time.monotonic_ns() - _gc_started) / 1e6:.2f}:{os.getpid()}")
if _fd is not None:
    gc.callbacks.append(_gc)
"""
_IMPORT = "from kronicle._lat_trace import t as _T; "

# (file, anchor, replacement); "@@" in the replacement stands for the anchor.
_POINTS: list[tuple[str, str, str]] = [
    (
        "bench/_workloads.py",
        """    result = await engine.client.execute_workflow(
        engine.wf.OneActivity.run, workflow_id, id=workflow_id, task_queue=engine.task_queue
    )""",
        # execute_workflow itself: a client may start and wait in one request.
        """    from kronicle._lat_trace import t as _T
    _T("C.start")
    result = await engine.client.execute_workflow(
        engine.wf.OneActivity.run, workflow_id, id=workflow_id, task_queue=engine.task_queue
    )
    _T("C.done")""",
    ),
    (
        "kronicle/worker/_kafka.py",
        """        first = self._consumer.poll(0.1)
        if first is None:
            return []""",
        f"""@@
        {_IMPORT}_T("W.recv." + self._name.split("-")[-1])""",
    ),
    (
        "kronicle/worker/_kafka.py",
        """        try:
            await self._handler(msg)""",
        f"""        {_IMPORT}_T("W.handle." + self._name.split("-")[-1])
@@""",
    ),
    (
        "kronicle/worker/_kafka.py",
        # Records produced on the loop go to librdkafka together once the loop's pass is over.
        """                    self._producer.produce_batch(topic, batch)
""",
        f"""                    self._producer.produce_batch(topic, batch)
                    {_IMPORT}_T("W.produce")
""",
    ),
    (
        "kronicle/engine/processor.py",
        "        if (busy or len(msgs) > 1) and len(msgs) < room:\n",
        f"""        {_IMPORT}_T("E.first")
@@""",
    ),
    (  # the same point in main before round 5
        "kronicle/engine/processor.py",
        "        first = self._consumer.poll(wait)\n        if first is None:\n            return []\n",
        f"""@@        {_IMPORT}_T("E.first")
""",
    ),
    ("kronicle/engine/processor.py", "        return msgs\n", '        _T("E.batch")\n@@'),
    ("kronicle/engine/processor.py", "        return [first, *rest]\n", '        _T("E.batch")\n@@'),  # main before
    (
        "kronicle/engine/processor.py",
        """        if batches:
            self._commit(batches)""",
        f"""        if batches:
            {_IMPORT}_T("E.applied")
            self._commit(batches)
            _T("E.notified")""",
    ),
    (
        "kronicle/engine/processor.py",
        """            txn.commit(offsets, metadata)""",
        f"""            {_IMPORT}_T("E.produced")
            txn.commit(offsets, metadata)
            _T("E.committed")""",
    ),
    (
        "kronicle/engine/_transactions.py",
        """        try:
            self._retrying("commit_transaction", client.commit_transaction)""",
        f"""        {_IMPORT}_T("E.offsets")
@@""",
    ),
    (
        "kronicle/connectors/frontend/_handlers.py",
        '        outcome = await self._send("kronicle.workflow.StartWorkflow",',
        f"""        {_IMPORT}_T("F.start")
@@""",
    ),
    (
        "kronicle/connectors/frontend/_handlers.py",
        '        return web.json_response({"workflow_id": workflow_id, "run_id": outcome.get("run_id", "")},'
        " status=201)\n\n    async def signal_with_start",
        """        _T("F.startreply")
@@""",
    ),
    (
        "kronicle/connectors/frontend/_handlers.py",
        """        run = self.run_state(workflow_id, run_id)
        run_id = run["run_id"]""",
        f"""        {_IMPORT}_T("F.result")
@@""",
    ),
    (
        "kronicle/connectors/frontend/_handlers.py",
        '        out["closed"] = True',
        f'@@\n        {_IMPORT}_T("F.resultwoken")',  # reached from more than one handler
    ),
    (
        "kronicle/connectors/frontend/_commands.py",
        """                else:
                    loop.call_soon_threadsafe(self._resolve, delivered, None)""",
        f"""                else:
                    {_IMPORT}_T("F.delivered")
                    loop.call_soon_threadsafe(self._resolve, delivered, None)""",
    ),
    (
        "kronicle/connectors/frontend/_commands.py",
        """            try:
                schema, result = self._decode(msg.value() or b"")""",
        f"""            {_IMPORT}_T("F.replyrecv")
@@""",
    ),
]


# Later versions of the frontend: the same points where the code has moved.
_POINTS += [
    (
        "kronicle/connectors/frontend/_handlers.py",
        "        run = await self._closed_run(workflow_id, run_id, time.monotonic() + wait)\n",
        f"        {_IMPORT}_T('F.result')\n@@",
    ),
    (
        "kronicle/connectors/frontend/_commands.py",
        "                delivery.confirmed = True",
        f"                {_IMPORT}_T('F.delivered')\n@@",
    ),
    (
        "kronicle/connectors/frontend/_commands.py",
        "            messages = [first, *consumer.consume(_REPLY_BATCH, 0)]\n",
        f"@@            {_IMPORT}_T('F.replyrecv')\n",
    ),
]

# The allocator's periodic trim (engine process) holds each arena's lock in turn.
_POINTS += [
    (
        "kronicle/_memory.py",
        "        elapsed = time.perf_counter() - started\n",
        f"@@        {_IMPORT}_T(f'P.trim:{{elapsed * 1000:.2f}}:0')\n",
    ),
]

# Every point must be in the copy under one of its anchors; the frontend's are optional
# (the table simply lacks them), the client's, engine's and worker's are not.
_REQUIRED = [
    "C.start",
    "C.done",
    "E.first",
    "E.batch",
    "E.applied",
    "E.produced",
    "E.offsets",
    "E.committed",
    "E.notified",
    "W.produce",
]


def traced_copy(tree: Path, dest: Path) -> Path:
    """Copy ``tree`` to ``dest`` with the trace points in; raises if a required point found no anchor."""
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".*_cache", "results")
    shutil.copytree(tree, dest, ignore=ignore)
    (dest / "kronicle" / "_lat_trace.py").write_text(_TRACER)
    for rel, anchor, replacement in _POINTS:
        path = dest / rel
        text = path.read_text()
        if text.count(anchor) == 1:
            path.write_text(text.replace(anchor, replacement.replace("@@", anchor)))
    traced = (
        "".join(p.read_text() for p in (dest / "kronicle").rglob("*.py")) + (dest / "bench/_workloads.py").read_text()
    )
    missing = [n for n in _REQUIRED if f'_T("{n}")' not in traced and f"_T('{n}')" not in traced]
    if missing:
        raise SystemExit(f"trace points {missing} found no anchor in {dest}: update bench/lat_trace.py")
    return dest


def windows(prefix: str, last: int) -> list[list[tuple[int, str]]]:
    """The last ``last`` complete workflows, each its events (monotonic ns, label) from ``C.start`` to ``C.done``."""
    events: list[tuple[int, str]] = []
    for name in glob.glob(prefix + ".*"):
        with open(name, encoding="utf-8") as f:
            for line in f:
                ts, label = line.split(maxsplit=1)
                events.append((int(ts), label.strip()))
    events.sort()
    out: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] | None = None
    for ts, name in events:
        if name == "C.start":
            current = []
            out.append(current)
        if current is not None:
            current.append((ts, name))
    done = [w for w in out if any(n == "C.done" for _, n in w)]
    result = []
    for w in done[-last:]:
        seen: collections.Counter[str] = collections.Counter()
        labelled = []
        for ts, name in w:
            seen[name] += 1
            labelled.append((ts, f"{name}#{seen[name]}"))
            if name == "C.done":
                break
        result.append(labelled)
    return result


def table(wins: list[list[tuple[int, str]]]) -> list[tuple[str, float]]:
    """Median time of each label after ``C.start`` (labels seen in at least half the workflows), in order."""
    at: dict[str, list[float]] = collections.defaultdict(list)
    for w in wins:
        t0 = w[0][0]
        for ts, label in w:
            at[label].append((ts - t0) / 1e6)
    rows = [(label, statistics.median(v)) for label, v in at.items() if len(v) >= len(wins) / 2]
    return sorted(rows, key=lambda r: r[1])


_PHASES = [
    ("E.first", "E.batch", "batch wait"),
    ("E.batch", "E.applied", "apply"),
    ("E.applied", "E.produced", "produce calls"),
    ("E.produced", "E.offsets", "send_offsets_to_transaction"),
    ("E.offsets", "E.committed", "commit_transaction"),
    ("E.committed", "E.notified", "after commit (store, notify)"),
]


def phase_sums(wins: list[list[tuple[int, str]]]) -> dict[str, float]:
    """Median over workflows of each engine phase summed over the workflow's transactions."""
    sums: dict[str, list[float]] = collections.defaultdict(list)
    for w in wins:
        last: dict[str, int] = {}
        total: collections.Counter[str] = collections.Counter()
        for ts, label in w:
            name = label.split("#")[0]
            for a, b, phase in _PHASES:
                if name == b and a in last:
                    total[phase] += (ts - last[a]) / 1e6
            last[name] = ts
        for phase, v in total.items():
            sums[phase].append(v)
    return {phase: round(statistics.median(v), 2) for phase, v in sums.items()}


_JVM_LOG = (
    "-Xlog:jit+compilation=debug:file={d}/jit-%p.log:tn -Xlog:gc:file={d}/gc-%p.log:tn"
    " -Xlog:safepoint:file={d}/sp-%p.log:tn"
)
_NS = re.compile(r"^\[(\d+)ns\]")


def jvm_events(directory: str) -> list[tuple[int, str, float]]:
    """The broker JVM's compilations, GC pauses and safepoints: (monotonic ns, kind, ms).

    The logs come from ``-Xlog`` with the ``tn`` decoration (``System.nanoTime()``, i.e.
    ``CLOCK_MONOTONIC`` on Linux, the clock of the trace points). A compilation counts 0 ms
    (it runs on a compiler thread; what it costs a request is a core on a 2-core machine).
    """
    out: list[tuple[int, str, float]] = []
    for kind, pattern in (("jit", "jit-*.log"), ("gc", "gc-*.log"), ("safepoint", "sp-*.log")):
        for name in glob.glob(os.path.join(directory, pattern)):
            with open(name, encoding="utf-8", errors="replace") as f:
                for line in f:
                    m = _NS.match(line)
                    if not m:
                        continue
                    ms = 0.0
                    if kind == "gc":
                        pause = re.search(r"Pause.* ([\d.]+)ms$", line.strip())
                        if not pause:
                            continue
                        ms = float(pause.group(1))
                    elif kind == "safepoint":
                        total = re.search(r"Total: (\d+) ns", line)
                        if not total:
                            continue
                        ms = int(total.group(1)) / 1e6
                    out.append((int(m.group(1)), kind, ms))
    out.sort()
    return out


def _in(events: list[tuple[int, str, float]], start: int, end: int) -> dict[str, Any]:
    lo = bisect.bisect_left(events, (start, "", 0.0))
    hi = bisect.bisect_right(events, (end, "~", 0.0))
    found: dict[str, Any] = {}
    for _, kind, ms in events[lo:hi]:
        n, total = found.get(kind, (0, 0.0))
        found[kind] = (n + 1, round(total + ms, 2))
    return found


def process_roles(prefix: str) -> dict[str, str]:
    """pid → ``engine`` (its trace has the engine's points) or ``bench`` (worker + client)."""
    roles = {}
    for name in glob.glob(prefix + ".*"):
        with open(name, encoding="utf-8") as f:
            roles[name.rsplit(".", 1)[1]] = "engine" if " E.first" in f.read() else "bench"
    return roles


def _role(marker: str, roles: dict[str, str]) -> str:
    kind, ms, pid = marker.split(":")
    return f"{kind}:{ms}ms:{roles.get(pid, 'engine' if kind == 'P.trim' else pid)}"


def marker_summary(prefix: str, roles: dict[str, str]) -> dict[str, Any]:
    """Per process and kind (``P.gc2``, ``P.trim``, ...): count, median and max milliseconds over the run."""
    found: dict[str, list[float]] = collections.defaultdict(list)
    for name in glob.glob(prefix + ".*"):
        with open(name, encoding="utf-8") as f:
            for line in f:
                label = line.split(maxsplit=1)[1].strip()
                if label.startswith("P."):
                    kind, ms, _ = _role(label, roles).split(":")
                    found[f"{kind} {roles.get(name.rsplit('.', 1)[1])}"].append(float(ms.removesuffix("ms")))
    return {k: (len(v), round(statistics.median(v), 1), round(max(v), 1)) for k, v in sorted(found.items())}


def tail_report(
    wins: list[list[tuple[int, str]]], jvm: list[tuple[int, str, float]], slowest: int, roles: dict[str, str]
) -> None:
    """Print what the slowest workflows waited for, and latency against the JVM's compilations over the run."""
    totals = [(w[-1][0] - w[0][0]) / 1e6 for w in wins]
    p50 = statistics.median(totals)
    print(f"  slowest {slowest} (of {len(wins)}; p50 {p50:.1f} ms): index, ms, largest segments, markers, broker JVM")
    for i in sorted(range(len(wins)), key=lambda k: -totals[k])[:slowest]:
        w = wins[i]
        points = [(ts, label) for ts, label in w if not label.startswith("P.")]
        segments = sorted(((b[0] - a[0]) / 1e6, f"{a[1]}->{b[1]}") for a, b in itertools.pairwise(points))[::-1][:3]
        markers = [_role(label.split("#")[0], roles) for _, label in w if label.startswith("P.")]
        seg = ", ".join(f"{name} {ms:.1f}" for ms, name in segments)
        print(f"   #{i:<4} {totals[i]:7.1f}  {seg}  {markers or ''}  {_in(jvm, w[0][0], w[-1][0])}")
    if jvm:
        print("  per 25 workflows: p50 / max ms, broker compilations, GC pauses (n, ms), safepoints (n, ms)")
        for k in range(0, len(wins), 25):
            chunk = wins[k : k + 25]
            lat = totals[k : k + 25]
            found = _in(jvm, chunk[0][0][0], chunk[-1][-1][0])
            print(
                f"   {k:4d}-{k + len(chunk) - 1:<4d} {statistics.median(lat):6.1f} / {max(lat):6.1f}"
                f"  jit {found.get('jit', (0, 0))[0]:4d}  gc {found.get('gc', (0, 0.0))}"
                f"  safepoints {found.get('safepoint', (0, 0.0))}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", type=Path, help="source tree (default: this one)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seq", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--slowest", type=int, default=0, help="print the N slowest workflows, segment by segment")
    parser.add_argument("--jvm-log", action="store_true", help="log the broker JVM's JIT, GC and safepoints")
    parser.add_argument("--all", action="store_true", help="include the warm-up workflows in --slowest")
    parser.add_argument("--keep", action="store_true", help="keep the trace files and JVM logs")
    args = parser.parse_args()
    trees = args.tree or [Path(__file__).resolve().parent.parent]
    work = Path(tempfile.mkdtemp(prefix="kronicle-lat-trace-"))
    copies = [traced_copy(tree, work / f"tree{i}") for i, tree in enumerate(trees)]
    for r in range(args.rounds):
        for i, copy in enumerate(copies):
            prefix = str(work / f"trace-{i}-{r}")
            env = {**os.environ, "KRONICLE_LAT_TRACE": prefix, "PYTHONPATH": str(copy)}
            jvm_dir = f"{prefix}-jvm"
            if args.jvm_log:  # every JVM honours JAVA_TOOL_OPTIONS; %p keeps the format tool's log apart
                os.makedirs(jvm_dir)
                env["JAVA_TOOL_OPTIONS"] = _JVM_LOG.format(d=jvm_dir)
            cmd = [sys.executable, "-m", "bench.latency", "--seq", str(args.seq), "--warmup", str(args.warmup)]
            run = subprocess.run(
                [*cmd, "--signal-workflows", "0"], cwd=copy, env=env, capture_output=True, text=True, check=False
            )
            if run.returncode != 0:
                raise SystemExit(f"bench.latency failed in {copy} ({run.returncode}):\n{run.stderr[-3000:]}")
            summary = json.loads(run.stdout)
            wins = windows(prefix, args.seq)
            print(f"\n== {trees[i]} round {r + 1}: {summary['sequential']}, load {summary['load_before']}")
            previous = 0.0
            for label, median in table(wins):
                print(f"  {label:22s} {median:7.2f} ms  (+{median - previous:5.2f})")
                previous = median
            print("  engine phases, summed over the workflow's transactions (median):", phase_sums(wins), flush=True)
            if args.slowest:
                every = windows(prefix, args.seq + args.warmup) if args.all else wins
                roles = process_roles(prefix)
                tail_report(every, jvm_events(jvm_dir) if args.jvm_log else [], args.slowest, roles)
                print(
                    "  slow collector passes and trims over the run (n, median ms, max ms):",
                    marker_summary(prefix, roles),
                )
    if args.keep:
        print(f"traces kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
