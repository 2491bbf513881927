"""Arize Phoenix, the real thing: a real `agentd serve` exports a run over OTLP/HTTP to a
`phoenix serve` on loopback, and the spans are read back through Phoenix's own APIs.

Needs arize-phoenix in its own venv (`make phoenix`); skipped, saying so, without it.
`make test-phoenix` runs these; `make phoenix-screenshot` also saves Phoenix's trace view of the
run as docs/phoenix-trace.png (AGENTD_PHOENIX_SCREENSHOT names the file).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from agentd.v1 import agent_pb2, agent_pb2_grpc
from examples.calculator.server import serve as serve_calculator
from examples.ledger.server import serve as serve_ledger
from tests.support.phoenix import Phoenix, phoenix_command, screenshot
from tests.support.scripted_llm import ScriptedLLM
from tests.test_agent import SECRET, answer, write_config
from tests.test_telemetry import PRICING, ROOT, parallel_plan

pytestmark = pytest.mark.phoenix

RUN_SPANS = {
    "/agentd.v1.AgentService/Run",
    "invoke_agent agentd",
    "plan",
    "chat scripted-model",
    "execute_tool LedgerService_GetVendor",
    "execute_tool LedgerService_SearchVendors",
    "execute_tool CalculatorService_Evaluate",
}
CONTENT_PREFIXES = ("input.", "output.", "llm.input_messages", "llm.output_messages")


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    command = phoenix_command()
    if command is None:
        pytest.skip("arize-phoenix is not installed: `make phoenix` makes .venv-phoenix")
    server = Phoenix(command, tmp_path_factory.mktemp("phoenix"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[ScriptedLLM, str, str]]:
    llm = ScriptedLLM()
    await llm.start()
    ledger = await serve_ledger(reflection="v1", latency_s=0.2)  # parallel steps overlap
    calculator = await serve_calculator(reflection="v1alpha")
    yield llm, ledger.address, calculator.address
    await ledger.stop(None)
    await calculator.stop(None)
    await llm.stop()


async def run_into_phoenix(
    tmp_path: Path,
    upstreams: tuple[ScriptedLLM, str, str],
    phoenix: Phoenix,
    project: str,
    extra: str = "",
) -> agent_pb2.RunResponse:
    """One three-tool run through a real `agentd serve` exporting OTLP/HTTP to ``phoenix``;
    stopping the daemon flushes its spans."""
    llm, ledger, calculator = upstreams
    llm.reply(when="plan", content=parallel_plan())
    llm.reply(when="answer", content=answer("Spreeblick Immobilien GmbH; 2 coffee vendors; 7"))
    config = write_config(tmp_path, llm, ledger, calculator, extra)
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-test-key",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": phoenix.url,
        # Phoenix files spans under the project this resource attribute names.
        "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={project}",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentd", "serve", "--config", str(config),
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert "listening on" in line, line
        async with grpc.aio.insecure_channel(line.rsplit(" ", 1)[1].strip()) as channel:
            response = await agent_pb2_grpc.AgentServiceStub(channel).Run(
                agent_pb2.RunRequest(
                    task=f"Who is ven_001, who sells coffee, and what is 3+4? {SECRET}"
                ),
                metadata=(("authorization", SECRET),),
                timeout=30,
            )
        assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, stderr.decode()[-2000:]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return response


def by_name(spans: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [s for s in spans if s["name"] == name]


def one(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = by_name(spans, name)
    assert len(found) == 1, (name, sorted(s["name"] for s in spans))
    return found[0]


def sid(span: dict[str, Any]) -> str:
    return str(span["context"]["span_id"])


TOTALS = """
query ($id: ID!) {
  node(id: $id) {
    ... on Span { cumulativeTokenCountPrompt cumulativeTokenCountCompletion cumulativeTokenCountTotal }
  }
}
"""


async def test_phoenix_shows_the_run_as_an_agent_with_llm_and_tool_spans(
    tmp_path: Path, upstreams: tuple[ScriptedLLM, str, str], phoenix: Phoenix
) -> None:
    response = await run_into_phoenix(tmp_path, upstreams, phoenix, "agentd-capture", PRICING)
    spans = phoenix.wait_for_spans("agentd-capture", response.trace_id, RUN_SPANS)
    assert {s["name"] for s in spans} >= RUN_SPANS, phoenix.tail()

    # Kinds and parentage as Phoenix stored them: the RPC (the trace's root) holds the agent,
    # the agent its plan, tools and responder, the plan its planner call.
    root = one(spans, "/agentd.v1.AgentService/Run")
    assert root["span_kind"] == "CHAIN" and root["parent_id"] is None
    agent = one(spans, "invoke_agent agentd")
    assert agent["span_kind"] == "AGENT" and agent["parent_id"] == sid(root)
    planning = one(spans, "plan")
    assert planning["span_kind"] == "CHAIN" and planning["parent_id"] == sid(agent)
    tools = [s for s in spans if s["name"].startswith("execute_tool ")]
    assert len(tools) == 3
    assert all(t["span_kind"] == "TOOL" and t["parent_id"] == sid(agent) for t in tools)
    chats = by_name(spans, "chat scripted-model")
    assert all(c["span_kind"] == "LLM" for c in chats)
    assert {c["parent_id"] for c in chats} == {sid(planning), sid(agent)}  # planner, responder
    guard = one(spans, "apply_guardrail rules")
    assert guard["span_kind"] == "GUARDRAIL" and guard["parent_id"] == sid(agent)

    # Token counts: each LLM span's are its model call's; Phoenix's own sum over the trace
    # (what its trace list shows) is the run's, counted once although the agent span has them too.
    calls = {c.span_id: c for c in response.model_calls}
    assert len(calls) == len(chats) == 2
    for chat in chats:
        a, call = chat["attributes"], calls[sid(chat)]
        assert a["llm.model_name"] == "scripted-model"
        assert a["llm.token_count.prompt"] == call.input_tokens > 0
        assert a["llm.token_count.completion"] == call.output_tokens > 0
        assert a["llm.token_count.total"] == call.input_tokens + call.output_tokens
    totals = phoenix.graphql(TOTALS, id=root["id"])["node"]
    assert totals["cumulativeTokenCountPrompt"] == sum(c.input_tokens for c in calls.values())
    assert totals["cumulativeTokenCountCompletion"] == sum(c.output_tokens for c in calls.values())

    # Content (capture on): the run's input and output, the planner's messages, tool I/O.
    task = "Who is ven_001, who sells coffee, and what is 3+4? [REDACTED]"
    for span in (root, agent):
        assert span["attributes"]["input.value"] == task
        assert span["attributes"]["output.value"] == response.output
    planner = next(c["attributes"] for c in chats if c["parent_id"] == sid(planning))
    assert planner["llm.input_messages.0.message.role"] == "system"
    assert "planner" in planner["llm.input_messages.0.message.content"]
    assert planner["llm.input_messages.1.message.role"] == "user"
    assert task in planner["llm.input_messages.1.message.content"]
    assert planner["llm.output_messages.0.message.role"] == "assistant"
    completion = json.loads(planner["llm.output_messages.0.message.content"])
    assert [s["call"]["tool"] for s in completion["steps"]] == [
        "LedgerService_GetVendor",
        "LedgerService_SearchVendors",
        "CalculatorService_Evaluate",
    ]
    assert planner["output.value"] == planner["llm.output_messages.0.message.content"]
    get = one(spans, "execute_tool LedgerService_GetVendor")["attributes"]
    assert get["tool.name"] == "LedgerService_GetVendor" and get["tool.id"] == "s1"
    assert json.loads(get["input.value"]) == {"vendorId": "ven_001"}
    assert json.loads(get["output.value"])["name"] == "Spreeblick Immobilien GmbH"
    # The caller's token, sent as metadata and pasted into the task, never reached Phoenix.
    assert "s3cr3t" not in json.dumps(spans)

    if target := os.environ.get("AGENTD_PHOENIX_SCREENSHOT"):
        # The trace view with the planner's call open: the tree, its messages and the plan.
        planner_span = next(c for c in chats if c["parent_id"] == sid(planning))
        url = phoenix.trace_url("agentd-capture", response.trace_id, planner_span["id"])
        screenshot(url, Path(target))
        assert Path(target).stat().st_size > 10_000


async def test_phoenix_gets_structure_and_counts_but_no_content_by_default(
    tmp_path: Path, upstreams: tuple[ScriptedLLM, str, str], phoenix: Phoenix
) -> None:
    response = await run_into_phoenix(tmp_path, upstreams, phoenix, "agentd-default")
    spans = phoenix.wait_for_spans("agentd-default", response.trace_id, RUN_SPANS)
    assert {s["name"] for s in spans} >= RUN_SPANS, phoenix.tail()
    kinds = {s["name"]: s["span_kind"] for s in spans}
    assert kinds["invoke_agent agentd"] == "AGENT" and kinds["plan"] == "CHAIN"
    assert kinds["chat scripted-model"] == "LLM"
    assert kinds["execute_tool LedgerService_GetVendor"] == "TOOL"
    for chat in by_name(spans, "chat scripted-model"):
        assert chat["attributes"]["llm.token_count.prompt"] > 0
    # No message, task, answer or tool result: neither sent by agentd nor made up by Phoenix
    # from the GenAI attributes (it fills OpenInference keys from gen_ai.* ones it finds).
    keys = {k for s in spans for k in s["attributes"]}
    assert not [k for k in keys if k.startswith(("llm.input_messages", "llm.output_messages"))]
    assert not [k for k in keys if k.startswith("input.")]
    dumped = json.dumps(spans)
    for text in ("ven_001", "coffee", "Spreeblick", response.output):
        assert text not in dumped
