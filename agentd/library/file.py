"""The plan library's file form (``[examples] file = "plans.yaml"``): worked examples kept in
git for review, loaded and checked when the daemon starts; ``agentd examples export`` writes it.

    examples:
      - id: vendor-phone
        task: What is the phone number of vendor ven_001?
        plan:
          steps:
            - id: s1
              call: {tool: LedgerService_GetVendor, arguments: {vendor_id: ven_001}}
              depends_on: []
              purpose: the vendor's record
          answer: null
        note: one lookup

Every error names the file, the example and the key, e.g. ``plans.yaml: example
'vendor-phone' (#1): plan.steps[0].call.tool: must be a non-empty string``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentd.library.example import SHARED, Example

_KEYS = {"id", "task", "plan", "note", "source", "added_by", "created_at"}
_PLAN_KEYS = {"steps", "answer", "rationale"}
_STEP_KEYS = {"id", "call", "depends_on", "purpose"}
_CALL_KEYS = {"tool", "arguments"}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class ExampleFileError(ValueError):
    """A plan library file agentd cannot use; one line naming the file, example and key."""


def load_examples(path: str | Path, max_plan_chars: int) -> list[Example]:
    """The examples of ``path``, checked; raises ExampleFileError."""
    import yaml

    source = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ExampleFileError(f"{source}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise ExampleFileError(f"{source}: invalid YAML: {problem}") from None
    if raw is None:
        return []
    if not isinstance(raw, dict) or set(raw) != {"examples"}:
        raise ExampleFileError(f"{source}: must be a mapping with one key, 'examples'")
    items = raw["examples"] or []
    if not isinstance(items, list):
        raise ExampleFileError(f"{source}: examples: must be a list")
    found: list[Example] = []
    seen: set[str] = set()
    for number, item in enumerate(items, start=1):
        name = item.get("id") if isinstance(item, dict) else None
        where = (
            f"{source}: example {name!r} (#{number})" if name else f"{source}: example #{number}"
        )
        try:
            example = _example(item, Path(source).name, number, max_plan_chars)
        except ValueError as exc:
            raise ExampleFileError(f"{where}: {exc}") from None
        if example.id in seen:
            raise ExampleFileError(f"{where}: id: {example.id!r} is used twice")
        seen.add(example.id)
        found.append(example)
    return found


def _example(item: Any, file: str, number: int, max_plan_chars: int) -> Example:
    if not isinstance(item, dict):
        raise ValueError("must be a mapping with task and plan")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown key (known: {', '.join(sorted(_KEYS))})")
    ident = item.get("id", f"{Path(file).stem}-{number}")
    if not isinstance(ident, str) or not _ID.match(ident):
        raise ValueError("id: must be letters, digits, '_', '.', ':' or '-' (at most 64)")
    task = item.get("task")
    if not isinstance(task, str) or not task.strip():
        raise ValueError("task: must be a non-empty string")
    for key in ("note", "source", "added_by"):
        if not isinstance(item.get(key, ""), str):
            raise ValueError(f"{key}: must be a string")
    created = item.get("created_at", 0.0)
    if not isinstance(created, int | float) or isinstance(created, bool):
        raise ValueError("created_at: must be a number (unix seconds)")
    example = Example(
        id=ident,
        task=task.strip(),
        plan=check_plan(item.get("plan")),
        source=item.get("source") or f"file:{file}",
        added_by=item.get("added_by") or "file",
        principal=SHARED,
        note=item.get("note", ""),
        created_at=float(created),
    )
    if example.size > max_plan_chars:
        raise ValueError(
            f"plan: {example.size} characters with its task, more than examples.max_plan_chars"
            f" ({max_plan_chars})"
        )
    return example


def check_plan(plan: Any) -> dict[str, Any]:
    """``plan`` in the planner's form, or ValueError naming the key (``plan.steps[0]...``)."""
    if not isinstance(plan, dict):
        raise ValueError("plan: must be a mapping with steps (and answer)")
    unknown = sorted(set(plan) - _PLAN_KEYS)
    if unknown:
        raise ValueError(f"plan.{unknown[0]}: unknown key (known: steps, answer, rationale)")
    steps = plan.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ValueError("plan.steps: must be a non-empty list of steps")
    ids: set[str] = set()
    for i, step in enumerate(steps):
        at = f"plan.steps[{i}]"
        if not isinstance(step, dict):
            raise ValueError(f"{at}: must be a mapping with id and call")
        unknown = sorted(set(step) - _STEP_KEYS)
        if unknown:
            raise ValueError(
                f"{at}.{unknown[0]}: unknown key (known: {', '.join(sorted(_STEP_KEYS))})"
            )
        if not isinstance(step.get("id"), str) or not step["id"]:
            raise ValueError(f"{at}.id: must be a non-empty string")
        call = step.get("call")
        if not isinstance(call, dict) or set(call) - _CALL_KEYS:
            raise ValueError(f"{at}.call: must be a mapping with tool and arguments")
        if not isinstance(call.get("tool"), str) or not call["tool"]:
            raise ValueError(f"{at}.call.tool: must be a non-empty string")
        if not isinstance(call.get("arguments", {}), dict):
            raise ValueError(f"{at}.call.arguments: must be a mapping")
        depends = step.get("depends_on", [])
        if not isinstance(depends, list) or any(d not in ids for d in depends):
            raise ValueError(f"{at}.depends_on: must list ids of earlier steps")
        if not isinstance(step.get("purpose", ""), str):
            raise ValueError(f"{at}.purpose: must be a string")
        ids.add(step["id"])
    answer = plan.get("answer")
    if answer is not None and not isinstance(answer, str):
        raise ValueError("plan.answer: must be a string or null")
    return {
        "steps": [
            {
                "id": s["id"],
                "call": {"tool": s["call"]["tool"], "arguments": s["call"].get("arguments", {})},
                "depends_on": list(s.get("depends_on", [])),
                "purpose": s.get("purpose", ""),
            }
            for s in steps
        ],
        "answer": answer,
    }


def dump_examples(examples: Sequence[Example]) -> str:
    """The file form of ``examples`` (what ``load_examples`` reads back)."""
    import yaml

    items: list[Mapping[str, Any]] = [
        {
            "id": e.id,
            "task": e.task,
            "plan": dict(e.plan),
            **({"note": e.note} if e.note else {}),
            "source": e.source,
            "added_by": e.added_by,
            "created_at": round(e.created_at, 3),
        }
        for e in examples
    ]
    return str(yaml.safe_dump({"examples": items}, sort_keys=False, allow_unicode=True))


__all__ = ["ExampleFileError", "check_plan", "dump_examples", "load_examples"]
