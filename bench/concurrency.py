"""``concurrency_1000``: many concurrent ``Run`` calls against one agentd process.

agentd runs alone in its own process (``python -m agentd serve``, the deployed
entry point, logging at info as deployed) so its CPU time and peak RSS are its
own; the calculator runs in another process; the scripted model (200 ms a call)
and the callers live in this one. Each run is a plan of 3 independent tool
calls: 2 model calls (planner, responder) and 3 upstream calls.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from bench import _stack
from bench._common import Result, load, proc_cpu_ms, proc_peak_rss_mb, raise_fd_limit
from bench._procs import child
from tests.support.scripted_llm import ScriptedLLM

MODEL_LATENCY_S = 0.2
CPU_GOAL_MS = 5.0
RSS_GOAL_MB = 300.0
_CHANNELS = 8  # spread the callers over a few HTTP/2 connections, as many clients would
_TASK = "Evaluate three expressions."


def _plan() -> dict[str, Any]:
    return _stack.plan(
        *(
            {
                "id": f"s{i}",
                "tool": "CalculatorService_Evaluate",
                "arguments": {"expression": f"{i} {i} *"},
            }
            for i in range(1, 4)
        )
    )


async def run(quick: bool, only: Sequence[str] = ()) -> list[Result]:
    from agentd.v1 import agent_pb2, agent_pb2_grpc  # after the fd limit is raised

    n = 200 if quick else 1000
    fd_limit = raise_fd_limit()
    llm = ScriptedLLM(latency_s=MODEL_LATENCY_S)
    await llm.start()
    llm.responder(_stack.responder(_plan(), _stack.fanout_react))  # plan mode only
    calculator_args = ["-m", "examples.calculator", "--port", "0", "--reflection", "v1alpha"]
    try:
        with tempfile.TemporaryDirectory(prefix="agentd-bench-") as tmp:
            async with child(calculator_args) as (_calc, calculator):
                config = _stack.write_config(
                    Path(tmp),
                    llm_url=llm.base_url,
                    ledger=calculator,  # unused by the plan; any reachable target will do
                    calculator=calculator,
                    max_concurrent_runs=n * 2,
                    log_level="info",
                )
                daemon_args = ["-m", "agentd", "serve", "--config", str(config)]
                log_path = Path(tmp) / "agentd.log"
                async with child(daemon_args, stderr_path=log_path) as (daemon, address):
                    channels = [grpc.aio.insecure_channel(address) for _ in range(_CHANNELS)]
                    stubs = [agent_pb2_grpc.AgentServiceStub(c) for c in channels]
                    request = agent_pb2.RunRequest(
                        task=_TASK, mode=agent_pb2.LOOP_MODE_PLAN_EXECUTE
                    )
                    metadata = (("authorization", _stack.SECRET),)

                    async def one(i: int) -> tuple[bool, float, str]:
                        started = time.perf_counter()
                        try:
                            response = await stubs[i % _CHANNELS].Run(
                                request, metadata=metadata, timeout=300
                            )
                        except grpc.aio.AioRpcError as exc:
                            took = time.perf_counter() - started
                            return False, took, f"{exc.code().name}: {exc.details()}"
                        took = time.perf_counter() - started
                        ok = response.status == agent_pb2.RUN_STATUS_SUCCEEDED
                        return ok, took, "" if ok else response.error

                    try:
                        # Warm-up: connections, validators and caches on the daemon's side.
                        warm = await asyncio.gather(*(one(i) for i in range(_CHANNELS * 2)))
                        if not all(ok for ok, _, _ in warm):
                            raise RuntimeError(f"warm-up runs failed: {warm}")
                        cpu_before = proc_cpu_ms(daemon.pid)
                        started = time.perf_counter()
                        outcomes = await asyncio.gather(*(one(i) for i in range(n)))
                        wall = time.perf_counter() - started
                        cpu_ms = proc_cpu_ms(daemon.pid) - cpu_before
                        peak_mb = proc_peak_rss_mb(daemon.pid)
                    finally:
                        for channel in channels:
                            await channel.close(None)
    finally:
        await llm.stop()

    latencies = sorted(took for ok, took, _ in outcomes if ok)
    errors = sorted({why for ok, _, why in outcomes if not ok})
    failed = sum(1 for ok, _, _ in outcomes if not ok)
    cpu_per_run = cpu_ms / n
    return [
        Result(
            name="concurrency_1000",
            value=cpu_per_run,
            unit="agentd CPU ms/run",
            goal=f"0 failed, <= {CPU_GOAL_MS:g} ms CPU/run, peak RSS <= {RSS_GOAL_MB:g} MB",
            met=failed == 0 and cpu_per_run <= CPU_GOAL_MS and peak_mb <= RSS_GOAL_MB,
            quick=quick,
            details={
                "concurrent_runs": n,
                "completed": n - failed,
                "failed": failed,
                "errors": errors[:5],
                "runs_per_s": round(n / wall, 1),
                "wall_s": round(wall, 3),
                "p50_s": round(_pct(latencies, 0.50), 3),
                "p99_s": round(_pct(latencies, 0.99), 3),
                "agentd_cpu_ms_per_run": round(cpu_per_run, 2),
                "agentd_peak_rss_mb": round(peak_mb, 1),
                "model_latency_s": MODEL_LATENCY_S,
                "model_calls_per_run": 2,
                "tool_calls_per_run": 3,
                "fd_limit": fd_limit,
                "load": load(),
            },
        )
    ]


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]
