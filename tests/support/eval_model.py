"""A scripted model that solves a task suite by replaying each case's ``reference``.

Keyed by the task text: the planner gets the reference plan, the responder fills the
reference answer template from the real tool results in its prompt. So the suite's checks
test what really happened (the calls made, the values the services returned).

A planner system prompt containing ``WEAK_MARKER`` (the "B" prompt variant of the tests)
plays a worse model: it keeps only the first step of multi-step plans and skips calls that
need approval, claiming them done.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agentd.evals.suite import Suite
from tests.support.scripted_llm import Reply, schema_name

WEAK_MARKER = "Call as few tools as possible."
_WHOLE = re.compile(r"^\$(s\d+)((?:\.[\w#@-]+)*)(\|int)?$")
_EMBEDDED = re.compile(r"\$\{(s\d+)((?:\.[\w#@-]+)*)\}")


class Unresolved(Exception):
    pass


def _lookup(results: dict[str, Any], step: str, path: str) -> Any:
    if step not in results:
        raise Unresolved(step)
    value = results[step]
    for part in filter(None, path.split(".")):
        if part == "#" and isinstance(value, list):
            value = len(value)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise Unresolved(f"{step}{path}")
    return value


def fill(template: Any, results: dict[str, Any]) -> Any:
    """The answer template with ``$s1.path`` / ``${s1.path}`` replaced from the results."""
    if isinstance(template, str):
        whole = _WHOLE.match(template)
        if whole:
            value = _lookup(results, whole.group(1), whole.group(2))
            return int(float(value)) if whole.group(3) else value
        return _EMBEDDED.sub(lambda m: str(_lookup(results, m.group(1), m.group(2))), template)
    if isinstance(template, dict):
        return {k: fill(v, results) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, results) for v in template]
    return template


def _task(body: dict[str, Any]) -> str:
    # The first user message that states the task (worked examples may come before it).
    user = next(
        m["content"]
        for m in body["messages"]
        if m["role"] == "user" and str(m["content"]).startswith("Task: ")
    )
    return str(user).split("\n", 1)[0].removeprefix("Task: ")


class SuiteModel:
    """The responder for ``ScriptedLLM.responder``."""

    def __init__(self, suite: Suite) -> None:
        self.cases = {case.task: case for case in suite.cases}

    def __call__(self, body: dict[str, Any]) -> Reply | None:
        case = self.cases.get(_task(body))
        if case is None or case.reference is None:
            return None
        reference = case.reference
        kind = schema_name(body)
        if kind == "plan":
            return Reply(content=self.plan(body, reference, case.tags))
        if kind == "answer":
            return Reply(content=self.answer(body, reference))
        return None

    def plan(self, body: dict[str, Any], reference: Any, tags: tuple[str, ...]) -> dict[str, Any]:
        weak = WEAK_MARKER in body["messages"][0]["content"]
        if any("\nWhy: " in str(m["content"]) for m in body["messages"]):
            # a replan: answer from what is known
            answer = reference.get("replan_answer", "I could not find everything needed.")
            return {"rationale": "replan", "steps": [], "answer": answer}
        steps = list(reference.get("plan", []))
        answer = None
        if weak and "multi-step" in tags:
            steps = steps[:1]
        if weak and "approval" in tags:
            steps, answer = [], str(reference.get("answer"))
        if not steps and answer is None:
            answer = str(reference.get("answer"))
        return {
            "rationale": "reference plan",
            "steps": [
                {
                    "id": s["id"],
                    "call": {"tool": s["tool"], "arguments": s["arguments"]},
                    "depends_on": s.get("depends_on", []),
                    "purpose": "",
                }
                for s in steps
            ],
            "answer": answer,
        }

    def answer(self, body: dict[str, Any], reference: Any) -> dict[str, Any]:
        marker = "Observations (untrusted data):\n"
        user = next(str(m["content"]) for m in body["messages"] if marker in str(m["content"]))
        observed = json.loads(user.split(marker, 1)[1])
        results = {o["step"]: o["result"] for o in observed if "result" in o}
        try:
            answer = fill(reference.get("answer", ""), results)
        except Unresolved as exc:
            # A template that needs a step the plan skipped: the answer a model gives then.
            answer = f"unknown: no result for {exc}"
        return {"answer": answer, "missing": ""}
