"""Plans: the JSON Schema the planner writes under, decoding and tidying a reply into a
``Plan``, and the checks a decoded plan must pass before anything runs. (The ``$step.path``
references between steps, which the checks read, are ``agentd.loop.references``.)

The schema is built from the catalog, so the tool names and argument shapes a
model can write are those of the reflected descriptors. Checks run again after
decoding, because a schema cannot express "depends_on names an existing step" or
"no cycles", and because not every endpoint enforces the schema.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from agentd.llm.schemas import IdentityCache, validator, without_nulls
from agentd.loop.describe import deref
from agentd.loop.references import (
    UNMARKED,
    Unresolved,
    lookup,
    path_parts,
    reference_paths,
    references,
    unmarked,
)
from agentd.loop.state import Plan, PlanStep, StepRecord
from toolgen.jsonschema_kit import bounded as bounded
from toolgen.jsonschema_kit import hoist_defs

STEP_ID = r"^[a-z][a-z0-9_]{0,15}$"
_MAX_RATIONALE = 100
_MAX_ANSWER = 800
# A template is a sentence around references; a small model given more room writes on.
_MAX_TEMPLATE = 240
_MAX_REFERENCE = 80  # one "${s1.path}" of a structured answer's field


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


def answer_schema(
    response_schema: Mapping[str, Any] | None, max_chars: int, defs: dict[str, Any]
) -> dict[str, Any]:
    """The schema of a run's answer, bounded so a small model cannot run on to max_tokens
    (about 4 characters a token): text, or the caller's ``response_schema`` bounded, its
    ``$defs`` moved into ``defs``. The responder and the ReAct baseline's final answer share it."""
    if response_schema is None:
        return {"type": "string", "minLength": 1, "maxLength": max_chars}
    return embed(bounded(response_schema, max_chars), "answer_", defs)


