"""Checking one run against its case: each expectation becomes one named, explained result."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

from agentd.evals.suite import Case, ToolCheck, is_predicate, parse_path
from agentd.v1 import agent_pb2

_MISSING = object()


@dataclass(frozen=True)
class CheckResult:
    name: str  # e.g. "status", "tools_called[0]", "output_json.$.total"
    passed: bool
    detail: str = ""  # what was seen, when it failed


def status_name(status: int) -> str:
    return agent_pb2.RunStatus.Name(status).removeprefix("RUN_STATUS_").lower()  # type: ignore[arg-type]


def check_run(case: Case, run: agent_pb2.RunResponse, latency_s: float) -> list[CheckResult]:
    """Every check of ``case`` on ``run``, in a stable order."""
    expect = case.expect
    results: list[CheckResult] = []
    if expect.status:
        seen = status_name(run.status)
        detail = f"got {seen}" + (f" ({run.error})" if run.error else "")
        results.append(CheckResult("status", seen in expect.status, detail))
    steps = [(s.tool, json_format.MessageToDict(s.arguments)) for s in run.steps]
    for i, check in enumerate(expect.tools_called):
        ok = any(_tool_matches(check, tool, args) for tool, args in steps)
        called = ", ".join(tool for tool, _ in steps) or "no tools"
        results.append(
            CheckResult(f"tools_called[{i}]", ok, f"wanted {check.describe()}; called {called}")
        )
    for i, check in enumerate(expect.tools_not_called):
        hits = [tool for tool, args in steps if _tool_matches(check, tool, args)]
        results.append(CheckResult(f"tools_not_called[{i}]", not hits, f"called {', '.join(hits)}"))
    if expect.output_json:
        output = json_format.MessageToDict(run.output_json) if run.HasField("output_json") else None
        for path, predicate in expect.output_json.items():
            value = lookup(output, path) if output is not None else _MISSING
            ok, detail = evaluate(predicate, value)
            results.append(CheckResult(f"output_json {path}", ok, detail))
    text = run.output.casefold()
    for needle in expect.contains:
        results.append(
            CheckResult(f"contains {needle!r}", needle.casefold() in text, _excerpt(run.output))
        )
    for needle in expect.not_contains:
        results.append(
            CheckResult(
                f"not_contains {needle!r}", needle.casefold() not in text, _excerpt(run.output)
            )
        )
    budget = expect.budget
    calls = len(run.model_calls)
    tokens = sum(u.input_tokens + u.output_tokens for u in run.usage)
    limits: tuple[tuple[str, float | None, float], ...] = (
        ("model_calls", budget.max_model_calls, calls),
        ("tokens", budget.max_tokens, tokens),
        ("latency_s", budget.max_latency_s, round(latency_s, 3)),
        ("cost_usd", budget.max_cost_usd, run.cost_usd),
    )
    for name, limit, used in limits:
        if limit is not None:
            results.append(CheckResult(f"budget {name}", used <= limit, f"{used} > {limit}"))
    return [r if not r.passed else CheckResult(r.name, True) for r in results]


def _tool_matches(check: ToolCheck, tool: str, args: Mapping[str, Any]) -> bool:
    if not check.matches_name(tool):
        return False
    return all(evaluate(p, lookup(args, path))[0] for path, p in check.args.items())


def lookup(value: Any, path: str) -> Any:
    """The value at ``path`` in ``value``, or a sentinel when it is absent."""
    for part in parse_path(path):
        in_list = isinstance(part, int) and isinstance(value, list) and part < len(value)
        if in_list or (isinstance(part, str) and isinstance(value, dict) and part in value):
            value = value[part]  # type: ignore[index]
        else:
            return _MISSING
    return value


def evaluate(predicate: Any, value: Any) -> tuple[bool, str]:
    """Does ``value`` satisfy ``predicate`` (a literal or a predicate mapping)? And what was seen."""
    seen = "absent" if value is _MISSING else f"got {value!r}"
    if not is_predicate(predicate):
        return _equal(predicate, value), seen
    for key, want in predicate.items():
        if key == "exists":
            ok = (value is not _MISSING) == want
        elif value is _MISSING:
            ok = False
        elif key == "eq":
            ok = _equal(want, value)
        elif key == "ne":
            ok = not _equal(want, value)
        elif key in ("min", "max"):
            number = _number(value)
            ok = number is not None and (number >= want if key == "min" else number <= want)
        elif key == "contains":
            ok = str(want).casefold() in _text(value).casefold()
        elif key == "matches":
            ok = re.search(str(want), _text(value)) is not None
        else:  # one_of
            ok = any(_equal(option, value) for option in want)
        if not ok:
            return False, f"{seen}, wanted {key} {want!r}"
    return True, seen


def _equal(want: Any, value: Any) -> bool:
    if value is _MISSING:
        return False
    a, b = _number(want), _number(value)
    if a is not None and b is not None:
        # int64 fields arrive as strings (proto3 JSON) and Struct numbers as doubles.
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(want, str) and isinstance(value, str):
        return want.casefold() == value.casefold()
    return bool(want == value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def _excerpt(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return "answer: " + (flat if len(flat) <= limit else flat[: limit - 1] + "…")
