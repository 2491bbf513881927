"""``embedded_model``: the bundled SmolLM2-135M through llama.cpp on this machine.

Reports load time, the latency of one planner-like structured call and decode
speed. llama.cpp with 2 threads slows down sharply when other processes compete
for the cores, so the load average is recorded next to the figures.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Sequence
from typing import Any

from agentd.llm import EmbeddedModel, ModelConfig, ModelError, build_models, close_models
from agentd.loop import prompts
from bench._common import Result, load, median

_TOOLS = ("CalculatorService_Evaluate", "LedgerService_GetVendor", "LedgerService_SearchVendors")
# A plan schema bounded the way agentd bounds what a model may write (DESIGN.md).
PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string", "maxLength": 200},
        "steps": {
            "type": "array",
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "enum": ["s1", "s2", "s3"]},
                    "tool": {"type": "string", "enum": list(_TOOLS)},
                    "arguments": {
                        "type": "object",
                        "properties": {"expression": {"type": "string", "maxLength": 40}},
                        "required": ["expression"],
                        "additionalProperties": False,
                    },
                    "depends_on": {
                        "type": "array",
                        "maxItems": 2,
                        "items": {"type": "string", "enum": ["s1", "s2", "s3"]},
                    },
                },
                "required": ["id", "tool", "arguments", "depends_on"],
                "additionalProperties": False,
            },
        },
        "answer": {"type": ["string", "null"], "maxLength": 200},
    },
    "required": ["rationale", "steps", "answer"],
    "additionalProperties": False,
}
_MESSAGES = [
    {"role": "system", "content": prompts.PLANNER.text},
    {
        "role": "user",
        "content": "Task: What is (3 + 4) * 5?\n\nTools:\n"
        "- CalculatorService_Evaluate(expression*: string): Evaluate an RPN expression.\n"
        "- LedgerService_GetVendor(vendorId*: string): Get one vendor.\n"
        "- LedgerService_SearchVendors(query*: string): Search vendors by name.",
    },
]


async def run(quick: bool, only: Sequence[str] = ()) -> list[Result]:
    # Bounded: llama.cpp must not be able to stall the whole suite.
    async with asyncio.timeout(120 if quick else 300):
        return await _run(quick)


async def _run(quick: bool) -> list[Result]:
    if importlib.util.find_spec("xllamacpp") is None:
        return [_unavailable(quick, "xllamacpp is not installed")]
    # One load per process: a second in-process EmbeddedModel start was seen to hang.
    loads, calls = 1, (2 if quick else 5)
    load_before = load()
    load_times: list[float] = []
    for _ in range(loads - 1):  # extra loads only to get a median of the load time
        async with EmbeddedModel() as embedded:
            assert embedded.load_time_s is not None
            load_times.append(embedded.load_time_s)
    latencies: list[float] = []
    rates: list[float] = []
    tokens: list[int] = []
    failures: list[str] = []
    async with EmbeddedModel() as embedded:
        assert embedded.load_time_s is not None
        load_times.append(embedded.load_time_s)
        config = ModelConfig(base_url=None, model="", max_tokens=256, timeout_s=120)
        models = build_models({"planner": config}, embedded=embedded, env={})
        try:
            planner = models["planner"]
            for i in range(calls + 1):
                started = time.perf_counter()
                try:
                    reply = await planner.complete_json(_MESSAGES, PLAN_SCHEMA, name="plan")
                except ModelError as exc:  # a small model may still fail; count, do not crash
                    failures.append(f"{exc.kind}: {exc}"[:200])
                    continue
                took = time.perf_counter() - started
                if i == 0:
                    continue  # warm-up: the first call also fills llama.cpp's prompt cache
                latencies.append(took)
                tokens.append(reply.output_tokens)
                if reply.output_tokens and reply.latency_s:
                    rates.append(reply.output_tokens / reply.latency_s)
        finally:
            await close_models(models)
    latency = median(latencies)
    return [
        Result(
            name="embedded_model",
            value=latency,
            unit="s/plan call",
            goal="report",
            met=True,
            quick=quick,
            details={
                "model": embedded.model,
                "load_time_s": round(median(load_times), 3),
                "load_times_s": [round(x, 3) for x in load_times],
                "plan_call_latency_s": round(latency, 3),
                "plan_call_latencies_s": [round(x, 3) for x in latencies],
                "tokens_per_s": round(median(rates), 1),
                "completion_tokens": tokens,
                "failed_calls": failures,
                "load_before": load_before,
                "load_after": load(),
            },
        )
    ]


def _unavailable(quick: bool, why: str) -> Result:
    return Result(
        name="embedded_model",
        value=0.0,
        unit="s/plan call",
        goal="report",
        met=True,
        quick=quick,
        details={"skipped": why},
    )
