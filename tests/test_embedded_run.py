"""One whole run on the embedded default model: the offline path from task to right answer.

The plan is decoded under the grammar, checked, run against the real calculator service,
and the answer written from its result.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grpc
import pytest

from agentd.api.server import Daemon
from agentd.config import load_config
from agentd.llm import DEFAULT_MODEL
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

    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    assert [s.tool for s in response.plan.steps] == ["CalculatorService_Evaluate"]
    assert calculator.calls  # a real call reached the example service
    assert "35" in response.output
    usage = {u.role: u for u in response.usage}
    assert usage["planner"].model == DEFAULT_MODEL
    assert usage["planner"].output_tokens > 0
