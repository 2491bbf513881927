"""The benchmark suite runs and writes the documented JSON shape (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"name", "value", "unit", "baseline", "ratio", "goal", "met"}


def test_quick_dispatch_small_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "dispatch_small", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert isinstance(report["machine"], str) and report["machine"]
    assert isinstance(report["python"], str) and report["python"]
    (entry,) = report["benchmarks"]
    assert entry.keys() >= KEYS
    assert entry["name"] == "dispatch_small"
    assert entry["quick"] is True
    assert isinstance(entry["met"], bool)
    assert entry["value"] > 0 and entry["baseline"] > 0 and entry["ratio"] > 0
    assert "dispatch_small" in done.stdout  # the printed table


def test_unknown_benchmark_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "no_such_bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no_such_bench" in done.stderr
