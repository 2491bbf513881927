"""``embedded_model`` and ``tool_tokens``: the bundled default model through llama.cpp here.

``embedded_model`` sends the real planner request for the example catalog (the plan schema as
``response_format``) several times per layout, with different tasks, and reports the prompt tokens
llama.cpp had to process on the second call: with the static prefix first (instructions and
catalog in the system message, as agentd sends it) and with the catalog after the task (the
old layout, which the prompt cache cannot reuse). ``tool_tokens`` counts the example tools in
each schema dialect and as the planner's catalog text, with the model's own tokenizer.
llama.cpp slows down sharply when other processes compete for the cores, so the load average
is recorded next to the figures.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx2
import openai

from agentd.config import load_config
from agentd.llm import DEFAULT_MODEL, EmbeddedModel
from agentd.loop import prompts
from agentd.loop.describe import describe_catalog
from agentd.loop.plan import plan_schema
from agentd.loop.warmup import planner_system
from agentd.tools.upstream import AgentTool, policy_for
from bench._common import Result, load, median
from examples.calculator.server import serve as serve_calculator
from examples.ledger.server import serve as serve_ledger
from toolgen import Target, discover

_TASKS = (
    "What is the phone number of vendor ven_001?",
    "Evaluate the RPN expression 3 4 + 5 * with the calculator.",
    "How much did we spend on travel in 2025?",
)
_DESCRIPTORS = Path(__file__).resolve().parent.parent / "examples" / "descriptors.binpb"
_EXAMPLE_CONFIG = _DESCRIPTORS.parent / "agentd.toml"


async def run(quick: bool, only: Sequence[str] = ()) -> list[Result]:
    if importlib.util.find_spec("xllamacpp") is None:
        return [_unavailable(quick, name, "xllamacpp is not installed") for name in _NAMES]
    # Bounded: llama.cpp must not be able to stall the whole suite.
    async with asyncio.timeout(300 if quick else 900):
        tools = await _example_tools()
        async with (
            EmbeddedModel(DEFAULT_MODEL, threads=2) as embedded,
            openai.AsyncOpenAI(base_url=embedded.base_url, api_key="none", timeout=300) as client,
        ):
            rows = [await _tool_tokens(embedded, tools, quick)]
            rows.append(await _planner_calls(embedded, client, tools, quick))
    return rows


_NAMES = ("tool_tokens", "embedded_model")


async def _example_tools() -> dict[str, AgentTool]:
    """The example services' tools, with the upstream settings of examples/agentd.toml."""
    ledger = await serve_ledger(0, reflection="v1")
    calculator = await serve_calculator(0, reflection="v1alpha")
    configured = {up.name: up for up in load_config(_EXAMPLE_CONFIG, env={}).upstreams}
    tools: dict[str, AgentTool] = {}
    try:
        for server, configured_up in (
            (ledger, configured["ledger"]),
            (calculator, configured["calculator"]),
        ):
            up = replace(configured_up, target=server.address)
            allow = list(up.allow)
            catalog = await discover(Target(server.address), allow, descriptor_set=_DESCRIPTORS)
            for tool in catalog.tools:
                tools[tool.name] = AgentTool(tool.name, tool, up, policy_for(tool, up), None)
            await catalog.close()
    finally:
        await ledger.stop(None)
        await calculator.stop(None)
    return tools


async def _count(embedded: EmbeddedModel, text: str) -> int:
    url = embedded.base_url.removesuffix("/v1") + "/tokenize"
    async with httpx2.AsyncClient(timeout=60) as http:
        reply = await http.post(url, json={"content": text})
        return len(reply.json()["tokens"])


async def _tool_tokens(embedded: EmbeddedModel, tools: dict[str, AgentTool], quick: bool) -> Result:
    texts = {
        "jsonschema": [t.input_schema for t in tools.values()],
        "grammar": [t.model_schema for t in tools.values()],
        "openai": [t.tool.openai_parameters for t in tools.values()],
    }
    counts = {k: await _count(embedded, json.dumps(v)) for k, v in texts.items()}
    counts["catalog_text"] = await _count(embedded, describe_catalog(tools))
    return Result(
        name="tool_tokens",
        value=counts["catalog_text"],
        unit="tokens (planner catalog)",
        goal="report",
        met=True,
        quick=quick,
        details={"model": embedded.model, "tools": len(tools), "tokens_by_dialect": counts},
    )


def _messages(layout: str, task: str, tools: dict[str, AgentTool]) -> list[dict[str, Any]]:
    if layout == "static_prefix":  # what agentd sends
        return [
            {"role": "system", "content": planner_system(prompts.Prompts(), tools)},
            {"role": "user", "content": f"Task: {task}"},
        ]
    catalog = describe_catalog(tools)
    return [  # the earlier layout: the catalog after the task, so no reusable prefix
        {"role": "system", "content": prompts.PLANNER.text},
        {"role": "user", "content": f"Task: {task}\n\nTools:\n{catalog}"},
    ]


async def _planner_calls(
    embedded: EmbeddedModel,
    client: openai.AsyncOpenAI,
    tools: dict[str, AgentTool],
    quick: bool,
) -> Result:
    response_format = {
        "type": "json_schema",
        "json_schema": {
            "name": "plan",
            "schema": plan_schema(tools, max_steps=4, allow_empty=False),
        },
    }
    load_before = load()
    layouts: dict[str, dict[str, Any]] = {}
    for layout in ("catalog_after_task", "static_prefix"):
        processed, latencies, outputs = [], [], []
        for task in _TASKS[: 2 if quick else 3]:
            started = time.perf_counter()
            completion = await client.chat.completions.create(
                model=embedded.model,
                messages=_messages(layout, task, tools),  # type: ignore[arg-type]
                max_tokens=600,
                temperature=0,
                extra_body={"response_format": response_format},
            )
            latencies.append(time.perf_counter() - started)
            usage = completion.usage
            assert usage is not None
            details = usage.prompt_tokens_details
            cached = (details.cached_tokens or 0) if details else 0
            processed.append(usage.prompt_tokens - cached)
            outputs.append(usage.completion_tokens)
        layouts[layout] = {
            # the first call of each layout fills the cache; the later ones show its effect
            "prompt_tokens_processed": processed,
            "latencies_s": [round(x, 2) for x in latencies],
            "completion_tokens": outputs,
        }
    warm = layouts["static_prefix"]
    return Result(
        name="embedded_model",
        value=median(warm["latencies_s"][1:]),
        unit="s/plan call (warm)",
        goal="report",
        met=True,
        quick=quick,
        details={
            "model": embedded.model,
            "threads": embedded.threads,
            "load_time_s": round(embedded.load_time_s or 0.0, 2),
            "prompt_tokens_per_planner_call": {
                "with_cached_prefix": warm["prompt_tokens_processed"][1:],
                "catalog_after_task": layouts["catalog_after_task"]["prompt_tokens_processed"][1:],
            },
            "layouts": layouts,
            "load_before": load_before,
            "load_after": load(),
        },
    )


def _unavailable(quick: bool, name: str, why: str) -> Result:
    return Result(
        name=name,
        value=0.0,
        unit="",
        goal="report",
        met=True,
        quick=quick,
        details={"skipped": why},
    )
