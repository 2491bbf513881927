"""The plan library: plans of runs that went well, shown to the planner as worked examples.

Examples come from three places: a succeeded run rated positively (its owner's, shown only to
that principal's runs unless ``examples.share``: a plan's arguments may hold that user's ids
and emails), a maintainer's pick (``agentd examples add RUN_ID``: shared) and the file form
(``examples.file``: shared). For each run the ones whose tools the run has are ranked by
similarity to its task (the shortlist's BM25 over the example's task and tool names, never
schemas), and the best ``k`` above ``min_score`` are shown, within ``max_prompt_chars``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

import structlog

from agentd.config import ExamplesConfig
from agentd.library.example import SHARED, Example, new_id, plan_of_record, plan_text
from agentd.library.file import load_examples
from agentd.loop.shortlist import similarities, words
from agentd.telemetry.redact import MARKER

log = structlog.get_logger("agentd.library")

# Examples whose ranking terms are kept between runs (a few hundred bytes each).
_TERMS_KEPT = 4096
# Principals whose stored examples are kept between runs (see ``PlanLibrary.stored``).
_SCOPES_KEPT = 64


class NotAnExample(ValueError):
    """A run whose plan cannot be an example; the message says why."""


def example_of_run(record: Any, principal: str, added_by: str, note: str = "") -> Example:
    """The example a stored run (a ``RunResponse``) makes, kept for ``principal`` (SHARED: every
    run); NotAnExample when it makes none."""
    status = record.status
    from agentd.v1 import agent_pb2

    if status != agent_pb2.RUN_STATUS_SUCCEEDED:
        raise NotAnExample(f"run {record.run_id} did not succeed")
    if not record.HasField("plan") or not record.plan.steps:
        raise NotAnExample(f"run {record.run_id} called no tool: its plan has no steps")
    if record.plan.revision != 0:
        # Its record keeps only the last revision: the steps of the first are not in it.
        raise NotAnExample(f"run {record.run_id} planned {record.plan.revision + 1} times")
    ran = {s.id: s.status for s in record.steps}
    if any(ran.get(s.id) != agent_pb2.STEP_STATUS_SUCCEEDED for s in record.plan.steps):
        raise NotAnExample(f"run {record.run_id}: not every step of its plan succeeded")
    plan = plan_of_record(record.plan)
    if MARKER in record.task or MARKER in plan_text(plan):
        # A secret was pasted into the task or reached the arguments: never an example.
        raise NotAnExample(f"run {record.run_id} held a secret (redacted in its record)")
    return Example(
        id=new_id(),
        task=" ".join(record.task.split()),
        plan=plan,
        source=f"run:{record.run_id}",
        added_by=added_by,
        principal=principal,
        note=note,
    )


class PlanLibrary:
    """One daemon's plan library: the file's examples and the store's."""

    def __init__(self, config: ExamplesConfig, store: Any) -> None:
        self.config = config
        self.store = store
        # Checked when the config was loaded; read again here, at start.
        self.file = load_examples(config.file, config.max_plan_chars) if config.file else []
        self._terms: dict[tuple[str, str], Counter[str]] = {}
        self._stored: dict[tuple[str, ...] | None, tuple[tuple[float, ...], list[Example]]] = {}

    def terms(self, example: Example) -> Counter[str]:
        """What an example is ranked by: the words of its task and tool names (never schemas:
        their type words, such as "number", would match every task). Kept per example (one
        never changes) for the most recently ranked ``_TERMS_KEPT``."""
        key = (example.id, example.source)
        found = self._terms.pop(key, None)
        if found is None:
            found = Counter(words(f"{example.task} {' '.join(example.tools)}"))
        self._terms[key] = found  # most recently used last
        if len(self._terms) > _TERMS_KEPT:
            del self._terms[next(iter(self._terms))]
        return found

    async def add(self, example: Example) -> bool:
        """Keep ``example`` (False: too large, or its source is kept for that principal)."""
        if example.size > self.config.max_plan_chars:
            return False
        return bool(await self.store.add_example(example, self.config.max_per_principal))

    async def capture(self, record: Any, rated_by: str) -> Example | None:
        """A run rated positively: its plan, for its owner's runs (the caller checked the
        rating). None when it makes no example (the log says why)."""
        if not (self.config.enabled and self.config.from_feedback):
            return None
        try:
            example = example_of_run(record, record.principal, rated_by)
        except NotAnExample as exc:
            log.info("no example from feedback", run_id=record.run_id, reason=str(exc))
            return None
        return example if await self.add(example) else None

    async def for_run(self, task: str, principal: str, tools: Collection[str]) -> list[Example]:
        """The examples to show the planner of a run of ``principal`` on ``task`` with
        ``tools``; [] when the store cannot be read (the run goes on without)."""
        c = self.config
        if not c.enabled or c.k == 0:
            return []
        try:
            stored = await self.stored(None if c.share else (principal, SHARED))
        except Exception as exc:  # a run never fails for want of examples
            log.warning("plan library unavailable", error=repr(exc))
            stored = []
        return self.rank(task, [*self.file, *stored], tools)

    async def stored(self, scope: tuple[str, ...] | None) -> list[Example]:
        """The stored examples of the principals ``scope`` (None: everyone's): read again only
        when the store's stamp of them changed (another replica or `agentd examples` may have
        added or removed some); most runs pay one small query."""
        stamp = await self.store.examples_stamp(scope)
        kept = self._stored.pop(scope, None)
        if kept is None or kept[0] != stamp:
            kept = stamp, await self.store.examples(scope, self.config.max_candidates)
        self._stored[scope] = kept  # most recently used last
        if len(self._stored) > _SCOPES_KEPT:
            del self._stored[next(iter(self._stored))]
        return kept[1]

    def rank(
        self, task: str, candidates: Sequence[Example], tools: Collection[str]
    ) -> list[Example]:
        c = self.config
        own = _normal(task)
        seen: set[tuple[str, str]] = set()  # a run kept for its owner and shared: shown once
        usable = []
        for example in candidates:
            key = (example.source, _normal(example.task))
            if key in seen or not example.tools or not set(example.tools) <= set(tools):
                continue
            if c.leave_one_out and key[1] == own:
                continue
            seen.add(key)
            usable.append(example)
        scores = similarities(task, [self.terms(e) for e in usable])
        order = sorted(range(len(usable)), key=lambda i: (-scores[i], -usable[i].created_at))
        chosen: list[Example] = []
        used = 0
        for i in order:
            if scores[i] < c.min_score or len(chosen) >= c.k:
                break
            if used + usable[i].size > c.max_prompt_chars:
                continue
            chosen.append(usable[i])
            used += usable[i].size
        return chosen


def _normal(task: str) -> str:
    return " ".join(task.lower().split())


def describe(example: Example) -> dict[str, Any]:
    """One example as ``agentd examples list --json`` prints it."""
    return {
        "id": example.id,
        "task": example.task,
        "tools": list(example.tools),
        "source": example.source,
        "added_by": example.added_by,
        "principal": example.principal,
        "shared": example.principal == SHARED,
        "note": example.note,
        "created_at": example.created_at,
        "plan": json.loads(plan_text(example.plan)),
    }


__all__ = ["NotAnExample", "PlanLibrary", "describe", "example_of_run"]
