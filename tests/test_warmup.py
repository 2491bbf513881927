"""The prompt-cache warm-up: what it sends, that runs wait for it, that it never breaks a run.

The models are real OpenAI clients over the scripted Chat Completions server (HTTP on
127.0.0.1), built by ``build_models`` as the embedded model's roles are; the real llama.cpp
cache is checked in ``test_embedded_run.py``.
"""

from __future__ import annotations

import asyncio
import socket
import types
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentd.config import ROLES, LimitsConfig, MemoryConfig, ModelConfig, UpstreamConfig
from agentd.llm import build_models, close_models
from agentd.llm.model import ChatModel
from agentd.loop.agent import Agent
from agentd.loop.deadline import Deadline
from agentd.loop.prompts import PLANNER, RESPONDER, Prompts
from agentd.loop.state import RunState
from agentd.loop.warmup import planner_system
from agentd.tools import memory
from agentd.tools.upstream import ToolCatalog
from examples.ledger.server import serve as serve_ledger
from tests.support.functions import STRING, FunctionTool, obj, tools
from tests.support.plans import plan
from tests.support.scripted_llm import ScriptedLLM, schema_name

LIMITS = LimitsConfig(run_timeout_s=20)
VENDOR = {"id": "ven_001", "name": "Spreeblick Immobilien GmbH", "phone": "+49 30 1"}


def catalog() -> dict[str, FunctionTool]:
    return tools(
        FunctionTool(
            "GetVendor",
            lambda vendorId: VENDOR,
            obj(["vendorId"], vendorId=STRING),
            obj(["id"], id=STRING, name=STRING, phone=STRING),
            "A vendor by its id.",
        ),
        FunctionTool(
            "SearchVendors",
            lambda query: {"vendors": [VENDOR]},
            obj(["query"], query=STRING),
            obj(vendors={"type": "array", "items": obj(id=STRING, name=STRING)}),
            "Vendors by name.",
        ),
    )


@pytest.fixture
async def llm() -> AsyncIterator[ScriptedLLM]:
    async with ScriptedLLM() as server:
        yield server


async def models_on(llm: ScriptedLLM, *, embedded: bool) -> dict[str, ChatModel]:
    """Every role on the scripted server; marked as the embedded model's when ``embedded``."""
    config = ModelConfig(
        base_url=llm.base_url, model="local", tool_call_mode="structured", max_retries=0
    )
    started = types.SimpleNamespace(base_url=llm.base_url, model="local") if embedded else None
    return build_models(dict.fromkeys(ROLES, config), embedded=started, env={})  # type: ignore[arg-type]


async def run_phone_task(agent: Agent, tools: dict[str, FunctionTool]) -> RunState:
    run = RunState(run_id="run-1", task="What is the phone of vendor ven_001?", mode="plan_execute")
    return await agent.run(run, tools, metadata={}, deadline=Deadline.start(20))


def phone_plan() -> dict[str, Any]:
    get = {"id": "s1", "tool": "GetVendor", "arguments": {"vendorId": "ven_001"}}
    return plan(get, answer="The phone is ${s1.phone}.")


def system_of(body: dict[str, Any]) -> str:
    return str(body["messages"][0]["content"])


async def run_while_warming(
    llm: ScriptedLLM, only: str | None = None
) -> tuple[RunState, dict[str, FunctionTool]]:
    """The phone task, started as the warm-up of the whole catalog begins (1 s a call: slow
    enough that a run not waiting for it would send its plan request first), over the catalog
    or ``only`` one of its tools; the run and the catalog."""
    models = await models_on(llm, embedded=True)
    llm.reply(when="warmup", content={"ok": True}, delay_s=1.0, times=2)
    llm.reply(when="plan", content=phone_plan())
    agent, tools = Agent(models, LIMITS), catalog()
    try:
        agent.warm_up(tools)
        run = await run_phone_task(agent, tools if only is None else {only: tools[only]})
        await agent.warmup.finished()
    finally:
        await agent.warmup.stop()
        await close_models(models)
    return run, tools


async def test_a_run_waits_for_the_warm_up_and_sends_the_prefix_it_cached(
    llm: ScriptedLLM,
) -> None:
    run, tools = await run_while_warming(llm)
    assert run.status == "succeeded", run.error
    assert run.output == "The phone is +49 30 1."
    names = [schema_name(body) for body in llm.requests]
    assert names == ["warmup", "warmup", "plan"]  # responder's, planner's, then the run's
    warm_responder, warm_planner, planned = llm.requests
    assert system_of(warm_planner) == system_of(planned) == planner_system(Prompts(), tools)
    assert "GetVendor" in system_of(planned) and "SearchVendors" in system_of(planned)
    assert system_of(warm_responder) == RESPONDER.text