def embed(schema: Mapping[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    """Return ``schema`` ready to nest in a bigger document.

    A tool schema is self-contained (its ``$defs`` at its root, ``$ref: #/$defs/X``);
    nested inside a plan its refs would point at the plan's root, so its defs move to
    ``defs`` under prefixed names and the refs are rewritten to match
    (``toolgen.jsonschema_kit.hoist_defs``; a reference to its own root is ``ValueError``).
    """
    return hoist_defs(schema, prefix, defs)


def _partial(schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments in a plan may be incomplete (filled after the steps they depend on)."""
    relaxed = dict(schema)
    relaxed.pop("required", None)
    if "anyOf" in relaxed:  # a message with oneofs: one complete object per branch
        relaxed["anyOf"] = [_partial(branch) for branch in relaxed["anyOf"]]
    return relaxed


def plan_schema(
    tools: Mapping[str, LoopTool],
    *,
    max_steps: int,
    done: Sequence[str] = (),
    taken: Sequence[str] = (),
    allow_empty: bool = True,
    union: bool = True,
    template: bool = True,
    fields: Sequence[str] = (),
) -> dict[str, Any]:
    """The schema of a plan over ``tools``, written only with what constrained decoders enforce.

    A plan either has steps (and a null answer, or one written over their results as
    ``${s1.field}``, see ``agentd.loop.template``: text, or with ``fields`` (a structured
    answer's) an object of those fields, each a reference; null only without ``template``
    and ``fields``) or has none and answers directly; with
    ``allow_empty`` (a replan, or a conversation to answer from) it may also have neither,
    leaving the answer to the responder. With ``union`` the root is a union of those object
    branches, so a grammar-constrained model cannot take the empty way out of a task that needs
    tools; without it (endpoints that want an object root, like OpenAI's) one object allows
    every combination and ``check_plan`` is all there is.

    ``steps`` is an array of one step schema with ``maxItems``, never ``prefixItems``: grammar
    engines compile positions into a fixed-length tuple, which would force a model to fill
    every slot. A step's ``id`` is one of the next free ids (numbering continues after the ids
    ``taken`` by earlier revisions), ``depends_on`` names only those ids and the ``done``
    steps, and ``call`` is one of the tools with that tool's own argument schema (partial:
    arguments needing earlier results may be left out). Uniqueness, order and cycles cannot be
    expressed in a grammar; ``check_plan`` checks them after decoding. The schema grows with
    steps plus tools, not with their product.
    """
    ordered = tuple(sorted(tools.values(), key=lambda t: t.name))
    return _PLAN_SCHEMAS.get(
        ordered,
        lambda: _build_plan_schema(
            ordered, max_steps, done, taken, allow_empty, union, template, tuple(fields)
        ),
        extra=(max_steps, tuple(done), tuple(taken), allow_empty, union, template, tuple(fields)),
    )


# Most runs share a catalog snapshot and start with no earlier steps, so the same
# schema object is reused, and with it the validator compiled for it.
_PLAN_SCHEMAS: IdentityCache[dict[str, Any]] = IdentityCache(64)


def _build_plan_schema(
    ordered: Sequence[LoopTool],
    max_steps: int,
    done: Sequence[str],
    taken: Sequence[str],
    allow_empty: bool,
    union: bool,
    template: bool,
    fields: tuple[str, ...],
) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    calls = []
    for index, tool in enumerate(ordered):
        calls.append(
            {
                "type": "object",
                "properties": {
                    # enum, not const: OpenAI strict mode and every grammar engine take it.
                    "tool": {"type": "string", "enum": [tool.name]},
                    "arguments": _partial(embed(tool.model_schema, f"t{index}_", defs)),
                },
                "required": ["tool", "arguments"],
                "additionalProperties": False,
            }
        )
    first = _next_number([*taken, *done])
    new_ids = [f"s{first + i}" for i in range(max(0, max_steps))]
    earlier = [*done, *new_ids]
    depends: dict[str, Any] = {"type": "array", "maxItems": min(len(earlier), 8)}
    if earlier:
        depends["items"] = {"type": "string", "enum": earlier}
    steps: dict[str, Any] = {"type": "array", "maxItems": len(new_ids) if calls else 0}
    if calls and new_ids:
        defs["call"] = {"anyOf": calls}
        steps["items"] = {
            "type": "object",
            "properties": {
                "id": {"type": "string", "enum": new_ids},
                "call": {"$ref": "#/$defs/call"},
                "depends_on": depends,
                "purpose": {"type": "string", "maxLength": 60},
            },
            "required": ["id", "call", "depends_on"],
            "additionalProperties": False,
        }
    else:
        steps["maxItems"] = 0
    answer = {"type": "string", "minLength": 1, "maxLength": _MAX_ANSWER}
    rationale = {"type": "string", "maxLength": _MAX_RATIONALE}
    # With steps, the answer is a template over their results (text, or a structured answer's
    # fields, each one reference), or null: the responder writes it.
    if fields:
        reference = {"type": "string", "minLength": 2, "maxLength": _MAX_REFERENCE}
        templates = [
            {
                "type": "object",
                "properties": {name: reference for name in fields},
                "required": list(fields),
                "additionalProperties": False,
            }
        ]
    else:
        templates = [{**answer, "maxLength": _MAX_TEMPLATE}] if template else []
    shapes: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (steps, answer) per branch
    if not union:  # one object for every case: text (a template too), the fields, or null
        objects = templates if fields else []
        shapes.append((steps, {"anyOf": [answer, *objects, {"type": "null"}]}))
    elif steps.get("maxItems"):
        shapes.append(({**steps, "minItems": 1}, {"anyOf": [*templates, {"type": "null"}]}))
    if union:
        shapes.append(({"type": "array", "maxItems": 0}, answer))
    if union and allow_empty:
        shapes.append(({"type": "array", "maxItems": 0}, {"type": "null"}))
    branches = [
        {
            "type": "object",
            # Steps come first and texts are short: small models given an unbounded leading
            # string repeat themselves until max_tokens and never reach the steps.
            # "rationale" is optional and the prompt shows none: after the answer it cannot
            # shape the plan, and on the embedded model its ~15 tokens cost ~0.7 s a plan.
            "properties": {"steps": shape, "answer": said, "rationale": rationale},
            "required": ["steps", "answer"],
            "additionalProperties": False,
        }
        for shape, said in shapes
    ]
    schema: dict[str, Any] = {"anyOf": branches} if len(branches) > 1 else branches[0]
    if defs:
        schema["$defs"] = defs
    return schema


def _next_number(ids: Sequence[str]) -> int:
    numbers = [int(d[1:]) for d in ids if re.fullmatch(r"s\d+", d)]
    return max(numbers, default=0) + 1


def decode_plan(value: Mapping[str, Any], revision: int) -> Plan:
    steps = [
        PlanStep(
            id=str(raw.get("id", "")),
            tool=str(_call(raw).get("tool", "")),
            # a strict-mode reply writes unset fields as null; proto3 JSON reads null as unset
            arguments=without_nulls(dict(_call(raw).get("arguments") or {})),
            # dict.fromkeys: a repeated id is harmless; no grammar can forbid it
            depends_on=list(dict.fromkeys(str(d) for d in raw.get("depends_on") or [])),
            purpose=str(raw.get("purpose") or ""),
        )
        for raw in value.get("steps") or []
        if isinstance(raw, Mapping)
    ]
    answer = value.get("answer")
    if isinstance(answer, Mapping):  # a structured answer's fields: kept as JSON text
        answer = json.dumps(answer, ensure_ascii=False)
    return Plan(
        revision=revision,
        steps=steps,
        direct_answer=answer if isinstance(answer, str) and answer.strip() else None,
        rationale=str(value.get("rationale") or ""),
    )


def merge_repeats(plan: Plan, tools: Mapping[str, LoopTool]) -> Plan:
    """``plan`` with repeated read-only calls (same tool, same arguments) made once.

    Small models repeat a step until the plan array is full, often making each depend on the
    one before; a repeated read returns the same result, so the repeats are dropped and what depended on or referred to them points at the
    first. Calls with side effects are left alone: repeating them may be meant.
    """
    first: dict[str, str] = {}  # repeat id -> the id of the first identical step
    seen: dict[str, str] = {}
    kept: list[PlanStep] = []
    for step in plan.steps:
        tool = tools.get(step.tool)
        # Without references a dependency changes nothing in the call ("get it again to
        # check", depending on the first): the same arguments are the same read.
        needs = step.depends_on if references(step.arguments) else []
        key = json.dumps([step.tool, step.arguments, needs], sort_keys=True)
        if tool is not None and tool.side_effects == "none" and key in seen:
            first[step.id] = seen[key]
            continue
        seen.setdefault(key, step.id)
        kept.append(step)
    if not first:
        return plan
    for step in kept:
        step.depends_on = list(dict.fromkeys(first.get(d, d) for d in step.depends_on))
        step.arguments = _renamed(step.arguments, first)
    if plan.direct_answer:  # a template refers to steps too
        plan.direct_answer = _renamed(plan.direct_answer, first)
    plan.steps = kept
    return plan


def without_bad_steps(plan: Plan, errors: Sequence[str]) -> Plan | None:
    """``plan`` without the steps ``errors`` name and the steps that depend on them.

    None when an error concerns the plan as a whole, or when no step would be left.
    """
    bad = set()
    for error in errors:
        match = re.match(r"step '([^']+)': ", error)
        if match is None:
            return None
        bad.add(match.group(1))
    changed = True
    while changed:  # dependents of dropped steps go too
        changed = False
        for step in plan.steps:
            if step.id not in bad and (set(step.depends_on) | references(step.arguments)) & bad:
                bad.add(step.id)
                changed = True
    kept = [step for step in plan.steps if step.id not in bad]
    if not kept:
        return None
    return dataclasses.replace(plan, steps=kept)


def _renamed(arguments: Any, ids: Mapping[str, str]) -> Any:
    if isinstance(arguments, str):
        for old, new in ids.items():
            arguments = re.sub(rf"(\$\{{?){old}(?=[.\[}}]|$)", rf"\g<1>{new}", arguments)
        return arguments
    if isinstance(arguments, dict):
        return {k: _renamed(v, ids) for k, v in arguments.items()}
    if isinstance(arguments, list):
        return [_renamed(v, ids) for v in arguments]
    return arguments


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
        errors.extend(f"{where}: {p}" for p in _reference_problems(step, plan, tools, done))
        errors.extend(
            f"{where}: {text!r} is not a reference; write ${text} (or ${{{text}}} inside text)"
            for text in unmarked(step.arguments, set(step.depends_on))
        )
    cycle = find_cycle(plan.steps)
    if cycle:
        errors.append("steps depend on each other in a cycle: " + " -> ".join(cycle))
    said = plan.direct_answer or ""
    placeholder = "${" in said or references(said) or UNMARKED.search(said)
    if not plan.steps and not done and placeholder:
        # A template with nothing to fill it ("${...}", "$s1.phone", "s1.phone") would reach
        # the caller as written, or a responder with no result to read.
        errors.append(
            'the answer has a "${...}" placeholder but no step returns anything: plan the'
            " calls it needs, or write the answer without placeholders"
        )
    return errors


def validate(tool: LoopTool, arguments: Any) -> list[str]:
    """Schema violations of ``arguments`` for ``tool``, each with its JSON pointer."""
    compiled = validator(tool.input_schema)
    if compiled.is_valid(arguments):
        return []
    problems = []
    for error in sorted(compiled.iter_errors(arguments), key=lambda e: list(e.absolute_path)):
        pointer = "/".join(str(p) for p in error.absolute_path)
        where = f"arguments/{pointer}" if pointer else "arguments"
        schema_path = list(error.schema_path)
        if "dependentSchemas" in schema_path:  # a proto oneof: say it in the model's terms
            at = schema_path.index("dependentSchemas")
            member = schema_path[at + 1]
            other = error.path[-1] if error.path else "another member"
            problems.append(
                f"{where}: {member!r} and {other!r} are alternatives (one oneof); keep only one"
            )
            continue
        problems.append(f"{where}: {error.message}")
    return problems


def _reference_problems(
    step: PlanStep, plan: Plan, tools: Mapping[str, LoopTool], done: Sequence[StepRecord]
) -> list[str]:
    """References whose path cannot exist: checked against finished results, or else against
    the output schema of the referenced step's tool, so the planner can fix them now."""
    planned = {s.id: s for s in plan.steps}
    finished = {r.id: r for r in done if r.status == "succeeded"}
    problems = []
    for step_id, path, written in reference_paths(step.arguments):
        if step_id in finished:
            try:
                lookup({step_id: finished[step_id].result}, step_id, path, written)
            except Unresolved as exc:
                problems.append(str(exc))
        elif step_id in planned:
            tool = tools.get(planned[step_id].tool)
            output = getattr(tool, "output_schema", None)
            if tool is not None and isinstance(output, dict):
                problem = _path_problem(output, path_parts(path))
                if problem:
                    problems.append(f"{written}: {problem} in the result of {tool.name}")
    return problems


def _path_problem(root: Mapping[str, Any], parts: Sequence[str]) -> str:
    """Why ``parts`` cannot be a path into instances of ``root`` ("" when it can)."""
    node: Any = root
    for part in parts:
        node = deref(root, node)
        if not isinstance(node, Mapping):
            return ""
        branches = [deref(root, b) for b in node.get("anyOf", [])] or [node]
        if any(b.get("type") == "array" or "items" in b for b in branches):
            if not part.isdigit():
                return f"{part!r} follows a list; index it first, e.g. .0.{part}"
            node = next((b["items"] for b in branches if "items" in b), {})
            continue
        fields: dict[str, Any] = {}
        for branch in branches:
            fields.update(branch.get("properties") or {})
        kinds = {b.get("type") for b in branches if isinstance(b.get("type"), str)}
        if not fields and kinds and kinds <= {"string", "integer", "number", "boolean"}:
            return f"{part!r} follows a single value ({' or '.join(sorted(kinds))})"
        if not fields:
            return ""  # an open object: nothing to check against
        if part not in fields:
            return f"no {part!r} (fields: {', '.join(fields)})"
        node = fields[part]
    return ""


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
