"""Plans: the JSON Schema the planner writes under, the checks a decoded plan must
pass before anything runs, and the ``$step.path`` references between steps.

The schema is built from the catalog, so the tool names and argument shapes a
model can write are those of the reflected descriptors. Checks run again after
decoding, because a schema cannot express "depends_on names an existing step" or
"no cycles", and because not every endpoint enforces the schema.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from agentd.loop.state import Plan, PlanStep, StepRecord
from agentd.validation import validator

STEP_ID = r"^[a-z][a-z0-9_]{0,15}$"
_REFERENCE = re.compile(r"^\$([a-z][a-z0-9_]{0,15})((?:\.[A-Za-z0-9_@-]+)*)$")
# Inside longer text a reference is braced: "${s1.totalMinor} ${s2.totalMinor} +".
_EMBEDDED = re.compile(r"\$\{([a-z][a-z0-9_]{0,15})((?:\.[A-Za-z0-9_@-]+)*)\}")
_MAX_RATIONALE = 200
_MAX_ANSWER = 800


class LoopTool(Protocol):
    """What the loop needs of a tool: reflected upstream methods and built-ins alike."""

    @property
    def name(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def side_effects(self) -> str: ...
    @property
    def policy(self) -> str: ...
    @property
    def input_schema(self) -> dict[str, Any]: ...
    @property
    def model_schema(self) -> dict[str, Any]: ...

    async def invoke(
        self, arguments: dict[str, Any], *, metadata: Sequence[tuple[str, str]], timeout: float
    ) -> dict[str, Any]: ...


# --- embedding tool schemas into one document -------------------------------------------


def embed(schema: Mapping[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """Return ``schema`` ready to nest in a bigger document.

    A tool schema is self-contained (its ``$defs`` at its root, ``$ref: #/$defs/X``);
    nested inside a plan its refs would point at the plan's root, so its defs move to
    ``defs`` under prefixed names and the refs are rewritten to match.
    """
    body = copy.deepcopy(dict(schema))
    for name, definition in body.pop("$defs", {}).items():
        defs[prefix + name] = definition
    body.pop("$schema", None)
    body.pop("$id", None)

    def rewrite(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                node["$ref"] = "#/$defs/" + prefix + ref[len("#/$defs/") :]
            elif ref == "#":
                raise ValueError("a schema that refers to its own root cannot be embedded")
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for value in node:
                rewrite(value)

    rewrite(body)
    for name in list(defs):
        if name.startswith(prefix):
            rewrite(defs[name])
    return body


def _partial(schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments in a plan may be incomplete (filled after the steps they depend on)."""
    relaxed = dict(schema)
    relaxed.pop("required", None)
    return relaxed


def plan_schema(
    tools: Mapping[str, LoopTool],
    *,
    max_steps: int,
    done: Sequence[str] = (),
    taken: Sequence[str] = (),
) -> dict[str, Any]:
    """The schema of a plan over ``tools``, so that a decoded plan is well formed by construction.

    Step ``i`` has the fixed id ``s<n>`` (numbering continues after the ids ``taken`` by
    earlier revisions) and may depend only on earlier ids (and the ``done`` steps), so ids are unique and the
    graph is acyclic whatever the model writes. Its ``call`` is one of the tools with that
    tool's own argument schema (partial: arguments needing earlier results may be left
    out). The schema grows with steps plus tools, not with their product.
    """
    ordered = tuple(sorted(tools.values(), key=lambda t: t.name))
    key = (tuple(id(t) for t in ordered), max_steps, tuple(done), tuple(taken))
    cached = _PLAN_SCHEMAS.get(key)
    if cached is not None and all(a is b for a, b in zip(cached[0], ordered, strict=True)):
        return cached[1]
    schema = _build_plan_schema(ordered, max_steps, done, taken)
    if len(_PLAN_SCHEMAS) >= 64:
        _PLAN_SCHEMAS.pop(next(iter(_PLAN_SCHEMAS)))
    _PLAN_SCHEMAS[key] = (ordered, schema)  # the tools are kept alive, so ids stay theirs
    return schema


# Most runs share a catalog snapshot and start with no earlier steps, so the same
# schema object is reused, and with it the validator compiled for it.
_PLAN_SCHEMAS: dict[tuple[Any, ...], tuple[tuple[LoopTool, ...], dict[str, Any]]] = {}


def _build_plan_schema(
    ordered: Sequence[LoopTool], max_steps: int, done: Sequence[str], taken: Sequence[str]
) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    calls = []
    for index, tool in enumerate(ordered):
        calls.append(
            {
                "type": "object",
                "properties": {
                    "tool": {"const": tool.name},
                    "arguments": _partial(embed(tool.model_schema, f"t{index}_", defs)),
                },
                "required": ["tool", "arguments"],
                "additionalProperties": False,
            }
        )
    defs["call"] = {"anyOf": calls} if calls else {"not": {}}
    first = _next_number([*taken, *done])
    positions = []
    for i in range(max(1, max_steps)):
        earlier = [*done, *(f"s{first + j}" for j in range(i))]
        depends: dict[str, Any] = {"type": "array", "maxItems": min(len(earlier), 8)}
        if earlier:
            depends.update(items={"enum": earlier}, uniqueItems=True)
        positions.append(
            {
                "type": "object",
                "properties": {
                    "id": {"const": f"s{first + i}"},
                    "call": {"$ref": "#/$defs/call"},
                    "depends_on": depends,
                    "purpose": {"type": "string", "maxLength": 120},
                },
                "required": ["id", "call", "depends_on"],
                "additionalProperties": False,
            }
        )
    return {
        "type": "object",
        # Steps come first and texts are short: small models given an unbounded leading
        # string repeat themselves until max_tokens and never reach the steps.
        "properties": {
            "steps": {
                "type": "array",
                "prefixItems": positions,
                "maxItems": len(positions),  # (llama.cpp rejects "items": false)
            },
            "answer": {"anyOf": [{"type": "string", "maxLength": _MAX_ANSWER}, {"type": "null"}]},
            "rationale": {"type": "string", "maxLength": _MAX_RATIONALE},
        },
        "required": ["steps", "answer", "rationale"],
        "additionalProperties": False,
        "$defs": defs,
    }


def _next_number(ids: Sequence[str]) -> int:
    numbers = [int(d[1:]) for d in ids if re.fullmatch(r"s\d+", d)]
    return max(numbers, default=0) + 1


def decode_plan(value: Mapping[str, Any], revision: int) -> Plan:
    steps = [
        PlanStep(
            id=str(raw.get("id", "")),
            tool=str(_call(raw).get("tool", "")),
            arguments=dict(_call(raw).get("arguments") or {}),
            depends_on=[str(d) for d in raw.get("depends_on") or []],
            purpose=str(raw.get("purpose") or ""),
        )
        for raw in value.get("steps") or []
        if isinstance(raw, Mapping)
    ]
    answer = value.get("answer")
    return Plan(
        revision=revision,
        steps=steps,
        direct_answer=answer if isinstance(answer, str) and answer.strip() else None,
        rationale=str(value.get("rationale") or ""),
    )


def _call(step: Mapping[str, Any]) -> Mapping[str, Any]:
    call = step.get("call")
    return call if isinstance(call, Mapping) else {}


# --- checking ---------------------------------------------------------------------------


def check_plan(plan: Plan, tools: Mapping[str, LoopTool], done: Sequence[StepRecord]) -> list[str]:
    """Every problem that would make the plan fail, phrased for the planner to fix."""
    errors: list[str] = []
    earlier = {record.id for record in done}
    ids: set[str] = set()
    for step in plan.steps:
        where = f"step {step.id!r}"
        if not re.match(STEP_ID, step.id):
            errors.append(f"{where}: id must match {STEP_ID}")
        if step.id in ids or step.id in earlier:
            errors.append(f"{where}: id is already used; pick a new one")
        ids.add(step.id)
        if step.tool not in tools:
            errors.append(f"{where}: unknown tool {step.tool!r}; use one of the listed tools")
    known = ids | earlier
    for step in plan.steps:
        where = f"step {step.id!r}"
        for dep in step.depends_on:
            if dep == step.id:
                errors.append(f"{where}: depends on itself")
            elif dep not in known:
                errors.append(f"{where}: depends_on names unknown step {dep!r}")
        for ref in references(step.arguments):
            if ref not in step.depends_on and ref not in earlier:
                errors.append(f"{where}: refers to ${ref} but does not list it in depends_on")
        tool = tools.get(step.tool)
        if tool and not step.depends_on and not references(step.arguments):
            errors.extend(f"{where}: {problem}" for problem in validate(tool, step.arguments))
    cycle = find_cycle(plan.steps)
    if cycle:
        errors.append("steps depend on each other in a cycle: " + " -> ".join(cycle))
    return errors


def validate(tool: LoopTool, arguments: Any) -> list[str]:
    """Schema violations of ``arguments`` for ``tool``, each with its JSON pointer."""
    compiled = validator(tool.input_schema)
    if compiled.is_valid(arguments):
        return []
    problems = []
    for error in sorted(compiled.iter_errors(arguments), key=lambda e: list(e.absolute_path)):
        pointer = "/" + "/".join(str(p) for p in error.absolute_path)
        problems.append(f"arguments{pointer if pointer != '/' else ''}: {error.message}")
    return problems


def find_cycle(steps: Sequence[PlanStep]) -> list[str]:
    graph = {s.id: [d for d in s.depends_on] for s in steps}
    state: dict[str, int] = {}  # 1 visiting, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for dep in graph.get(node, []):
            if dep not in graph:
                continue
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


# --- references -------------------------------------------------------------------------


def references(arguments: Any) -> set[str]:
    """Step ids referenced as ``$id.path`` anywhere in ``arguments``."""
    found: set[str] = set()
    if isinstance(arguments, str):
        match = _REFERENCE.match(arguments)
        if match:
            found.add(match.group(1))
        found.update(m.group(1) for m in _EMBEDDED.finditer(arguments))
    elif isinstance(arguments, dict):
        for value in arguments.values():
            found |= references(value)
    elif isinstance(arguments, list):
        for value in arguments:
            found |= references(value)
    return found


class Unresolved(Exception):
    """A reference whose path does not exist in the step's result."""


def resolve(arguments: Any, results: Mapping[str, Any]) -> Any:
    """Replace references by the values they point to in the results of earlier steps.

    A whole-string ``$id.path`` becomes the value itself (any JSON type); a braced
    ``${id.path}`` inside longer text becomes its text (JSON for objects and lists).
    """
    if isinstance(arguments, str):
        match = _REFERENCE.match(arguments)
        if match and match.group(1) in results:
            return _lookup(results, match.group(1), match.group(2), arguments)
        return _EMBEDDED.sub(
            lambda m: _text(_lookup(results, m.group(1), m.group(2), m.group(0))), arguments
        )
    if isinstance(arguments, dict):
        return {key: resolve(value, results) for key, value in arguments.items()}
    if isinstance(arguments, list):
        return [resolve(value, results) for value in arguments]
    return arguments


def _lookup(results: Mapping[str, Any], step_id: str, path: str, written: str) -> Any:
    if step_id not in results:
        raise Unresolved(f"{written}: step {step_id} has no result")
    value = results[step_id]
    for part in filter(None, path.split(".")):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise Unresolved(f"{written}: no {part!r} in the result of step {step_id}")
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
