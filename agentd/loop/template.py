"""A plan's answer written over its steps' results, and the honest end of a run whose side
effects did not happen.

A plan with steps may carry its answer as a template: ``"The phone of ${s1.name} is
${s1.phone}."``. Once every step succeeded, ``fill`` puts the referenced values in, and that is
the run's answer: a lookup costs one model call, not two. Values come from upstreams and are
untrusted text: they are inserted in one pass (a value holding ``${s2.x}`` stays as written,
nothing is evaluated), and the answer is bounded in size. Anything that does not fit (no
reference, a missing or empty value, an object where text belongs, too long) is
``Unresolved``, and the responder writes the answer instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from agentd.loop.references import (
    EMBEDDED,
    REFERENCE,
    UNMARKED,
    Unresolved,
    embedded_reference,
    lookup,
    references,
)
from agentd.loop.state import Plan, RunState, StepRecord

__all__ = ["Unresolved", "fill", "is_placeholder", "plan_answer", "undone"]

log = structlog.get_logger("agentd.loop")

# Answers that say nothing: a small model writes a field's name, a status or a shrug instead.
_PLACEHOLDERS = {
    "missing", "unknown", "null", "none", "n/a", "na", "answer", "value", "result", "skipped",
    "failed", "not done", "not available", "unavailable", "pending", "tbd", "todo", "-", "...",
    "error", "i cannot tell", "cannot tell", "i don't know", "i do not know",
}  # fmt: skip
_LIST_ITEMS = 20  # a list of plain values is joined, up to this many


def plan_answer(plan: Plan, run: RunState, max_chars: int) -> str | None:
    """The plan's answer when it can be the run's, else None (the responder writes it).

    A plan without steps answers as written. A plan's answer that refers to step results is
    filled once every step of the run succeeded; a structured answer always goes to the
    responder."""
    said = plan.direct_answer
    if not said or run.response_schema is not None:
        return None
    if not plan.steps and not references(said):
        return said
    if not run.steps or any(r.status != "succeeded" for r in run.steps):
        return None
    try:
        return fill(said, {r.id: r.result for r in run.steps}, max_chars)
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