async def test_a_run_over_fewer_tools_waits_too_and_shares_the_start_of_the_prefix(
    llm: ScriptedLLM,
) -> None:
    # The request named one tool: its prompt is the instructions and that tool, the first of
    # the warmed catalog by name, so its whole system message starts the warmed one's.
    run, tools = await run_while_warming(llm, only="GetVendor")
    assert run.output == "The phone is +49 30 1."
    assert [schema_name(body) for body in llm.requests] == ["warmup", "warmup", "plan"]
    planned = system_of(llm.requests[-1])
    assert "SearchVendors" not in planned
    assert planner_system(Prompts(), tools).startswith(planned)


async def test_a_failed_warm_up_leaves_runs_as_they_were(llm: ScriptedLLM) -> None:
    models = await models_on(llm, embedded=True)
    llm.reply(when="warmup", status=500, content="overloaded", times=None)
    llm.reply(when="plan", content=phone_plan())
    agent, tools = Agent(models, LIMITS), catalog()
    try:
        agent.warm_up(tools)
        await agent.warmup.finished()
        run = await run_phone_task(agent, tools)
    finally:
        await close_models(models)
    assert run.status == "succeeded", run.error
    assert run.output == "The phone is +49 30 1."
    assert run.model_calls and all(c.error == "" for c in run.model_calls)  # not the run's


async def test_an_endpoint_that_is_not_the_embedded_model_is_never_warmed(
    llm: ScriptedLLM,
) -> None:
    models = await models_on(llm, embedded=False)
    agent = Agent(models, LIMITS)
    try:
        agent.warm_up(catalog())
        await agent.warmup.finished()
    finally:
        await close_models(models)
    assert llm.requests == []  # a call there costs money, and its cache is its own


async def test_a_shortlisted_catalog_warms_only_the_instructions(llm: ScriptedLLM) -> None:
    # With more tools than max_offered_tools each task is offered its own few, so the catalog
    # part of the prefix differs from run to run: only the instructions are shared.
    models = await models_on(llm, embedded=True)
    llm.reply(when="warmup", content={"ok": True}, times=2)
    agent = Agent(models, LimitsConfig(max_offered_tools=1))
    try:
        agent.warm_up(catalog())
        await agent.warmup.finished()
    finally:
        await close_models(models)
    assert [system_of(body) for body in llm.requests] == [RESPONDER.text, PLANNER.text]


async def test_a_new_warm_up_replaces_the_one_a_run_waits_for_without_cancelling_the_run(
    llm: ScriptedLLM,
) -> None:
    models = await models_on(llm, embedded=True)
    llm.reply(when="warmup", content={"ok": True}, delay_s=1.0, times=None)
    llm.reply(when="plan", content=phone_plan())
    agent, tools = Agent(models, LIMITS), catalog()
    try:
        agent.warm_up(tools)
        run = asyncio.create_task(run_phone_task(agent, tools))
        await asyncio.sleep(0.2)  # the run now waits for the planner's warm-up
        agent.warm_up(tools)  # the catalog changed (an upstream came back): warm again
        finished = await run
        await agent.warmup.finished()
    finally:
        await agent.warmup.stop()
        await close_models(models)
    assert finished.status == "succeeded", finished.error
    assert finished.output == "The phone is +49 30 1."


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_catalog_says_when_an_upstream_that_was_down_comes_up() -> None:
    # What makes the daemon warm the prompt cache again: the catalog's text changed.
    port = free_port()
    ledger = UpstreamConfig(
        name="ledger", target=f"127.0.0.1:{port}", allow=("examples.ledger.v1.LedgerService/*",)
    )
    tools = ToolCatalog([ledger], retry_s=0.05)
    changed = asyncio.Event()
    tools.on_change = changed.set
    await tools.start()
    server = None
    try:
        assert "ledger" in tools.unavailable and not tools.tools
        assert not changed.is_set()
        server = await serve_ledger(port, reflection="v1")
        await asyncio.wait_for(changed.wait(), 30)
        assert "LedgerService_GetVendor" in tools.tools and not tools.unavailable
    finally:
        await tools.close()
        if server is not None:
            await server.stop(None)


def test_the_warmed_catalog_starts_the_catalog_of_a_run_with_memory_tools() -> None:
    # The daemon warms the services' tools; a run with a user also gets the memory tools,
    # whose lower-case names sort after the services', so its prompt starts the same.
    run = RunState(run_id="r", task="", mode="plan_execute", user_id="u")
    with_memory = {**catalog(), **memory.builtin_tools(None, MemoryConfig(), run)}  # type: ignore[arg-type]
    assert len(with_memory) > len(catalog())
    assert planner_system(Prompts(), with_memory).startswith(planner_system(Prompts(), catalog()))
