"""The server process's allocator tuning really reaches glibc: arenas capped, free pages given back, calls counted."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from kronicle import _memory
from kronicle._memory import AllocatorOptions, MallocTrimmer, tune_allocator

ON_GLIBC = (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
glibc_only = pytest.mark.skipif(not ON_GLIBC, reason="the tuning is glibc's; elsewhere it is a no-op")

# A fresh interpreter: tunes (or not) as argv[1] says, then starts four threads that each allocate
# and stay alive together, and prints how many arenas glibc's malloc_info reports.
_ARENAS_SCRIPT = textwrap.dedent(
    """
    import ctypes, json, re, sys, tempfile, threading
    from kronicle._memory import AllocatorOptions, tune_allocator

    def arenas():
        libc = ctypes.CDLL("libc.so.6")
        libc.fopen.restype = ctypes.c_void_p
        libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        libc.fclose.argtypes = [ctypes.c_void_p]
        libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        with tempfile.NamedTemporaryFile() as tmp:
            fp = libc.fopen(tmp.name.encode(), b"w")
            libc.malloc_info(0, fp)
            libc.fclose(fp)
            return len(re.findall(r"<heap nr=", open(tmp.name).read()))

    def run():
        ready = threading.Barrier(5)
        kept = []

        def work():
            kept.append(bytearray(50_000))  # a malloc from this thread's arena
            ready.wait()
            ready.wait()

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        ready.wait()
        count = arenas()
        ready.wait()
        for t in threads:
            t.join()
        return count

    with tune_allocator(AllocatorOptions(arena_max=int(sys.argv[1]), trim_interval_s=0)):
        count = run()
    from prometheus_client import REGISTRY
    print(json.dumps({"arenas": count, "gauge": REGISTRY.get_sample_value("kronicle_process_malloc_arena_max")}))
    """
)

# A fresh interpreter: 60 MB in 64 KB blocks, all freed but the last (which pins the heap's top,
# so free() alone cannot shrink it), then RSS before and after one MallocTrimmer.trim_once().
_TRIM_SCRIPT = textwrap.dedent(
    """
    import json
    from kronicle._memory import MallocTrimmer, resident_bytes

    blocks = [bytearray(64_000) for _ in range(1000)]
    for b in blocks:
        b[::4096] = b"x" * len(b[::4096])  # touch every page so it is resident
    last = blocks[-1]
    del blocks
    before = resident_bytes()
    seconds = MallocTrimmer(30).trim_once()
    after = resident_bytes()
    print(json.dumps({"before": before, "after": after, "seconds": seconds, "last": len(last)}))
    """
)


def _run(script: str, *args: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


@glibc_only
def test_glibc_is_found_on_glibc() -> None:
    assert _memory.glibc() is not None


@glibc_only
def test_the_arena_cap_holds_for_threads_started_after_it() -> None:
    untuned, capped = _run(_ARENAS_SCRIPT, "0"), _run(_ARENAS_SCRIPT, "2")
    assert untuned["arenas"] >= 4, f"glibc gave four allocating threads only {untuned} arenas without a cap"
    assert capped["arenas"] <= 2, f"with arena_max=2 the process still has {capped} arenas: the cap did not reach glibc"
    # The metric says what was set: the cap, or 0 (glibc's default).
    assert (untuned["gauge"], capped["gauge"]) == (0, 2)


def test_limit_arenas_refuses_zero_and_negative() -> None:
    assert _memory.limit_arenas(0) is False
    assert _memory.limit_arenas(-1) is False


@glibc_only
def test_a_trim_gives_freed_heap_memory_back_to_the_os() -> None:
    out = _run(_TRIM_SCRIPT)
    released_mb = (out["before"] - out["after"]) / 2**20
    assert released_mb > 30, f"malloc_trim gave back only {released_mb:.1f} MB of about 60 MB freed: {out}"


def test_trim_once_is_timed_and_counted() -> None:
    calls: list[int] = []
    trims, count = _sample("kronicle_process_malloc_trims_total"), _sample("kronicle_process_malloc_trim_seconds_count")
    seconds = MallocTrimmer(30, trim=lambda: calls.append(1) is None).trim_once()
    assert calls == [1]
    assert seconds >= 0
    assert _sample("kronicle_process_malloc_trims_total") == trims + 1
    assert _sample("kronicle_process_malloc_trim_seconds_count") == count + 1
    assert REGISTRY.get_sample_value("kronicle_process_malloc_trim_cpu_seconds_total") is not None


def test_the_trimmer_thread_trims_every_interval_until_stopped() -> None:
    calls: list[float] = []
    with MallocTrimmer(0.02, trim=lambda: calls.append(time.monotonic()) is None):
        deadline = time.monotonic() + 5
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(calls) >= 3
    stopped = len(calls)
    time.sleep(0.1)
    assert len(calls) == stopped, "the trimmer kept trimming after stop()"


def test_a_failing_trim_does_not_end_the_trimmer() -> None:
    calls: list[int] = []

    def trim() -> bool:
        calls.append(1)
        raise OSError("boom")

    with MallocTrimmer(0.02, trim=trim):
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(calls) >= 2


def test_the_trimmer_needs_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="turn the trim off"):
        MallocTrimmer(0)


@glibc_only
def test_tune_allocator_runs_a_trimmer_while_in_the_block() -> None:
    with tune_allocator(AllocatorOptions(arena_max=0, trim_interval_s=30)) as trimmer:
        assert trimmer is not None
        assert trimmer.interval_s == 30
    with tune_allocator(AllocatorOptions(arena_max=0, trim_interval_s=0)) as none:
        assert none is None


def test_tune_allocator_does_nothing_off_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_memory, "glibc", lambda: None)
    assert _memory.limit_arenas(2) is False
    assert _memory.malloc_trim() is None
    with tune_allocator(AllocatorOptions(arena_max=2, trim_interval_s=1)) as trimmer:
        assert trimmer is None


def test_start_dev_tunes_the_allocator_before_it_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    from kronicle.cli import app, server

    seen: list[object] = []

    @contextlib.contextmanager
    def tune(options: AllocatorOptions) -> Iterator[None]:
        seen.append(options)
        yield None
        seen.append("untuned")

    async def serve(*args: object) -> None:
        seen.append("served")

    monkeypatch.setattr(server, "tune_allocator", tune)
    monkeypatch.setattr(server, "_serve", serve)
    result = CliRunner().invoke(app, ["server", "start-dev", "--malloc-arena-max", "3", "--malloc-trim-seconds", "0"])
    assert result.exit_code == 0, result.output
    assert seen == [AllocatorOptions(arena_max=3, trim_interval_s=0.0), "served", "untuned"]
    seen.clear()
    assert CliRunner().invoke(app, ["server", "start-dev"]).exit_code == 0
    assert seen[0] == AllocatorOptions(), "start-dev's defaults differ from AllocatorOptions()"


def test_engine_run_tunes_the_allocator_before_it_starts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from kronicle.cli import app, engine

    seen: list[object] = []
    monkeypatch.setattr(engine, "start_tuning", seen.append)
    monkeypatch.setattr(engine, "_run_workflow_engine", lambda *args: seen.append("ran"))
    args = ["engine", "run", "--kafka", "127.0.0.1:1", "--state-dir", str(tmp_path), "--handler", "workflow"]
    result = CliRunner().invoke(app, [*args, "--malloc-trim-seconds", "10"])
    assert result.exit_code == 0, result.output
    assert seen == [AllocatorOptions(arena_max=2, trim_interval_s=10.0), "ran"]


@glibc_only
def test_heap_usage_sees_malloc_memory_come_and_go() -> None:
    before = _memory.heap_usage()
    assert before is not None
    # 1 KiB objects are past pymalloc's 512-byte limit: each is a malloc chunk of the heap.
    chunks = [bytes(1024) + bytes([i % 256]) for i in range(20_000)]
    held = _memory.heap_usage()
    assert held is not None
    assert held["in_use"] - before["in_use"] > 15 * 2**20
    del chunks
    after = _memory.heap_usage()
    assert after is not None
    assert held["in_use"] - after["in_use"] > 15 * 2**20


@glibc_only
def test_tuning_exports_the_heap_and_python_blocks_at_scrape_time() -> None:
    with tune_allocator(AllocatorOptions(arena_max=0, trim_interval_s=0)):
        pass
    in_use = REGISTRY.get_sample_value("kronicle_process_malloc_bytes", {"kind": "in_use"})
    blocks = REGISTRY.get_sample_value("kronicle_process_python_allocated_blocks")
    assert in_use is not None and in_use > 0
    assert blocks is not None and blocks > 0
    # Read at scrape time, not frozen at registration.
    held = [object() for _ in range(50_000)]
    grown = REGISTRY.get_sample_value("kronicle_process_python_allocated_blocks")
    assert grown is not None and grown - blocks >= 40_000
    del held


def test_tuning_freezes_the_startup_objects_out_of_the_collector() -> None:
    # A fresh interpreter: the freeze is process-wide and cannot be undone for what it froze.
    script = textwrap.dedent(
        """
        import gc, json, sys
        from kronicle._memory import AllocatorOptions, start_tuning
        before = gc.get_freeze_count()
        start_tuning(AllocatorOptions(arena_max=0, trim_interval_s=0, freeze_startup_objects=sys.argv[1] == "1"))
        print(json.dumps({"before": before, "after": gc.get_freeze_count()}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    frozen, kept = (
        json.loads(
            subprocess.run(
                [sys.executable, "-c", script, flag], capture_output=True, text=True, check=True, env=env
            ).stdout
        )
        for flag in ("1", "0")
    )
    assert frozen["before"] == 0 and frozen["after"] > 10_000  # kronicle's imports: tens of thousands
    assert kept["after"] == 0
