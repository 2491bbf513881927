"""The benchmark suite runs and writes the documented JSON shape (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


PEERS = ("openai-agents", "langgraph", "pydantic-ai")
_PEER_MODULES = ("agents", "langgraph", "langchain_openai", "pydantic_ai")


def test_quick_peer_rows_run_every_framework_side_by_side(tmp_path: Path) -> None:
    for module in _PEER_MODULES:
        pytest.importorskip(module, reason="the bench extra is not installed")
    out = tmp_path / "results.json"
    only = "peer_fanout,peer_overhead"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", only, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    fanout, overhead = report["benchmarks"]
    assert (fanout["name"], overhead["name"]) == ("peer_fanout", "peer_overhead")
    for entry in (fanout, overhead):
        assert entry.keys() >= KEYS
        assert entry["quick"] is True
        assert entry["value"] > 0 and entry["baseline"] > 0 and entry["ratio"] > 0
        frameworks = entry["details"]["frameworks"]
        assert set(frameworks) == {"agentd", *PEERS}
        assert entry["details"]["missing_peers"] == []
        # The exact versions measured, as the README's table names them.
        assert frameworks["openai-agents"]["versions"]["openai-agents"] == "0.24.0"
        assert frameworks["langgraph"]["versions"]["langgraph"] == "1.2.22"
        assert frameworks["pydantic-ai"]["versions"]["pydantic-ai-slim"] == "2.62.0"
        assert frameworks["agentd"]["versions"]["agentd"].startswith("0.1.0")
    fan = fanout["details"]["frameworks"]
    # agentd's plan carries its answer as a template over the sum: one model call; each
    # peer's ReAct loop makes the lookups in one turn, the sum in the next and answers in a third.
    assert fan["agentd"]["model_calls"] == 1
    assert all(fan[p]["model_calls"] == 3 for p in PEERS)
    assert fanout["baseline"] == pytest.approx(min(fan[p]["wall_s"] for p in PEERS), abs=1e-3)
    over = overhead["details"]["frameworks"]
    assert overhead["details"]["concurrent_runs"] == 200
    assert over["agentd"]["failed"] == 0 and over["agentd"]["errors"] == {}
    for who, figures in over.items():
        assert figures["cpu_ms_per_run"] > 0 and figures["peak_rss_mb"] > 0, who
        assert figures["failed"] == sum(figures["errors"].values()), who
    assert "peer_fanout" in done.stdout and "peer_overhead" in done.stdout


def test_peer_rows_skip_in_one_line_without_the_bench_extra(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    # A None entry in sys.modules makes the import machinery treat the package as absent.
    hide = "; ".join(f"sys.modules[{m!r}] = None" for m in _PEER_MODULES)
    code = (
        f"import sys; {hide}; from bench.__main__ import main; "
        f"sys.exit(main(['--quick', '--only', 'peer_fanout,peer_overhead', '--out', {str(out)!r}]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["benchmarks"] == []
    assert [s["name"] for s in report["skipped"]] == ["peer_fanout", "peer_overhead"]
    assert "pip install -e '.[bench]'" in report["skipped"][0]["reason"]
    assert "peer_fanout: skipped, the peer frameworks are not installed" in done.stdout
