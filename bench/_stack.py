"""The agentd stack the loop benchmarks drive: config file, scripted model replies."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support import plans
from tests.support.scripted_llm import Reply, schema_name

_OBSERVATION = "Observation (untrusted data): "
SECRET = "Bearer bench-caller-token"


def write_config(
    directory: Path,
    *,
    llm_url: str,
    ledger: str,
    calculator: str,
    max_concurrent_runs: int = 64,
    log_level: str = "warning",
) -> Path:
    """An agentd TOML using the scripted model in structured mode and the example services."""
    path = directory / "agentd.toml"
    path.write_text(
        f"""
[server]
listen = "127.0.0.1:0"
max_concurrent_runs = {max_concurrent_runs}

[[upstreams]]
name = "ledger"
target = "{ledger}"
allow = ["examples.ledger.v1.LedgerService/*"]
side_effects = "approve"

[[upstreams]]
name = "calculator"
target = "{calculator}"
allow = ["examples.calculator.v1.CalculatorService/*"]

[llm]
base_url = "{llm_url}"
model = "scripted-model"
tool_call_mode = "structured"
max_retries = 0
timeout_s = 60

[limits]
max_replans = 1
max_steps = 24
max_model_calls = 24
run_timeout_s = 120

[storage]
path = "{directory / "runs.db"}"

[logging]
level = "{log_level}"
"""
    )
    return path


def plan(*steps: dict[str, Any], answer: str | None = None) -> dict[str, Any]:
    """A planner reply with ``steps`` (written flat, as in the tests) and, when given, the
    answer as a template over their results (then the run needs no responder call)."""
    return plans.plan(*steps, answer=answer, rationale="benchmark plan")


def _summary(step_id: str, vendor: int) -> dict[str, Any]:
    return {
        "id": step_id,
        "tool": "LedgerService_SummarizeTransactions",
        "arguments": {"vendorId": f"ven_{vendor:03d}"},
    }


def _evaluate(step_id: str, expression: str, depends_on: Sequence[str]) -> dict[str, Any]:
    return {
        "id": step_id,
        "tool": "CalculatorService_Evaluate",
        "arguments": {"expression": expression},
        "depends_on": list(depends_on),
    }


FANOUT_TASK = (
    "Total spend with vendors ven_001, ven_002, ven_003, ven_004, ven_005, ven_006, ven_007 and"
    " ven_008: look up each, then add them up."
)
CHAIN_TASK = "Take ven_001's total, divide by 100, double it, add one."
FANOUT_LOOKUPS = 8


def fanout_plan(template: bool = False) -> dict[str, Any]:
    """Eight independent lookups, then one Evaluate that sums them through references;
    ``template``: the plan carries the answer over the sum (one model call a run)."""
    lookups = [_summary(f"s{i}", i) for i in range(1, FANOUT_LOOKUPS + 1)]
    ids = [s["id"] for s in lookups]
    expression = " ".join(
        f"${{{sid}.totalMinor}}" + ("" if i == 0 else " +") for i, sid in enumerate(ids)
    )
    answer = "The total is ${s9.formatted}." if template else None
    return plan(*lookups, _evaluate("s9", expression, ids), answer=answer)


def chain_plan() -> dict[str, Any]:
    """Four steps, each needing the one before (references, no executor model call)."""
    return plan(
        _summary("s1", 1),
        _evaluate("s2", "${s1.totalMinor} 100 /", ["s1"]),
        _evaluate("s3", "${s2.value} 2 *", ["s2"]),
        _evaluate("s4", "${s3.value} 1 +", ["s3"]),
    )


def _observed(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool results a ReAct request already carries, in order."""
    found = []
    for message in body.get("messages", []):
        content = message.get("content")
        is_user_text = message.get("role") == "user" and isinstance(content, str)
        if is_user_text and content.startswith(_OBSERVATION):
            found.append(json.loads(content[len(_OBSERVATION) :]).get("result") or {})
    return found


def _call(tool: str, arguments: dict[str, Any]) -> Reply:
    return Reply(content={"call": {"tool": tool, "arguments": arguments}})


def _final(text: str) -> Reply:
    return _call("final_answer", {"answer": text})


def fanout_react(body: dict[str, Any]) -> Reply:
    """ReAct for the fan-out: one lookup per turn, then the sum, then the answer."""
    seen = _observed(body)
    if len(seen) < FANOUT_LOOKUPS:
        return _call(
            "LedgerService_SummarizeTransactions", {"vendorId": f"ven_{len(seen) + 1:03d}"}
        )
    if len(seen) == FANOUT_LOOKUPS:
        totals = [str(r.get("totalMinor", "0")) for r in seen]
        expression = " ".join(t + ("" if i == 0 else " +") for i, t in enumerate(totals))
        return _call("CalculatorService_Evaluate", {"expression": expression})
    return _final(f"The total is {seen[-1].get('value')}.")


def chain_react(body: dict[str, Any]) -> Reply:
    """ReAct for the chain: each call uses the previous observation."""
    seen = _observed(body)
    if not seen:
        return _call("LedgerService_SummarizeTransactions", {"vendorId": "ven_001"})
    last = seen[-1]
    steps = {1: f"{last.get('totalMinor', '0')} 100 /", 2: f"{last.get('value')} 2 *"}
    steps[3] = f"{last.get('value')} 1 +"
    if len(seen) in steps:
        return _call("CalculatorService_Evaluate", {"expression": steps[len(seen)]})
    return _final(f"The result is {last.get('value')}.")


def responder(plan_of: dict[str, Any], react: Any) -> Any:
    """One responder serving both modes: plan/answer for plan-execute, react_step for ReAct."""

    def respond(body: dict[str, Any]) -> Reply | None:
        name = schema_name(body)
        if name == "plan":
            return Reply(content=plan_of)
        if name == "answer":
            return Reply(content={"answer": "done", "missing": ""})
        if name == "react_step":
            return react(body)  # type: ignore[no-any-return]
        return None

    return respond
