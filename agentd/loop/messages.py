"""The blocks every user message of the loop is built from, written once.

A model sees the task first, then the caller's context and the conversation so far, then the
results: the same bytes in the same order for the planner, the responder, ReAct and the guard.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from agentd.library.example import Example, plan_text
from agentd.loop.state import RunState


def task_block(run: RunState, *, history: bool = False) -> str:
    """``Task:`` and ``Context:`` lines, then (with ``history``) the conversation's earlier runs."""
    text = f"Task: {run.task}\n"
    if run.context:
        text += f"Context: {json.dumps(run.context)}\n"
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
    return json.dumps([record.observation() for record in run.steps])


__all__ = ["examples_block", "results_json", "task_block"]
