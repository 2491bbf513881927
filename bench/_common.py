"""What every benchmark shares: the result entry, timing helpers and machine facts."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Skipped(Exception):
    """Raised by a suite that cannot run here (an optional extra is missing): one line, no row."""


@dataclass
class Result:
    """One benchmark's JSON entry; ``ratio`` and ``met`` are derived by the runner."""

    name: str
    value: float
    unit: str
    goal: str
    baseline: float | None = None
    met: bool = True
    quick: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": round(self.value, 6),
            "unit": self.unit,
            "baseline": None if self.baseline is None else round(self.baseline, 6),
            "ratio": None if self.ratio is None else round(self.ratio, 4),
            "goal": self.goal,
            "met": self.met,
            "quick": self.quick,
            "details": self.details,
        }


async def per_call_us(fn: Callable[[], Awaitable[Any]], calls: int) -> float:
    """Mean microseconds per awaited call over ``calls`` sequential calls."""
    start = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - start) / calls * 1e6


async def interleaved(
    subject: Callable[[], Awaitable[Any]],
    baseline: Callable[[], Awaitable[Any]],
    *,
    calls: int,
    rounds: int,
    warmup: int,
) -> tuple[list[float], list[float]]:
    """Per-call times of both, batch by batch, alternating so load drift hits both alike."""
    await per_call_us(subject, warmup)
    await per_call_us(baseline, warmup)
    ours: list[float] = []
    theirs: list[float] = []
    for i in range(rounds):
        # Alternate which goes first so neither always gets the warmer caches.
        if i % 2:
            theirs.append(await per_call_us(baseline, calls))
            ours.append(await per_call_us(subject, calls))
        else:
            ours.append(await per_call_us(subject, calls))
            theirs.append(await per_call_us(baseline, calls))
    return ours, theirs


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def machine() -> str:
    """CPU model, usable cores, RAM and OS in one line."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    os_name = platform.platform(terse=True)
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} ({platform.release()})"
    except OSError:
        pass
    return f"{_cpu_model()}, {cores} cores, {_ram_gb():.1f} GB RAM, {os_name}"


def python() -> str:
    return f"{platform.python_implementation()} {sys.version.split()[0]}"


def load() -> list[float]:
    """1, 5 and 15 minute load averages: the machine is shared, so record how busy it was."""
    return [round(x, 2) for x in os.getloadavg()]


def proc_cpu_ms(pid: int) -> float:
    """User + system CPU time of a process, in ms, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def raise_fd_limit() -> int:
    """Thousands of sockets are open at once (callers, model HTTP, upstreams); the soft limit
    is raised to the hard one, and child processes inherit it. The limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
