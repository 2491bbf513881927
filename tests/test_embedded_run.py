"""One whole run on the embedded model: the offline path from task to real upstream call.

The 135M model is not smart, so this checks validity (a plan that passed the schema
and the checks, a real call on the example service, a finished run), not the answer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grpc
import pytest

from agentd.config import load_config
from agentd.server import Daemon
from agentd.v1 import agent_pb2, agent_pb2_grpc
from examples.calculator.server import serve as serve_calculator
from examples.ledger.server import serve as serve_ledger

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.embedded


async def test_embedded_model_plans_and_calls_a_real_tool(tmp_path: Path) -> None:
    ledger = await serve_ledger(0, reflection="v1")
    calculator = await serve_calculator(0, reflection="v1alpha")
    config = load_config(ROOT / "examples" / "agentd.toml", env={})
    targets = {"ledger": ledger.address, "calculator": calculator.address}
    config = dataclasses.replace(
        config,
        upstreams=tuple(dataclasses.replace(u, target=targets[u.name]) for u in config.upstreams),
        server=dataclasses.replace(config.server, listen="127.0.0.1:0"),
        storage=dataclasses.replace(config.storage, path=str(tmp_path / "runs.db")),
    )
    assert config.uses_embedded_model
    daemon = Daemon(config, env={})
    await daemon.start()
    try:
        async with grpc.aio.insecure_channel(daemon.address) as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            request = agent_pb2.RunRequest(
                task="Evaluate the RPN expression 3 4 + 5 * with the calculator.",
                tools=["CalculatorService_Evaluate"],
                limits=agent_pb2.Limits(max_steps=2),
            )
            response = await stub.Run(request, timeout=240)
    finally:
        await daemon.stop(grace=0)
        await ledger.stop(None)
        await calculator.stop(None)

    assert response.status in (
        agent_pb2.RUN_STATUS_SUCCEEDED,
        agent_pb2.RUN_STATUS_LIMITS_EXCEEDED,
    ), response.error
    # The plan passed the schema and the checks: it exists and names the allowed tool.
    assert response.plan.steps
    assert {s.tool for s in response.plan.steps} == {"CalculatorService_Evaluate"}
    # At least one real call reached the calculator and came back with a value.
    assert calculator.calls
    assert any(s.status == agent_pb2.STEP_STATUS_SUCCEEDED for s in response.steps) or any(
        s.error.code == "INVALID_ARGUMENT" for s in response.steps
    )
    usage = {u.role: u for u in response.usage}
    assert usage["planner"].model == "smollm2-135m-instruct"
    assert usage["planner"].output_tokens > 0
