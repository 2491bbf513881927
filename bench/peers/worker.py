"""``python -m bench.peers.worker FRAMEWORK``: one peer framework alone in its own process.

It builds that framework's agent over the example services, prints one ``ready`` line of JSON,
then answers JSON commands read from stdin, one a line, on stdout:

- ``{"op": "run", "task": T, "expect": E}``: one run; its wall time and output.
- ``{"op": "batch", "task": T, "expect": E, "n": N, "warmup": W}``: W concurrent warm-up runs,
  then N concurrent runs; this process's CPU ms and peak RSS (the same /proc figures as
  agentd's), latencies and the reasons of failed runs.

A run fails when it raises or its answer lacks ``expect``. Anything a framework prints goes to
stderr so stdout carries only the replies.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
import time
import traceback
from collections import Counter
from typing import Any, TextIO

import grpc

from bench._common import proc_cpu_ms, proc_peak_rss_mb
from bench.peers.common import BY_NAME, RunTask, Stubs
from examples.calculator.v1 import calculator_pb2_grpc
from examples.ledger.v1 import ledger_pb2_grpc

_tracebacks = 0


def _reason(exc: Exception) -> str:
    """One line saying how a run failed; a gRPC error by its status, not its long repr."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"gRPC {exc.code().name} from an upstream call: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"[:300]


async def _one(run: RunTask, task: str, expect: str) -> tuple[bool, float, str]:
    started = time.perf_counter()
    try:
        output = await run(task)
    except Exception as exc:  # a failed run is a figure, not a crash of the benchmark
        global _tracebacks
        if _tracebacks < 3:  # the first few go to the worker's log, to say how runs failed
            _tracebacks += 1
            traceback.print_exc()
        return False, time.perf_counter() - started, _reason(exc)
    took = time.perf_counter() - started
    if expect not in output:
        return False, took, f"wrong answer: {output[:200]!r}"
    return True, took, output


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


async def _batch(run: RunTask, command: dict[str, Any]) -> dict[str, Any]:
    task, expect = command["task"], command["expect"]
    warm = await asyncio.gather(*(_one(run, task, expect) for _ in range(command["warmup"])))
    pid = os.getpid()
    cpu_before = proc_cpu_ms(pid)
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(_one(run, task, expect) for _ in range(command["n"])))
    wall = time.perf_counter() - started
    cpu_ms = proc_cpu_ms(pid) - cpu_before
    latencies = sorted(took for ok, took, _ in outcomes if ok)
    errors = Counter(why for ok, _, why in outcomes if not ok)
    return {
        "warmup_failed": sum(1 for ok, _, _ in warm if not ok),
        "cpu_ms": cpu_ms,
        "peak_rss_mb": proc_peak_rss_mb(pid),
        "wall_s": wall,
        "failed": sum(errors.values()),
        "errors": dict(errors.most_common(5)),
        "p50_s": _pct(latencies, 0.50),
        "p99_s": _pct(latencies, 0.99),
    }


async def _serve(args: argparse.Namespace, out: TextIO) -> None:
    framework = BY_NAME[args.framework]
    module = importlib.import_module(f"bench.peers.{framework.module}")
    ledger = grpc.aio.insecure_channel(args.ledger)
    calculator = grpc.aio.insecure_channel(args.calculator)
    stubs = Stubs(
        ledger=ledger_pb2_grpc.LedgerServiceStub(ledger),
        calculator=calculator_pb2_grpc.CalculatorServiceStub(calculator),
    )
    run: RunTask = module.build(args.llm, stubs)

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    send({"ready": framework.name, "versions": framework.versions()})
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = json.loads(line)
            if command["op"] == "run":
                ok, took, said = await _one(run, command["task"], command["expect"])
                send({"ok": ok, "wall_s": took, "output": said})
            elif command["op"] == "batch":
                send(await _batch(run, command))
            else:
                send({"error": f"unknown op {command['op']!r}"})
    finally:
        await ledger.close(None)
        await calculator.close(None)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.worker")
    parser.add_argument("framework", choices=sorted(BY_NAME))
    parser.add_argument("--llm", required=True, help="the scripted model's base URL")
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--calculator", required=True)
    args = parser.parse_args()
    # Keep the reply channel to ourselves: whatever a framework prints goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    asyncio.run(_serve(args, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
