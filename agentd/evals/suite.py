"""Task suites: cases with a task, its inputs and the checks its result must pass.

A suite is YAML (a mapping with ``cases``) or JSONL (one case per line; a line holding
``{"suite": {...}}`` gives the name, defaults and reward weights). Every error names the
file, the case and the field, e.g. ``evals/ledger.yaml: case 'vendor-phone' (#3):
expect.status: must be one of ...``.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentd.evals.reward import RewardWeights

STATUSES = (
    "succeeded",
    "failed",
    "limits_exceeded",
    "needs_approval",
    "blocked_by_guardrail",
    "cancelled",
    "deadline_exceeded",
)
# A mapping whose keys are all among these is a predicate; any other value must be equal.
PREDICATE_KEYS = frozenset({"eq", "ne", "min", "max", "contains", "matches", "one_of", "exists"})
_CASE_KEYS = {
    "id",
    "task",
    "context",
    "response_schema",
    "tools",
    "metadata",
    "expect",
    "tags",
    "reference",
}
_EXPECT_KEYS = {
    "status",
    "tools_called",
    "tools_not_called",
    "output_json",
    "contains",
    "not_contains",
    "budget",
}
_BUDGET_KEYS = {"max_model_calls", "max_tokens", "max_latency_s", "max_cost_usd"}
_SUITE_KEYS = {"name", "description", "defaults", "reward", "services", "cases"}
_DEFAULT_KEYS = {"metadata", "tools", "budget", "context"}


class SuiteError(ValueError):
    """A suite file agentd cannot use; the message names the file, the case and the field."""


@dataclass(frozen=True)
class ToolCheck:
    """A tool the run must (or must not) call; ``args`` maps argument paths to predicates."""

    tool: str  # a tool name or a shell-style pattern
    args: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return self.tool + (f" {json.dumps(dict(self.args))}" if self.args else "")

    def matches_name(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.tool)


@dataclass(frozen=True)
class Budget:
    max_model_calls: int | None = None
    max_tokens: int | None = None
    max_latency_s: float | None = None
    max_cost_usd: float | None = None


@dataclass(frozen=True)
class Expect:
    status: tuple[str, ...] = ()  # any of these; empty: not checked
    tools_called: tuple[ToolCheck, ...] = ()
    tools_not_called: tuple[ToolCheck, ...] = ()
    output_json: Mapping[str, Any] = field(default_factory=dict)  # JSON path -> predicate
    contains: tuple[str, ...] = ()  # in the answer text, ignoring case
    not_contains: tuple[str, ...] = ()
    budget: Budget = field(default_factory=Budget)


@dataclass(frozen=True)
class Case:
    id: str
    task: str
    context: Mapping[str, Any] | None = None
    response_schema: Mapping[str, Any] | None = None
    tools: tuple[str, ...] = ()  # narrows the allowlist for this run (RunRequest.tools)
    metadata: Mapping[str, str] = field(default_factory=dict)  # caller metadata
    expect: Expect = field(default_factory=Expect)
    tags: tuple[str, ...] = ()
    # A known-good trajectory (plan steps and an answer template); agentd ignores it, the
    # scripted test model replays it, and it documents what "right" means for the case.
    reference: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    cases: tuple[Case, ...]
    reward: RewardWeights = field(default_factory=RewardWeights)
    source: str = "<memory>"
    # upstream name -> "module:function" starting that service for an in-process run: the
    # suite names its own fixtures, so agentd never imports them
    services: Mapping[str, str] = field(default_factory=dict)

    def select(self, patterns: Sequence[str] = (), limit: int | None = None) -> Suite:
        """The cases whose id or a tag matches one of ``patterns``, at most ``limit`` of them."""
        cases = [
            c
            for c in self.cases
            if not patterns or any(fnmatch.fnmatchcase(c.id, p) or p in c.tags for p in patterns)
        ]
        if limit is not None:
            cases = cases[:limit]
        return Suite(self.name, tuple(cases), self.reward, self.source, self.services)


def load_suite(path: str | Path) -> Suite:
    """Read a YAML or JSONL suite; raises SuiteError naming the case and field."""
    source = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SuiteError(f"{source}: cannot read: {exc.strerror}") from None
    raw = _read_jsonl(source, text) if source.endswith(".jsonl") else _read_yaml(source, text)
    return parse_suite(raw, source)


def _read_yaml(source: str, text: str) -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is a dependency; JSONL needs nothing
        raise SuiteError(f"{source}: YAML suites need pyyaml (pip install pyyaml)") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SuiteError(f"{source}: invalid YAML: {exc}") from None


def _read_jsonl(source: str, text: str) -> dict[str, Any]:
    suite: dict[str, Any] = {"cases": []}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise SuiteError(f"{source}: line {number}: invalid JSON: {exc}") from None
        if isinstance(item, dict) and set(item) == {"suite"} and isinstance(item["suite"], dict):
            suite.update(item["suite"])
        else:
            suite["cases"].append(item)
    return suite


def parse_suite(raw: Any, source: str = "<memory>") -> Suite:
    """Check and build a suite from plain data (what YAML or JSONL gave)."""
    if not isinstance(raw, dict):
        raise SuiteError(f"{source}: a suite is a mapping with 'cases'")
    for key in raw:
        if key not in _SUITE_KEYS:
            raise SuiteError(
                f"{source}: {key}: unknown key (known: {', '.join(sorted(_SUITE_KEYS))})"
            )
    try:
        weights = RewardWeights.from_mapping(_mapping(raw.get("reward", {}), "reward"))
    except ValueError as exc:
        raise SuiteError(f"{source}: {exc}") from None
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict) or set(defaults) - _DEFAULT_KEYS:
        raise SuiteError(
            f"{source}: defaults: must be a mapping of {', '.join(sorted(_DEFAULT_KEYS))}"
        )
    cases_raw = raw.get("cases")
    if not isinstance(cases_raw, list) or not cases_raw:
        raise SuiteError(f"{source}: cases: must be a non-empty list")
    cases: list[Case] = []
    seen: set[str] = set()
    for index, item in enumerate(cases_raw, start=1):
        name = item.get("id") if isinstance(item, dict) else None
        where = f"{source}: case {name!r} (#{index})" if name else f"{source}: case #{index}"
        try:
            case = _case(item, defaults)
        except ValueError as exc:
            raise SuiteError(f"{where}: {exc}") from None
        if case.id in seen:
            raise SuiteError(f"{where}: id: duplicate case id {case.id!r}")
        seen.add(case.id)
        cases.append(case)
    name = raw.get("name") or Path(source).stem
    return Suite(str(name), tuple(cases), weights, source, _services(raw.get("services"), source))


def _services(raw: Any, source: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SuiteError(f"{source}: services: must map upstream names to 'module:function'")
    for name, target in raw.items():
        if not isinstance(target, str) or not re.fullmatch(r"[\w.]+:\w+", target):
            raise SuiteError(
                f"{source}: services.{name}: must be 'module:function', got {target!r}"
            )
    return {str(k): v for k, v in raw.items()}


# --- one case: each helper raises ValueError("field: what is wrong") ------------------------


def _case(item: Any, defaults: Mapping[str, Any]) -> Case:
    if not isinstance(item, dict):
        raise ValueError("must be a mapping with id, task and expect")
    unknown = set(item) - _CASE_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise ValueError(f"{key}: unknown field (known: {', '.join(sorted(_CASE_KEYS))})")
    case_id = item.get("id")
    if not isinstance(case_id, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]+", case_id):
        raise ValueError("id: required, letters, digits and _ . : - only")
    task = item.get("task")
    if not isinstance(task, str) or not task.strip():
        raise ValueError("task: required, a non-empty string")
    context = item.get("context", defaults.get("context"))
    if context is not None:
        context = _mapping(context, "context")
    schema = item.get("response_schema")
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as exc:
            raise ValueError(f"response_schema: not JSON: {exc}") from None
    if schema is not None:
        schema = _mapping(schema, "response_schema")
    metadata = {**_mapping(defaults.get("metadata", {}), "defaults.metadata")}
    metadata.update(_mapping(item.get("metadata", {}), "metadata"))
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise ValueError(f"metadata.{key}: must be a string")
    tools = _strings(item.get("tools", defaults.get("tools", [])), "tools")
    expect = _expect(item.get("expect", {}), defaults.get("budget", {}))
    reference = item.get("reference")
    if reference is not None:
        reference = _mapping(reference, "reference")
    return Case(
        id=case_id,
        task=task,
        context=context,
        response_schema=schema,
        tools=tools,
        metadata={k.lower(): v for k, v in metadata.items()},
        expect=expect,
        tags=_strings(item.get("tags", []), "tags"),
        reference=reference,
    )


def _expect(raw: Any, default_budget: Any) -> Expect:
    raw = _mapping(raw, "expect")
    unknown = set(raw) - _EXPECT_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise ValueError(f"expect.{key}: unknown check (known: {', '.join(sorted(_EXPECT_KEYS))})")
    status = raw.get("status", [])
    statuses = (status,) if isinstance(status, str) else _strings(status, "expect.status")
    for value in statuses:
        if value not in STATUSES:
            raise ValueError(f"expect.status: {value!r} must be one of {', '.join(STATUSES)}")
    output_json = _mapping(raw.get("output_json", {}), "expect.output_json")
    for path, predicate in output_json.items():
        parse_path(path, f"expect.output_json.{path}")
        _check_predicate(predicate, f"expect.output_json.{path}")
    budget_raw = {**_mapping(default_budget, "defaults.budget")}
    budget_raw.update(_mapping(raw.get("budget", {}), "expect.budget"))
    for key, value in budget_raw.items():
        if key not in _BUDGET_KEYS:
            raise ValueError(
                f"expect.budget.{key}: unknown (known: {', '.join(sorted(_BUDGET_KEYS))})"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"expect.budget.{key}: must be a non-negative number")
    return Expect(
        status=statuses,
        tools_called=_tool_checks(raw.get("tools_called", []), "expect.tools_called"),
        tools_not_called=_tool_checks(raw.get("tools_not_called", []), "expect.tools_not_called"),
        output_json=output_json,
        contains=_strings(raw.get("contains", []), "expect.contains"),
        not_contains=_strings(raw.get("not_contains", []), "expect.not_contains"),
        budget=Budget(**budget_raw),
    )


def _tool_checks(raw: Any, where: str) -> tuple[ToolCheck, ...]:
    if not isinstance(raw, list):
        raise ValueError(f"{where}: must be a list of tool names or {{tool, args}} mappings")
    checks: list[ToolCheck] = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            checks.append(ToolCheck(item))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("tool"), str):
            raise ValueError(f"{where}[{i}]: must be a tool name or a mapping with 'tool'")
        if set(item) - {"tool", "args"}:
            raise ValueError(f"{where}[{i}]: only 'tool' and 'args' are allowed")
        args = _mapping(item.get("args", {}), f"{where}[{i}].args")
        for path, predicate in args.items():
            parse_path(path, f"{where}[{i}].args.{path}")
            _check_predicate(predicate, f"{where}[{i}].args.{path}")
        checks.append(ToolCheck(item["tool"], args))
    return tuple(checks)


def _check_predicate(predicate: Any, where: str) -> None:
    if not is_predicate(predicate):
        return
    for key, value in predicate.items():
        if key in ("min", "max") and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            raise ValueError(f"{where}.{key}: must be a number")
        if key == "matches":
            try:
                re.compile(str(value))
            except re.error as exc:
                raise ValueError(f"{where}.matches: invalid regex: {exc}") from None
        if key == "one_of" and not isinstance(value, list):
            raise ValueError(f"{where}.one_of: must be a list")
        if key == "exists" and not isinstance(value, bool):
            raise ValueError(f"{where}.exists: must be true or false")


def is_predicate(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and set(value) <= PREDICATE_KEYS


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: must be a mapping, got {type(value).__name__}")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: must be a list of strings")
    return tuple(value)


_PATH_PART = re.compile(r"\.?([A-Za-z_@][\w@-]*)|\[(\d+)\]|\.(\d+)")


def parse_path(path: str, where: str = "path") -> tuple[str | int, ...]:
    """``$.groups[0].totalMinor``, ``groups.0.totalMinor`` -> ("groups", 0, "totalMinor")."""
    rest = path[1:] if path.startswith("$") else path
    parts: list[str | int] = []
    pos = 0
    while pos < len(rest):
        match = _PATH_PART.match(rest, pos)
        if not match or match.end() == pos:
            raise ValueError(f"{where}: bad JSON path {path!r} at {rest[pos:]!r}")
        name, index, dotted = match.groups()
        parts.append(name if name is not None else int(index or dotted))
        pos = match.end()
    return tuple(parts)
