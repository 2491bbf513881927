"""Durable runs: what the journal costs, and how long a dead replica's run waits.

- ``journal_overhead``: agentd CPU per run with the journal (a RUNNING record at the start,
  a snapshot after the plan and after steps, a lease renewed while it runs) against
  ``storage.journal = false`` (stored once, at the end), measured in the same run on the
  same work: 3 independent calculator calls per run, many runs at once. Also the store
  writes per run and per step, from the daemon's "run finished" log lines.
- ``resume_after_crash``: two replicas on one store; replica A is killed (-9) while its run
  waits for the model; the seconds until replica B has finished that run. Most of it is
  the lease (``storage.lease_s``) lapsing, by design: the details give both.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from bench import _stack
from bench._common import Result, proc_cpu_ms
from bench._procs import child
from tests.support.scripted_llm import ScriptedLLM

JOURNAL_GOAL = 1.15
LEASE_S = 1.0
TAKEOVER_S = 0.2
_TASK = "Evaluate three expressions."


def _plan() -> dict[str, Any]:
    return _stack.plan(
        *(
            {
                "id": f"s{i}",
                "tool": "CalculatorService_Evaluate",
                "arguments": {"expression": f"{i} {i} +"},
            }
            for i in range(1, 4)
        )
    )


async def run(quick: bool, only: Sequence[str] = ()) -> list[Result]:
    results = []
    if "journal_overhead" in only:
        results.append(await journal_overhead(quick))
    if "resume_after_crash" in only:
        results.append(await resume_after_crash())
    return results


async def _cpu_per_run(
    tmp: Path, llm: ScriptedLLM, calculator: str, journal: bool, runs: int
) -> tuple[float, float, int]:
    """(agentd CPU ms per run, store writes per run, failed runs) of one daemon."""
    from agentd.v1 import agent_pb2, agent_pb2_grpc

    folder = tmp / ("journal" if journal else "plain")
    folder.mkdir(parents=True)
    config = _stack.write_config(
        folder, llm_url=llm.base_url, ledger=calculator, calculator=calculator, log_level="info"
    )
    env = {"AGENTD_STORAGE_JOURNAL": "true" if journal else "false"}
    log_path = folder / "agentd.log"
    daemon_args = ["-m", "agentd", "serve", "--config", str(config)]
    async with (
        child(daemon_args, stderr_path=log_path, env=env) as (daemon, address),
        grpc.aio.insecure_channel(address) as channel,
    ):
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        request = agent_pb2.RunRequest(task=_TASK)
        metadata = (("authorization", _stack.SECRET),)

        async def one() -> bool:
            response = await stub.Run(request, metadata=metadata, timeout=120)
            return bool(response.status == agent_pb2.RUN_STATUS_SUCCEEDED)

        await asyncio.gather(*(one() for _ in range(10)))  # warm-up
        before = proc_cpu_ms(daemon.pid)
        outcomes = []
        for _ in range(runs // 50):  # 50 at a time, as a busy service would see them
            outcomes += await asyncio.gather(*(one() for _ in range(50)))
        cpu = proc_cpu_ms(daemon.pid) - before
    writes = [
        json.loads(line).get("store_writes", 0)
        for line in log_path.read_text().splitlines()
        if line.startswith("{") and '"run finished"' in line
    ]
    return cpu / len(outcomes), sum(writes) / max(1, len(writes)), outcomes.count(False)


async def journal_overhead(quick: bool) -> Result:
    runs = 100 if quick else 500
    llm = ScriptedLLM(latency_s=0.02)
    await llm.start()
    llm.responder(_stack.responder(_plan(), _stack.fanout_react))
    calculator_args = ["-m", "examples.calculator", "--port", "0", "--reflection", "v1alpha"]
    try:
        with tempfile.TemporaryDirectory(prefix="agentd-bench-") as name:
            tmp = Path(name)
            async with child(calculator_args) as (_calc, calculator):
                # Alternate, so drift in the machine's load hits both alike.
                plain, journaled, plain_writes, writes, failed = [], [], 0.0, 0.0, 0
                for i in range(2):
                    p_cpu, plain_writes, p_failed = await _cpu_per_run(
                        tmp / f"r{i}", llm, calculator, False, runs
                    )
                    j_cpu, writes, j_failed = await _cpu_per_run(
                        tmp / f"r{i}", llm, calculator, True, runs
                    )
                    plain.append(p_cpu)
                    journaled.append(j_cpu)
                    failed += p_failed + j_failed
    finally:
        await llm.stop()
    ours, base = min(journaled), min(plain)
    ratio = ours / base if base else 0.0
    return Result(
        name="journal_overhead",
        value=ours,
        unit="agentd CPU ms/run",
        baseline=base,
        goal=f"<= {JOURNAL_GOAL:g}x the CPU without the journal",
        met=failed == 0 and ratio <= JOURNAL_GOAL,
        quick=quick,
        details={
            "runs_each": runs,
            "failed": failed,
            "cpu_ms_per_run_journal": [round(x, 2) for x in journaled],
            "cpu_ms_per_run_without": [round(x, 2) for x in plain],
            "store_writes_per_run": round(writes, 2),
            "store_writes_per_run_without": round(plain_writes, 2),
            "store_writes_per_step": round(writes / 3, 2),
            "tool_calls_per_run": 3,
        },
    )


async def resume_after_crash() -> Result:
    from agentd.v1 import agent_pb2, agent_pb2_grpc

    llm = ScriptedLLM(latency_s=0.5)  # the run waits for its planner when A dies
    await llm.start()
    llm.responder(_stack.responder(_plan(), _stack.fanout_react))
    calculator_args = ["-m", "examples.calculator", "--port", "0", "--reflection", "v1alpha"]
    env = {"AGENTD_STORAGE_LEASE_S": str(LEASE_S), "AGENTD_STORAGE_TAKEOVER_S": str(TAKEOVER_S)}
    daemon_args = ["-m", "agentd", "serve", "--config"]
    try:
        with tempfile.TemporaryDirectory(prefix="agentd-bench-") as name:
            tmp = Path(name)
            async with child(calculator_args) as (_calc, calculator):
                config = _stack.write_config(
                    tmp, llm_url=llm.base_url, ledger=calculator, calculator=calculator
                )
                args = [*daemon_args, str(config)]
                # Both replicas share one SQLite file (WAL): the same leases as on PostgreSQL.
                async with (
                    child(args, env=env) as (a, a_address),
                    child(args, env=env) as (_b, b_address),
                    grpc.aio.insecure_channel(a_address) as to_a,
                    grpc.aio.insecure_channel(b_address) as to_b,
                ):
                    call = agent_pb2_grpc.AgentServiceStub(to_a).RunStream(
                        agent_pb2.RunRequest(task=_TASK),
                        metadata=(("authorization", _stack.SECRET),),
                    )
                    run_id = ""
                    async for event in call:
                        run_id = event.run_id
                        break
                    await llm.wait_for_requests(1)
                    a.kill()
                    killed = time.perf_counter()
                    await a.wait()
                    stub = agent_pb2_grpc.AgentServiceStub(to_b)
                    record = agent_pb2.RunResponse()
                    while time.perf_counter() - killed < 60:
                        record = await stub.GetRun(agent_pb2.GetRunRequest(run_id=run_id))
                        if record.status == agent_pb2.RUN_STATUS_SUCCEEDED:
                            break
                        await asyncio.sleep(0.02)
                    took = time.perf_counter() - killed
    finally:
        await llm.stop()
    done = record.status == agent_pb2.RUN_STATUS_SUCCEEDED
    return Result(
        name="resume_after_crash",
        value=took,
        unit="s from kill -9 to the run finished elsewhere",
        goal=f"finished by the other replica; <= lease_s ({LEASE_S:g}) + 2 s",
        met=done and took <= LEASE_S + 2,
        details={
            "lease_s": LEASE_S,
            "takeover_s": TAKEOVER_S,
            "beyond_lease_s": round(took - LEASE_S, 3),
            "status": agent_pb2.RunStatus.Name(record.status),
            "resumes": record.resumes,
            "model_latency_s": 0.5,
            "store": "sqlite, shared by both replicas",
        },
    )
