"""``peer_fanout`` and ``peer_overhead``: the same work through agentd and three peer frameworks.

Everyone talks to the same scripted model server (this process, the same latency) and the same
example gRPC services; agentd runs as its deployed daemon (``python -m agentd serve``, the
config of bench/_stack.py) and each peer alone in its own worker process (bench/peers/worker.py),
so CPU time and peak RSS are each framework's own. The peers' tools are decorated async
functions over the generated stubs (bench/peers/with_*.py); the model answers their tool calls
as a real model would (bench/peers/script.py), agentd's plan as in plan_vs_react_fanout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import grpc

from bench import _stack
from bench._common import (
    Result,
    Skipped,
    load,
    proc_cpu_ms,
    proc_peak_rss_mb,
    raise_fd_limit,
)
from bench._procs import ROOT, child
from bench.peers import script
from bench.peers.common import FRAMEWORKS, Framework
from tests.support.scripted_llm import ScriptedLLM

FANOUT_MODEL_S = 0.5  # as plan_vs_react_fanout
FANOUT_TOOL_S = 0.1
OVERHEAD_MODEL_S = 0.2  # as concurrency_1000
FANOUT_GOAL = 0.5  # agentd's wall time <= this x the fastest peer's
CPU_GOAL = 0.5  # agentd's CPU per run <= this x the lightest peer's
_CHANNELS = 8  # agentd's callers spread over a few HTTP/2 connections, as in concurrency_1000
_WARMUP = 16
_REPLY_TIMEOUT_S = 900.0


async def run(quick: bool, only: Sequence[str] = ()) -> list[Result]:
    peers = [f for f in FRAMEWORKS if f.installed()]
    if not peers:
        raise Skipped("the peer frameworks are not installed (pip install -e '.[bench]')")
    missing = [f.name for f in FRAMEWORKS if f not in peers]
    results = []
    if not only or "peer_fanout" in only:
        results.append(await _fanout(peers, quick))
    if not only or "peer_overhead" in only:
        results.append(await _overhead(peers, quick))
    for result in results:
        result.details["missing_peers"] = missing
    return results


def _agentd_version() -> dict[str, str]:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    commit = done.stdout.strip() if done.returncode == 0 else "unknown"
    return {
        "agentd": f"{metadata.version('agentd')} ({commit})",
        "openai": metadata.version("openai"),
    }


# -- the peers' worker processes ------------------------------------------------------------


@dataclass
class Peer:
    framework: Framework
    proc: asyncio.subprocess.Process
    versions: dict[str, str]
    log: Path

    async def ask(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), _REPLY_TIMEOUT_S)
        if not line:
            raise RuntimeError(f"{self.framework.name} worker died: {self._tail()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""


@contextlib.asynccontextmanager
async def _peer(
    framework: Framework, tmp: Path, *, llm: str, ledger: str, calculator: str
) -> AsyncIterator[Peer]:
    log = tmp / f"{framework.name}.log"
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.peers.worker",
            framework.name,
            f"--llm={llm}",
            f"--ledger={ledger}",
            f"--calculator={calculator}",
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            # Nothing phones home: no LangSmith tracing, no Agents SDK trace upload.
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "LANGSMITH_TRACING": "false",
                "OPENAI_AGENTS_DISABLE_TRACING": "1",
            },
        )
        peer = Peer(framework, proc, {}, log)
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 120)
            if not line:
                raise RuntimeError(f"{framework.name} worker exited: {peer._tail()}")
            peer.versions = json.loads(line)["versions"]
            yield peer
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def _agentd_config(tmp: Path, llm: str, ledger: str, calculator: str, n: int, level: str) -> Path:
    return _stack.write_config(
        tmp,
        llm_url=llm,
        ledger=ledger,
        calculator=calculator,
        max_concurrent_runs=n,
        log_level=level,
    )


async def _agentd_run(stub: Any, task: str) -> tuple[bool, float, str]:
    from agentd.v1 import agent_pb2

    request = agent_pb2.RunRequest(task=task, mode=agent_pb2.LOOP_MODE_PLAN_EXECUTE)
    started = time.perf_counter()
    try:
        response = await stub.Run(
            request, metadata=(("authorization", _stack.SECRET),), timeout=300
        )
    except grpc.aio.AioRpcError as exc:
        return (
            False,
            time.perf_counter() - started,
            f"gRPC {exc.code().name} from Run: {exc.details()}",
        )
    took = time.perf_counter() - started
    if response.status != agent_pb2.RUN_STATUS_SUCCEEDED:
        return False, took, f"status {response.status}: {response.error}"
    failed = [s.id for s in response.steps if s.status != agent_pb2.STEP_STATUS_SUCCEEDED]
    if failed:
        return False, took, f"failed steps {failed}"
    return True, took, response.output


# -- peer_fanout ----------------------------------------------------------------------------


async def _fanout(peers: list[Framework], quick: bool) -> Result:
    from agentd.v1 import agent_pb2_grpc
    from examples.calculator.server import serve as serve_calculator
    from examples.ledger.server import serve as serve_ledger

    reps = 1 if quick else 3
    meter = script.Meter(
        # agentd's plan carries its answer (one model call); the peers' models answer after
        # their tool turns, as a tool-calling model does.
        agentd=_stack.responder(_stack.fanout_plan(template=True), _stack.fanout_react),
        peers=script.fanout(parallel=True),
    )
    llm = ScriptedLLM(latency_s=FANOUT_MODEL_S)
    await llm.start()
    llm.responder(meter)
    ledger = await serve_ledger(latency_s=FANOUT_TOOL_S)
    calculator = await serve_calculator(latency_s=FANOUT_TOOL_S)
    where = {"llm": llm.base_url, "ledger": ledger.address, "calculator": calculator.address}
    times: dict[str, list[float]] = {}
    usage: dict[str, dict[str, int]] = {}
    sequential: dict[str, list[float]] = {}
    sequential_usage: dict[str, dict[str, int]] = {}
    versions: dict[str, dict[str, str]] = {"agentd": _agentd_version()}
    try:
        with tempfile.TemporaryDirectory(prefix="agentd-bench-peers-") as name:
            tmp = Path(name)
            config = _agentd_config(
                tmp, llm.base_url, ledger.address, calculator.address, 64, "warning"
            )
            async with contextlib.AsyncExitStack() as stack:
                _daemon, address = await stack.enter_async_context(
                    child(["-m", "agentd", "serve", "--config", str(config)])
                )
                channel = grpc.aio.insecure_channel(address)
                stack.push_async_callback(channel.close, None)
                stub = agent_pb2_grpc.AgentServiceStub(channel)
                workers = [await stack.enter_async_context(_peer(f, tmp, **where)) for f in peers]
                for w in workers:
                    versions[w.framework.name] = w.versions

                async def once(who: str) -> float:
                    start = len(meter.sizes)
                    if who == "agentd":
                        ok, took, said = await _agentd_run(stub, _stack.FANOUT_TASK)
                    else:
                        worker = next(w for w in workers if w.framework.name == who)
                        reply = await worker.ask(
                            op="run", task=script.FANOUT_TASK, expect="The total is"
                        )
                        ok, took, said = reply["ok"], reply["wall_s"], reply["output"]
                    if not ok:
                        raise RuntimeError(f"{who}'s fan-out run failed: {said}")
                    (sequential_usage if meter.peers is seq else usage)[who] = meter.since(start)
                    return float(took)

                seq = script.fanout(parallel=False)
                names = ["agentd", *(f.name for f in peers)]
                for who in names:  # warm-up: connections, caches, lazy imports
                    await once(who)
                for rep in range(reps):
                    # Rotate who goes first so load drift does not always hit the same one.
                    for who in names[rep % len(names) :] + names[: rep % len(names)]:
                        times.setdefault(who, []).append(await once(who))
                # The peers again, the model calling one tool a turn (agentd's ReAct script);
                # quick mode leaves it out (it is 10 model calls a run).
                meter.peers = seq
                for _ in range(0 if quick else reps):
                    for who in names[1:]:
                        sequential.setdefault(who, []).append(await once(who))
    finally:
        await ledger.stop(None)
        await calculator.stop(None)
        await llm.stop()

    walls = {who: statistics.median(t) for who, t in times.items()}
    fastest = min((w for w in walls if w != "agentd"), key=walls.__getitem__)
    ratio = walls["agentd"] / walls[fastest]
    frameworks = {
        who: {
            "wall_s": round(walls[who], 3),
            "runs_s": [round(x, 3) for x in times[who]],
            "ratio_agentd_to_this": round(
                ratio if who == fastest else walls["agentd"] / walls[who], 3
            ),
            **usage[who],
            **(
                {
                    "one_tool_a_turn_wall_s": round(statistics.median(sequential[who]), 3),
                    "one_tool_a_turn": sequential_usage[who],
                }
                if who in sequential
                else {}
            ),
            "versions": versions[who],
        }
        for who in walls
    }
    return Result(
        name="peer_fanout",
        value=walls["agentd"],
        unit="s wall time, agentd",
        goal=f"<= {FANOUT_GOAL}x the fastest peer's",
        baseline=walls[fastest],
        met=ratio <= FANOUT_GOAL,
        quick=quick,
        details={
            "fastest_peer": fastest,
            "frameworks": frameworks,
            "model_latency_s": FANOUT_MODEL_S,
            "tool_latency_s": FANOUT_TOOL_S,
            "reps": reps,
            "note": (
                "baseline = the fastest peer's median wall time with the model calling the 8 "
                "lookups in one turn (the peers' best case); one_tool_a_turn_* is each peer "
                "scripted like agentd's ReAct mode. agentd plans (2 model calls). Tokens are "
                "characters/4 of each whole request and reply, the same for everyone."
            ),
            "load": load(),
        },
    )


# -- peer_overhead --------------------------------------------------------------------------


def _overhead_plan() -> dict[str, Any]:
    """Three Evaluate calls and the answer as a template over them: one model call a run."""
    return _stack.plan(
        *(
            {
                "id": f"s{i}",
                "tool": "CalculatorService_Evaluate",
                "arguments": {"expression": e, "precision": 0},
            }
            for i, e in enumerate(script.OVERHEAD_EXPRESSIONS, 1)
        ),
        answer="The results are ${s1.formatted}, ${s2.formatted} and ${s3.formatted}.",
    )


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


async def _agentd_batch(tmp: Path, llm: str, calculator: str, n: int) -> dict[str, Any]:
    """agentd as concurrency_1000 measures it: the deployed daemon, logging at info."""
    from agentd.v1 import agent_pb2_grpc

    config = _agentd_config(tmp, llm, calculator, calculator, n * 2, "info")
    args = ["-m", "agentd", "serve", "--config", str(config)]
    async with child(args, stderr_path=tmp / "agentd.log") as (daemon, address):
        channels = [grpc.aio.insecure_channel(address) for _ in range(_CHANNELS)]
        stubs = [agent_pb2_grpc.AgentServiceStub(c) for c in channels]
        try:
            warm = await asyncio.gather(
                *(_agentd_run(stubs[i % _CHANNELS], script.OVERHEAD_TASK) for i in range(_WARMUP))
            )
            cpu_before = proc_cpu_ms(daemon.pid)
            started = time.perf_counter()
            outcomes = await asyncio.gather(
                *(_agentd_run(stubs[i % _CHANNELS], script.OVERHEAD_TASK) for i in range(n))
            )
            wall = time.perf_counter() - started
            cpu_ms = proc_cpu_ms(daemon.pid) - cpu_before
            peak_mb = proc_peak_rss_mb(daemon.pid)
        finally:
            for channel in channels:
                await channel.close(None)
    latencies = sorted(took for ok, took, _ in outcomes if ok)
    errors = Counter(why for ok, _, why in outcomes if not ok)
    return {
        "warmup_failed": sum(1 for ok, _, _ in warm if not ok),
        "cpu_ms": cpu_ms,
        "peak_rss_mb": peak_mb,
        "wall_s": wall,
        "failed": sum(errors.values()),
        "errors": dict(errors.most_common(5)),
        "p50_s": _pct(latencies, 0.50),
        "p99_s": _pct(latencies, 0.99),
    }


async def _overhead(peers: list[Framework], quick: bool) -> Result:
    n = 200 if quick else 1000
    fd_limit = raise_fd_limit()
    llm = ScriptedLLM(latency_s=OVERHEAD_MODEL_S)
    await llm.start()
    llm.responder(
        script.Meter(agentd=_stack.responder(_overhead_plan(), None), peers=script.overhead)
    )
    measured: dict[str, dict[str, Any]] = {}
    versions: dict[str, dict[str, str]] = {"agentd": _agentd_version()}
    calculator_args = ["-m", "examples.calculator", "--port", "0", "--reflection", "v1alpha"]
    try:
        with tempfile.TemporaryDirectory(prefix="agentd-bench-peers-") as name:
            tmp = Path(name)
            async with child(calculator_args) as (_calc, calculator):
                measured["agentd"] = await _agentd_batch(tmp, llm.base_url, calculator, n)
                for framework in peers:
                    where = {"llm": llm.base_url, "ledger": calculator, "calculator": calculator}
                    async with _peer(framework, tmp, **where) as worker:
                        versions[framework.name] = worker.versions
                        measured[framework.name] = await worker.ask(
                            op="batch",
                            task=script.OVERHEAD_TASK,
                            expect=script.OVERHEAD_ANSWER,
                            n=n,
                            warmup=_WARMUP,
                        )
    finally:
        await llm.stop()

    per_run = {who: m["cpu_ms"] / n for who, m in measured.items()}
    lightest = min((w for w in per_run if w != "agentd"), key=per_run.__getitem__)
    ratio = per_run["agentd"] / per_run[lightest]
    frameworks = {
        who: {
            "cpu_ms_per_run": round(per_run[who], 2),
            "ratio_agentd_to_this": round(per_run["agentd"] / per_run[who], 3),
            "peak_rss_mb": round(m["peak_rss_mb"], 1),
            "failed": m["failed"],
            "errors": m["errors"],
            "warmup_failed": m["warmup_failed"],
            "p50_s": round(m["p50_s"], 3),
            "p99_s": round(m["p99_s"], 3),
            "runs_per_s": round(n / m["wall_s"], 1),
            "wall_s": round(m["wall_s"], 3),
            "versions": versions[who],
        }
        for who, m in measured.items()
    }
    agentd_failed = measured["agentd"]["failed"]
    return Result(
        name="peer_overhead",
        value=per_run["agentd"],
        unit="agentd CPU ms/run",
        goal=f"<= {CPU_GOAL}x the lightest peer's CPU/run; agentd 0 failed",
        baseline=per_run[lightest],
        met=ratio <= CPU_GOAL and agentd_failed == 0,
        quick=quick,
        details={
            "lightest_peer": lightest,
            "concurrent_runs": n,
            "frameworks": frameworks,
            "model_latency_s": OVERHEAD_MODEL_S,
            "model_calls_per_run": 2,
            "tool_calls_per_run": 3,
            "fd_limit": fd_limit,
            "note": (
                "CPU and peak RSS of the process under test only. agentd's figure includes its "
                "gRPC edge (AgentService), SQLite run journal, spans and info logs, as deployed; "
                "a peer's is the bare library driven in its own process (no server in front). "
                "A run fails when it raises or its answer is wrong; 'gRPC CANCELLED from an "
                "upstream call' is the example calculator (a Python grpc.aio server) shedding "
                "load: gRPC core cancels calls past 1,000 waiting for its handler, and a peer "
                "sends the 3 calls of each run the moment its model turn returns."
            ),
            "load": load(),
        },
    )
