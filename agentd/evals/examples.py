"""``agentd eval run --examples-from PRIOR.json``: the plan library measured honestly.

The plans of the passing runs of an earlier evaluation of the same suite become the plan
library's file of examples, one per case (its task is the case's task). The evaluation then
runs each config twice: without the library, and with it leave-one-out (``examples.
leave_one_out``: an example whose task is the run's own task is never shown), so no case is
ever offered its own plan.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from agentd.evals.report import FORMAT
from agentd.evals.suite import Suite, SuiteError
from agentd.library.example import Example
from agentd.library.file import dump_examples


def examples_of(doc: Any, suite: Suite, source: str) -> list[Example]:
    """The examples the passing runs of ``doc`` (an ``eval run --json`` document of ``suite``)
    give: the first passing run per case whose single plan had steps."""
    if not isinstance(doc, Mapping) or doc.get("format") != FORMAT:
        raise SuiteError(f"{source}: not an agentd eval result (format {FORMAT})")
    name = (doc.get("suite") or {}).get("name")
    if name != suite.name:
        raise SuiteError(f"{source}: an evaluation of suite {name!r}, not of {suite.name!r}")
    tasks = {case.id: case.task for case in suite.cases}
    found: dict[str, Example] = {}
    for result in doc.get("results") or []:
        case = result.get("case")
        plan = result.get("plan") or {}
        if (
            not result.get("passed")
            or case not in tasks
            or case in found
            or result.get("plan_revision", 0) != 0
            or not plan.get("steps")
        ):
            continue
        found[case] = Example(
            id="eval-" + re.sub(r"[^A-Za-z0-9_.:-]", "-", case)[:59],
            task=tasks[case],
            plan={"steps": plan["steps"], "answer": plan.get("answer")},
            source=f"eval:{case}",
            added_by="eval",
        )
    return list(found.values())


def examples_file(doc: Any, suite: Suite, source: str) -> tuple[str, int]:
    """The file form of ``examples_of`` and how many examples it holds."""
    examples = examples_of(doc, suite, source)
    return dump_examples(examples), len(examples)


__all__ = ["examples_file", "examples_of"]
