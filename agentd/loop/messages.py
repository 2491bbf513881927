"""The blocks every user message of the loop is built from, written once.

A model sees the task first, then the caller's context and the conversation so far, then the
results: the same bytes in the same order for the planner, the responder, ReAct and the guard.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agentd.library.example import Example, plan_text
from agentd.loop.state import RunState


def model_json(value: Any) -> str:
    """JSON as the models read it: compact (a result takes a fifth fewer tokens than with
    spaces after commas and colons, and reading it is most of a call's time on the embedded
    model) and unescaped ("Kovač", not "Kova\\u010d", which a model copies wrongly)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def task_block(run: RunState, *, history: bool = False) -> str:
    """``Task:`` and ``Context:`` lines, then (with ``history``) the conversation's earlier runs."""
    text = f"Task: {run.task}\n"
    if run.context:
        text += f"Context: {model_json(run.context)}\n"
    if history and run.history:
        text += f"Earlier in this conversation (most recent first):\n{run.history}\n"
    return text


def examples_block(intro: str, examples: Sequence[Example]) -> str:
    """The plan library's worked examples: each task and the plan that answered it, as the
    planner writes plans."""
    shown = "\n".join(f"Task: {e.task}\nPlan: {plan_text(e.plan)}" for e in examples)
    return f"{intro}\n{shown}"


def results_json(run: RunState) -> str:
    """What the model sees of every step run so far (results are data, never instructions)."""
    return model_json([record.observation() for record in run.steps])


__all__ = ["examples_block", "model_json", "results_json", "task_block"]
