"""A plan's answer written over its steps' results, and the honest end of a run whose side
effects did not happen.

A plan with steps may carry its answer as a template: ``"The phone of ${s1.name} is
${s1.phone}."``. Once every step succeeded, ``fill`` puts the referenced values in, and that is
the run's answer: a lookup costs one model call, not two. Values come from upstreams and are
untrusted text: they are inserted in one pass (a value holding ``${s2.x}`` stays as written,
nothing is evaluated), and the answer is bounded in size. Anything that does not fit (no
reference, a missing or empty value, an object where text belongs, too long) is
``Unresolved``, and the responder writes the answer instead.

A run that asks for a structured answer (a ``response_schema`` whose fields are plain values
or lists of them) may be answered the same way: the plan's answer is an object of those fields,
each one reference (``{"count": "${s1.totalSize}"}``) that picks none of several list items.
``fill_fields`` takes each value as the result holds it (converted only where proto3 JSON writes
a number as a string), and the object must then validate against the caller's schema. A field
after a list takes that field of every item (``${s1.vendors.name}``: the names).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema
import structlog

from agentd.llm.schemas import validator
from agentd.loop.references import (
    EMBEDDED,
    REFERENCE,
    UNMARKED,
    Unresolved,
    embedded_reference,
    lookup,
    path_parts,
    references,
)
from agentd.loop.state import Plan, RunState, StepRecord

__all__ = [
    "Unresolved",
    "answer_fields",
    "fill",
    "fill_fields",
    "is_placeholder",
    "plan_answer",
    "undone",
]

log = structlog.get_logger("agentd.loop")

# Answers that say nothing: a small model writes a field's name, a status or a shrug instead.
_PLACEHOLDERS = {
    "missing", "unknown", "null", "none", "n/a", "na", "answer", "value", "result", "skipped",
    "failed", "not done", "not available", "unavailable", "pending", "tbd", "todo", "-", "...",
    "error", "i cannot tell", "cannot tell", "i don't know", "i do not know",
}  # fmt: skip
_LIST_ITEMS = 20  # a list of plain values is joined, up to this many


def plan_answer(plan: Plan, run: RunState, max_chars: int) -> Any:
    """The plan's answer when it can be the run's, else None (the responder writes it).

    A plan without steps answers as written (text only). A plan's answer that refers to step
    results is filled once every step of the run succeeded: text, or with a response_schema
    the object of its fields."""
    said = plan.direct_answer
    if not said:
        return None
    if not plan.steps and not references(said):
        return said if run.response_schema is None else None
    if not run.steps or any(r.status != "succeeded" for r in run.steps):
        return None
    results = {r.id: r.result for r in run.steps}
    try:
        if run.response_schema is None:
            return fill(said, results, max_chars)
        return fill_fields(said, results, run.response_schema, max_chars)
    except Unresolved as exc:  # names a step and a path, never a value
        log.info("answer template not used", run_id=run.run_id, reason=str(exc)[:300])
        return None


def fill(template: str, results: Mapping[str, Any], max_chars: int) -> str:
    """``template`` with each ``${id.path}`` (or bare ``$s1.path``) replaced by the text of the
    value in ``results`` (step id -> result); ``Unresolved`` when it cannot be the answer."""
    if UNMARKED.search(EMBEDDED.sub("", template)):
        raise Unresolved("the answer names a step result without its '$'")
    whole = REFERENCE.match(template)
    if whole:
        text = _text(lookup(results, whole.group(1), whole.group(2), template), template)
        if len(text) > max_chars:
            raise Unresolved(f"the filled answer is longer than {max_chars} characters")
        return text
    size = len(template)
    found = 0

    def value(match: re.Match[str]) -> str:
        nonlocal size, found
        found += 1
        text = _text(lookup(results, *embedded_reference(match), match.group(0)), match.group(0))
        size += len(text) - len(match.group(0))
        if size > max_chars:  # checked as it grows: a huge value is never copied twice
            raise Unresolved(f"the filled answer is longer than {max_chars} characters")
        return text

    filled = EMBEDDED.sub(value, template)  # one pass: inserted text is not read again
    if not found:
        raise Unresolved("the answer refers to no step result")
    return filled


# --- structured answers -------------------------------------------------------------------

_SCALARS = {"string", "integer", "number", "boolean"}
_MAX_FIELDS = 12


def answer_fields(response_schema: Mapping[str, Any] | None) -> dict[str, str]:
    """The fields a plan may fill in a structured answer (name -> "integer", "array of string",
    ...): those of an object schema whose every property is a plain value or a list of plain
    values; empty when the schema is anything else (nested objects are the responder's)."""
    if not response_schema or response_schema.get("type") != "object":
        return {}
    properties = response_schema.get("properties")
    if not isinstance(properties, Mapping) or not 0 < len(properties) <= _MAX_FIELDS:
        return {}
    fields = {}
    for name, schema in properties.items():
        kind = _kind(schema)
        if kind is None:
            return {}
        fields[str(name)] = kind
    return fields


def _kind(schema: Any) -> str | None:
    if not isinstance(schema, Mapping):
        return None
    kind = schema.get("type")
    if kind in _SCALARS:
        return str(kind)
    if kind == "array" and isinstance(schema.get("items"), Mapping):
        item = schema["items"].get("type")
        return f"array of {item}" if item in _SCALARS else None
    return None


def fill_fields(
    template: str, results: Mapping[str, Any], response_schema: dict[str, Any], max_chars: int
) -> dict[str, Any]:
    """The structured answer ``template`` (a JSON object: field -> one reference) filled from
    ``results``; ``Unresolved`` unless every field is one reference to a value of its type and
    the whole validates against ``response_schema``."""
    fields = answer_fields(response_schema)
    try:
        written = json.loads(template)
    except json.JSONDecodeError:
        raise Unresolved("the structured answer is not a JSON object") from None
    if not fields or not isinstance(written, dict) or set(written) != set(fields):
        raise Unresolved("the structured answer does not have the response schema's fields")
    answer = {}
    for name, kind in fields.items():
        said = written[name] if isinstance(written[name], str) else ""
        bare, braced = REFERENCE.match(said), EMBEDDED.fullmatch(said)
        if braced is not None:
            step_id, path = embedded_reference(braced)
        elif bare is not None:
            step_id, path = bare.group(1), bare.group(2)
        else:  # a literal would be the planner's guess
            raise Unresolved(f"field {name!r} is not one reference to a step result")
        where = f"field {name!r} ({said})"
        answer[name] = _typed(_collect(results, step_id, path, where), kind, where)
    if len(json.dumps(answer)) > max_chars:
        raise Unresolved(f"the filled answer is longer than {max_chars} characters")
    error = jsonschema.exceptions.best_match(validator(response_schema).iter_errors(answer))
    if error is not None:
        where = "/" + "/".join(str(p) for p in error.absolute_path)
        raise Unresolved(f"the filled answer does not match the response schema at {where}")
    return answer


def _collect(results: Mapping[str, Any], step_id: str, path: str, where: str) -> Any:
    """``lookup``, except that a field after a list takes that field of each of its items, and
    that an index may not pick one of several items ("$s2.groups.0.count": which group is
    judgement, the responder's; the one item of a list of one is no choice)."""
    parts = path_parts(path)
    for index, part in enumerate(parts):
        value = lookup(results, step_id, "".join(f".{p}" for p in parts[:index]), where)
        if isinstance(value, list) and part.isdigit() and len(value) > 1:
            raise Unresolved(f"{where} picks one of {len(value)} items")
        if isinstance(value, list) and not part.isdigit():
            rest = "".join(f".{p}" for p in parts[index:])
            return [lookup({"item": item}, "item", rest, where) for item in value]
    return lookup(results, step_id, path, where)


def _typed(value: Any, kind: str, where: str) -> Any:
    """``value`` as a JSON value of ``kind``; proto3 JSON writes 64-bit integers as strings."""
    if kind.startswith("array of "):
        if not isinstance(value, list):
            raise Unresolved(f"{where} is not a list")
        return [_typed(item, kind.removeprefix("array of "), where) for item in value]
    if kind == "boolean" and isinstance(value, bool):
        return value
    plain = isinstance(value, str | int | float) and not isinstance(value, bool)
    if kind == "string" and plain and str(value).strip():
        return value if isinstance(value, str) else _text(value, where)
    if kind in ("integer", "number") and not isinstance(value, bool):
        number = value
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value.strip()):
            number = float(value) if "." in value else int(value)
        if isinstance(number, int):
            return number
        if isinstance(number, float) and (kind == "number" or number.is_integer()):
            return int(number) if kind == "integer" else number
    raise Unresolved(f"{where} is not a value of type {kind}")


