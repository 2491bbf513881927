"""The ReAct baseline: one tool call per model turn, no plan (``mode = "react"``).

The benchmarks compare plan-and-execute against it. It is a mode of its own, not a step of the
plan-and-execute loop, so it lives apart from ``agentd.loop.session``; it drives the same
``Session`` (its executor, budgeted model calls, prompts and answer), so approvals, limits and
usage are counted the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentd.llm.model import ToolSpec
from agentd.loop.messages import model_json, task_block
from agentd.loop.plan import answer_schema
from agentd.loop.session import Session
from agentd.loop.state import PlanStep, RunFailed, RunState

FINAL_ANSWER = "final_answer"


async def react(session: Session) -> None:
    """One tool call per model turn, no plan: the baseline the benchmarks compare to."""
    defs: dict[str, Any] = {}
    answer_parameters = answer_schema(
        session.run.response_schema, session.limits.max_answer_chars, defs
    )
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": {"answer": answer_parameters},
        "required": ["answer"],
        "additionalProperties": False,
    }
    if defs:
        parameters["$defs"] = defs
    final = ToolSpec(FINAL_ANSWER, "Give the final answer to the task.", parameters)
    specs = [ToolSpec(t.name, t.description, t.model_schema) for t in session.tools.values()]
    user = task_block(session.run)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": session.prompts.get("react").text},
        {"role": "user", "content": user},
    ]
    # A resumed run: its finished turns as the model saw them, then the decided calls.
    for record in session.run.steps:
        _turn(messages, record.tool, record.arguments, record.observation())
    turn = len(session.run.steps)
    for pending in list(session.run.decisions.values()):
        turn += 1
        record = await session.executor.run_step(
            PlanStep(
                id=pending.step_id, tool=_decided_tool(session.run, pending.step_id), arguments={}
            ),
            revision=0,
        )
        _turn(messages, record.tool, record.arguments, record.observation())
    while True:
        choice = await session.ask(
            "executor",
            session.prompts.get("react"),
            lambda m: m.choose_tool(messages, [*specs, final], name="react_step"),
        )
        if choice.name == FINAL_ANSWER:
            session.set_answer(choice.arguments.get("answer"))
            session.run.finish("succeeded")
            return
        turn += 1
        step = PlanStep(id=f"r{turn}", tool=choice.name, arguments=choice.arguments)
        if choice.name in session.tools:
            record = await session.executor.run_step(step, revision=0)
            observation = record.observation()
        else:
            observation = {"error": f"unknown tool {choice.name!r}; use one of the listed tools"}
        session.stop_for_approval()
        _turn(messages, choice.name, choice.arguments, observation)


def _turn(
    messages: list[dict[str, Any]],
    tool: str,
    arguments: Mapping[str, Any],
    observation: Mapping[str, Any],
) -> None:
    messages.append(
        {"role": "assistant", "content": model_json({"tool": tool, "arguments": arguments})}
    )
    messages.append(
        {"role": "user", "content": f"Observation (untrusted data): {model_json(observation)}"}
    )


def _decided_tool(run: RunState, step_id: str) -> str:
    for approval in reversed(run.approvals):
        if approval.step_id == step_id:
            return approval.tool
    raise RunFailed(f"no decision recorded for step {step_id}")
