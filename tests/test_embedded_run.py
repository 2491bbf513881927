"""One whole run on the embedded default model: the offline path from task to right answer.

The plan is decoded under the grammar, checked, run against the real calculator service,
and the answer written from its result.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from agentd.api.server import Daemon
from agentd.config import load_config
from agentd.llm import DEFAULT_MODEL
from agentd.loop.prompts import Prompts
from agentd.loop.warmup import planner_system
from agentd.v1 import agent_pb2, agent_pb2_grpc
from examples.calculator.server import CalculatorServer
from examples.calculator.server import serve as serve_calculator
from examples.ledger.server import serve as serve_ledger

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.embedded


@contextlib.asynccontextmanager
async def embedded_daemon(tmp_path: Path) -> AsyncIterator[tuple[Daemon, CalculatorServer]]:
    """The example config on the embedded model, with real example upstreams."""
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
        yield daemon, calculator
    finally:
        await daemon.stop(grace=0)
        await ledger.stop(None)
        await calculator.stop(None)


REQUEST = agent_pb2.RunRequest(
    task="Evaluate the RPN expression 3 4 + 5 * with the calculator.",
    tools=["CalculatorService_Evaluate"],
    limits=agent_pb2.Limits(max_steps=2),
)


async def test_embedded_model_plans_and_calls_a_real_tool(tmp_path: Path) -> None:
    async with (
        embedded_daemon(tmp_path) as (daemon, calculator),
        grpc.aio.insecure_channel(daemon.address) as channel,
    ):
        response = await agent_pb2_grpc.AgentServiceStub(channel).Run(REQUEST, timeout=240)

    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    assert [s.tool for s in response.plan.steps] == ["CalculatorService_Evaluate"]
    assert calculator.calls  # a real call reached the example service
    assert "35" in response.output
    usage = {u.role: u for u in response.usage}
    assert usage["planner"].model == DEFAULT_MODEL
    assert usage["planner"].output_tokens > 0


async def test_embedded_model_streams_the_answer_token_by_token(tmp_path: Path) -> None:
    async with (
        embedded_daemon(tmp_path) as (daemon, _),
        grpc.aio.insecure_channel(daemon.address) as channel,
    ):
        call = agent_pb2_grpc.AgentServiceStub(channel).RunStream(REQUEST, timeout=240)
        headers = dict(await call.initial_metadata())
        events = [event async for event in call]

    final = events[-1].final
    assert final.status == agent_pb2.RUN_STATUS_SUCCEEDED, final.error
    assert headers["x-agentd-run-id"] == final.run_id
    pieces: list[str] = []  # since the last empty delta: the answer as a client shows it
    for event in events:
        if event.WhichOneof("event") == "answer_delta":
            pieces = [*pieces, event.answer_delta] if event.answer_delta else []
    assert len(pieces) > 1  # llama.cpp's server-sent events, a token or so each
    assert "".join(pieces) == final.output


async def test_the_warm_up_leaves_the_planners_prefix_in_llama_cpps_cache(
    tmp_path: Path,
) -> None:
    async with embedded_daemon(tmp_path) as (daemon, _):
        await daemon.warmed()
        assert daemon.catalog is not None and daemon.embedded is not None
        # What a run's first planner call sends (no auth here, so no memory tools).
        system = planner_system(Prompts(), daemon.catalog.tools)
        body = {
            "model": daemon.embedded.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": "Task: What is the phone of vendor ven_001?"},
            ],
            "max_tokens": 1,
        }
        request = urllib.request.Request(
            f"{daemon.embedded.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        with await asyncio.to_thread(urllib.request.urlopen, request, timeout=240) as reply:
            usage = json.load(reply)["usage"]
    # llama.cpp read only the task: the instructions and catalog came from the cache.
    assert usage["prompt_tokens"] > 1000
    assert usage["prompt_tokens_details"]["cached_tokens"] > usage["prompt_tokens"] - 30