def _text(value: Any, written: str) -> str:
    """A present, non-empty plain value as answer text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if isinstance(value, str):
        if not value.strip():
            raise Unresolved(f"{written} is empty")
        return value
    if isinstance(value, list) and value and all(_plain(v) for v in value):
        more = f" and {len(value) - _LIST_ITEMS} more" if len(value) > _LIST_ITEMS else ""
        return ", ".join(_text(v, written) for v in value[:_LIST_ITEMS]) + more
    if value is None or value == [] or value == {}:
        raise Unresolved(f"{written} is empty")
    raise Unresolved(f"{written} is {'a list' if isinstance(value, list) else 'an object'}")


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and str(value).strip() != ""


def is_placeholder(answer: str) -> bool:
    """Whether ``answer`` is a word standing in for one ("skipped", "N/A", "unknown")."""
    return answer.strip().lower().strip(".!\"' ") in _PLACEHOLDERS or not answer.strip()


# --- side effects that did not happen -----------------------------------------------------

_HOW = {"skipped": "was skipped (a step it depended on failed)"}
# Errors after which a call may have taken effect upstream (a timeout, a dropped connection).
_UNKNOWN = frozenset({"DEADLINE_EXCEEDED", "UNAVAILABLE", "UNKNOWN", "INTERNAL", "CANCELLED"})


def undone(steps: Sequence[StepRecord], side_effects: Mapping[str, str]) -> list[str]:
    """What was asked and not done: each side-effect step (``side_effects``: tool -> its kind)
    that did not succeed, unless a later step of the same tool did; one phrase each."""
    phrases = []
    for index, record in enumerate(steps):
        # Only side-effect calls are denied or wait for a decision: those count even when
        # their tool left the catalog meanwhile.
        asked = record.error_code == "REJECTED" or record.status == "denied"
        if side_effects.get(record.tool, "none") == "none" and not asked:
            continue
        if record.status in ("succeeded", "needs_approval", "running"):
            continue
        later = steps[index + 1 :]
        if any(r.tool == record.tool and r.status == "succeeded" for r in later):
            continue
        if record.error_code == "REJECTED":
            said = record.error_message[:200]  # "rejected by NAME: reason", or the expiry
            how = f"was {said}" if said.startswith("rejected") else f"was rejected ({said})"
        elif record.status == "denied":  # by policy, or its tool is no longer allowed
            how = f"was denied ({record.error_message[:200]})"
        elif record.error_code in _UNKNOWN:  # the call went out; its effect is not known
            how = f"failed ({record.error_code}: whether it took effect is not known)"
        else:
            how = _HOW.get(record.status, f"failed ({record.error_code or 'error'})")
        phrases.append(f"{record.tool} (step {record.id}) {how}")
    return phrases
