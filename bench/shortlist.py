"""``catalog_1000_tokens`` and ``shortlist_recall``: the planner's per-task shortlist.

Both use one catalog: the 50 x 20 generated server (1,000 methods, ``bench._genserver``) with
the example ledger and calculator tools merged in. The example tools carry examples/agentd.toml's upstream settings (its
calculator is ``always_offer``); ``shortlist_recall`` also reports the ranking alone.
``catalog_1000_tokens`` builds the real
planner request (instructions and catalog text, the task; the plan schema sent as
``response_format``) for the suite's tasks with the whole catalog and with the shortlist, and
counts its prompt tokens with the embedded model's own tokenizer. ``shortlist_recall`` takes
every case of ``evals/ledger.yaml`` whose reference plan names tools and reports the share
whose tools are all in the task's shortlist.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from agentd.config import LimitsConfig, UpstreamConfig
from agentd.evals.suite import load_suite
from agentd.llm import DEFAULT_MODEL, EmbeddedModel
from agentd.loop import prompts
from agentd.loop.describe import describe_catalog
from agentd.loop.plan import plan_schema
from agentd.loop.shortlist import shortlist
from agentd.tools.upstream import AgentTool, policy_for
from bench._common import Result, median
from bench._genserver import serve as serve_generated
from bench.embedded import _count, _example_tools, _unavailable
from toolgen import Target, discover

TOKENS_GOAL = 2_500
RECALL_GOAL = 0.95
_SUITE = Path(__file__).resolve().parent.parent / "evals" / "ledger.yaml"
_NAMES = ("catalog_1000_tokens", "shortlist_recall")


async def run(quick: bool, only: Sequence[str] = ()) -> list[Result]:
    k = LimitsConfig().max_offered_tools
    tools = {**await _generated_tools(50, 20), **await _example_tools()}
    cases = _cases()
    rows = []
    if "shortlist_recall" in only or not only:
        rows.append(_recall(tools, cases, k, quick))
    if "catalog_1000_tokens" in only or not only:
        if importlib.util.find_spec("xllamacpp") is None:
            rows.append(_unavailable(quick, "catalog_1000_tokens", "xllamacpp is not installed"))
        else:
            async with asyncio.timeout(600), EmbeddedModel(DEFAULT_MODEL, threads=2) as model:
                tasks = [task for task, _ in cases][: 3 if quick else None]
                rows.append(await _tokens(model, tools, tasks, k, quick))
    return rows


async def _generated_tools(services: int, methods: int) -> dict[str, AgentTool]:
    server, port = await serve_generated(services, methods)
    try:
        address = f"127.0.0.1:{port}"
        up = UpstreamConfig(name="generated", target=address, allow=("*",))
        catalog = await discover(Target(address), ["*"])
        tools = {t.name: AgentTool(t.name, t, up, policy_for(t, up), None) for t in catalog.tools}
        await catalog.close()
    finally:
        await server.stop(None)
    return tools


def _cases() -> list[tuple[str, set[str]]]:
    """(task, the tools its reference plan calls) for each case whose plan calls any."""
    out = []
    for case in load_suite(_SUITE).cases:
        wanted = {s["tool"] for s in (case.reference or {}).get("plan", []) if "tool" in s}
        if wanted:
            out.append((case.task, wanted))
    return out


def _missed(
    tools: Mapping[str, AgentTool], cases: list[tuple[str, set[str]]], k: int
) -> list[dict[str, Any]]:
    missed = []
    for task, wanted in cases:
        offered = shortlist(tools, task, k)
        if not wanted <= set(offered):
            missed.append({"task": task, "missing": sorted(wanted - set(offered))})
    return missed


def _recall(
    tools: Mapping[str, AgentTool], cases: list[tuple[str, set[str]]], k: int, quick: bool
) -> Result:
    started = time.perf_counter()
    missed = _missed(tools, cases, k)
    per_task_ms = (time.perf_counter() - started) * 1000 / max(len(cases), 1)
    recall = 1 - len(missed) / max(len(cases), 1)
    # The same catalog with no upstream marked always_offer: what the ranking finds alone.
    ranked = {
        name: replace(t, upstream=replace(t.upstream, always_offer=False))
        for name, t in tools.items()
    }
    missed_ranked = _missed(ranked, cases, k)
    return Result(
        name="shortlist_recall",
        value=round(recall, 3),
        unit=f"share of cases with every expected tool in the top {k}",
        goal=f">= {RECALL_GOAL}",
        met=recall >= RECALL_GOAL,
        quick=quick,
        details={
            "catalog_tools": len(tools),
            "k": k,
            "cases": len(cases),
            "missed": missed,
            "always_offered": sorted(n for n, t in tools.items() if t.always_offered),
            "ranking_only": {
                "recall": round(1 - len(missed_ranked) / max(len(cases), 1), 3),
                "missed": missed_ranked,
            },
            # the first task builds the index (once per catalog snapshot); later ones reuse it
            "ms_per_task_including_index": round(per_task_ms, 2),
        },
    )


def _request(tools: Mapping[str, AgentTool], task: str) -> tuple[str, dict[str, Any]]:
    """The planner's prompt text and plan schema as agentd sends them for ``task``."""
    text = f"{prompts.PLANNER.text}\n\nTools:\n{describe_catalog(tools)}\nTask: {task}"
    return text, plan_schema(tools, max_steps=3, allow_empty=False, union=True)


async def _tokens(
    model: EmbeddedModel,
    tools: Mapping[str, AgentTool],
    tasks: list[str],
    k: int,
    quick: bool,
) -> Result:
    whole_text, whole_schema = _request(tools, tasks[0])  # the whole catalog: task-independent
    whole = {"prompt_tokens": await _count(model, whole_text), "schema_bytes": _size(whole_schema)}
    listed: list[dict[str, int]] = []
    for task in tasks:
        text, schema = _request(shortlist(tools, task, k), task)
        listed.append({"prompt_tokens": await _count(model, text), "schema_bytes": _size(schema)})
    tokens = max(r["prompt_tokens"] for r in listed)
    return Result(
        name="catalog_1000_tokens",
        value=tokens,
        unit=f"planner prompt tokens, largest over {len(tasks)} tasks (shortlist k={k})",
        goal=f"<= {TOKENS_GOAL}",
        met=tokens <= TOKENS_GOAL,
        quick=quick,
        baseline=whole["prompt_tokens"],
        details={
            "model": model.model,
            "catalog_tools": len(tools),
            "whole_catalog": whole,
            "shortlist": {
                "prompt_tokens_median": median([r["prompt_tokens"] for r in listed]),
                "schema_bytes_median": median([r["schema_bytes"] for r in listed]),
                "per_task": listed,
            },
        },
    )


def _size(schema: dict[str, Any]) -> int:
    return len(json.dumps(schema, separators=(",", ":")))
