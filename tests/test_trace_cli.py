"""`agentd trace`: a stored run rendered as a tree, from a hand-built record and from a daemon."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentd.cli.trace_view import render
from agentd.v1 import agent_pb2
from tests.test_agent import Stack, answer, plan, start_stack

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000_000_000_000  # ns


def _call(role: str, prompt: str, at_ms: int, took_ms: int, **fields: Any) -> agent_pb2.ModelCall:
    call = agent_pb2.ModelCall(
        role=role, model="gpt-4.1-mini", prompt=prompt, prompt_version="abc123def456", **fields
    )
    call.start_time.FromNanoseconds(T0 + at_ms * 1_000_000)
    call.duration.FromMilliseconds(took_ms)
    return call


def _step(step_id: str, tool: str, at_ms: int, took_ms: int, **fields: Any) -> agent_pb2.Step:
    step = agent_pb2.Step(id=step_id, tool=tool, **fields)
    step.start_time.FromNanoseconds(T0 + at_ms * 1_000_000)
    step.duration.FromMilliseconds(took_ms)
    return step


def test_render_orders_by_start_and_groups_planning() -> None:
    run = agent_pb2.RunResponse(
        run_id="r1",
        trace_id="ab" * 16,
        status=agent_pb2.RUN_STATUS_SUCCEEDED,
        task="Who is ven_001?",
        output="Spreeblick",
        cost_usd=0.00123,
        usage=[agent_pb2.Usage(role="planner", input_tokens=500, output_tokens=60)],
        model_calls=[
            _call("responder", "responder", 900, 40, input_tokens=300, output_tokens=20),
            _call(
                "planner",
                "planner",
                0,
                120,
                input_tokens=400,
                output_tokens=50,
                cached_input_tokens=380,
                cost_usd=0.00024,
                finish_reason="stop",
            ),
            _call("planner", "planner", 130, 90, error="schema: the 'plan' reply is invalid"),
            _call("planner", "replan", 700, 80, finish_reason="stop"),
        ],
        steps=[
            _step(
                "s2",
                "LedgerService_SearchVendors",
                250,
                300,
                status=agent_pb2.STEP_STATUS_SUCCEEDED,
            ),
            _step(
                "s1",
                "LedgerService_GetVendor",
                240,
                310,
                status=agent_pb2.STEP_STATUS_FAILED,
                error=agent_pb2.StepError(code="NOT_FOUND", message="no vendor ven_9"),
            ),
        ],
    )
    run.start_time.FromNanoseconds(T0)
    run.duration.FromMilliseconds(950)
    text = render(run)
    lines = text.splitlines()
    assert lines[0] == f"run r1 · succeeded · 950 ms · trace {'ab' * 16}"
    assert "$0.001230" in lines[2]
    body = [line.strip() for line in lines[4:10]]
    assert body[0] == "+0.000s  ├─ planning (round 0)"
    assert body[1].startswith(
        "+0.000s  │  ├─ chat planner gpt-4.1-mini · prompt planner@abc123def456"
    )
    assert "400→50 tok (380 cached) · $0.000240 · 120 ms · stop" in body[1]
    assert body[2].startswith("+0.130s  │  └─ chat planner") and "✗ schema:" in body[2]
    assert (
        body[3]
        == "+0.240s  ├─ tool s1 LedgerService_GetVendor · failed · 310 ms · ✗ NOT_FOUND: no vendor ven_9"
    )
    assert body[4] == "+0.250s  ├─ tool s2 LedgerService_SearchVendors · succeeded · 300 ms"
    assert body[5] == "+0.700s  ├─ replanning (round 1)"
    assert "└─ chat responder" in text
    assert text.rstrip().endswith("answer: Spreeblick")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async for s in start_stack(tmp_path):
        yield s


async def _agentd(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentd",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_trace_command_against_a_daemon(stack: Stack) -> None:
    s = stack
    s.llm.reply(
        when="plan",
        content=plan(
            {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_001"}},
            {
                "id": "s2",
                "tool": "CalculatorService_Evaluate",
                "arguments": {"expression": "2 2 +"},
            },
        ),
    )
    s.llm.reply(when="answer", content=answer("ven_001; 4"))
    response = await s.run("Who is ven_001 and what is 2+2?")
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error

    code, out, err = await _agentd("trace", response.run_id, "--target", s.daemon.address)
    assert code == 0, err
    assert out.startswith(f"run {response.run_id} · succeeded")
    assert f"trace {response.trace_id}" in out
    assert "planning (round 0)" in out
    assert "chat planner scripted-model · prompt planner@" in out
    assert "tool s1 LedgerService_GetVendor · succeeded" in out
    assert "tool s2 CalculatorService_Evaluate · succeeded" in out
    assert "└─ chat responder scripted-model" in out
    assert "answer: ven_001; 4" in out

    code, _, err = await _agentd("trace", "no-such-run", "--target", s.daemon.address)
    assert code == 4 and "NOT_FOUND" in err
