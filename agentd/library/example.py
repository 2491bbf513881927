"""One worked example of the plan library: a task and the plan that answered it.

A plan is kept in the form the planner writes (``{"steps": [{"id", "call": {"tool",
"arguments"}, "depends_on", "purpose"}], "answer": ...}``), so it is shown to the planner as
it would write it. This module is plain data: the loop, the store and the file form all read it.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The principal of an example every run may see (a maintainer's pick, the file form).
SHARED = ""


@dataclass(frozen=True)
class Example:
    id: str
    task: str
    plan: Mapping[str, Any]
    # Where it came from: "run:RUN_ID", "file:plans.yaml", "eval:CASE".
    source: str
    added_by: str
    # Whose runs may see it; SHARED: every run.
    principal: str = SHARED
    note: str = ""
    created_at: float = field(default_factory=time.time)

    @functools.cached_property
    def tools(self) -> tuple[str, ...]:
        """The tools the plan calls, in plan order, each once."""
        return tuple(dict.fromkeys(_tool(s) for s in self.plan.get("steps") or ()))

    @functools.cached_property
    def size(self) -> int:
        """Characters of the task and the plan as shown (what the bounds count)."""
        return len(self.task) + len(plan_text(self.plan))


def new_id() -> str:
    return "ex_" + uuid.uuid4().hex[:12]


def plan_text(plan: Mapping[str, Any]) -> str:
    """The plan as the planner writes it: compact JSON, keys in its order."""
    return json.dumps(plan, ensure_ascii=False, separators=(",", ":"))


def _tool(step: Any) -> str:
    call = step.get("call") if isinstance(step, Mapping) else None
    return str(call.get("tool", "")) if isinstance(call, Mapping) else ""


def _ints(value: Any) -> Any:
    """JSON numbers from a protobuf Struct (all doubles) back to integers where they are whole:
    the planner is shown ``"year":2024``, as it writes it, not ``2024.0``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def plan_of_record(plan: Any) -> dict[str, Any]:
    """A stored ``Plan`` message in the planner's form (its arguments as JSON values)."""
    from google.protobuf import json_format

    return {
        "steps": [
            {
                "id": s.id,
                "call": {
                    "tool": s.tool,
                    "arguments": _ints(json_format.MessageToDict(s.arguments)),
                },
                "depends_on": list(s.depends_on),
                "purpose": s.purpose,
            }
            for s in plan.steps
        ],
        "answer": _answer(plan.direct_answer),
    }


def _answer(said: str) -> Any:
    """A plan's answer as the planner wrote it: a structured answer's fields (kept as JSON
    text in the record) are an object again."""
    if said.startswith("{"):
        try:
            fields = json.loads(said)
        except json.JSONDecodeError:
            return said
        if isinstance(fields, dict):
            return fields
    return said or None


__all__ = ["SHARED", "Example", "new_id", "plan_of_record", "plan_text"]
