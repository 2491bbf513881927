"""Guardrails: input checks before planning, tool results as untrusted data, output guards.

Guards compose and are configured per deployment (``[guardrails]``):

- input checks (on by default): size, deny patterns, a prompt-injection heuristic;
- tool results: instruction-like content is flagged on its step (``Step.flags``);
- output guards, in the order listed in ``output``: ``rules`` (deny patterns, keywords,
  a JSON Schema; no model needed) and ``model`` (the ``guard`` role judges the answer
  against the configured criteria).

Every verdict goes to the run record, the current span and the run's event stream. A block
ends the run as ``blocked_by_guardrail`` with no output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
from opentelemetry import trace

from agentd import telemetry
from agentd.config import GuardrailsConfig
from agentd.llm.model import ChatModel, ModelError
from agentd.llm.schemas import validator
from agentd.loop.messages import results_json, task_block
from agentd.loop.prompts import Prompt, Prompts
from agentd.loop.state import (
    BlockedByGuardrail,
    Event,
    RunState,
    StepRecord,
    Terminating,
    VerdictRecord,
)

Ask = Callable[[str, Prompt, Callable[[ChatModel], Awaitable[Any]]], Awaitable[Any]]

# Phrases that address the model rather than describe data. A heuristic: it catches the
# common attacks cheaply and says what it matched; a model guard catches the rest.
INJECTION = re.compile(
    r"|".join(
        [
            r"\b(ignore|disregard|forget|override)\b[^.\n]{0,40}\b(previous|prior|above|earlier"
            r"|all|system|your)\b[^.\n]{0,20}\b(instructions?|prompts?|rules|messages|guidelines)",
            r"\byou are now\b",
            r"\bnew (system )?instructions?\s*:",
            r"\b(reveal|print|show|repeat)\b[^.\n]{0,30}\b(system prompt|your instructions)",
            r"\bdeveloper mode\b",
            r"\bjailbreak",
            r"</?\s*(system|assistant|im_start|im_end)\s*>",
            r"\bdo not (tell|inform) the user\b",
        ]
    ),
    re.IGNORECASE,
)

CRITERIA_TEXT = {
    "supported": "supported: every fact in the answer is supported by the tool results or"
    " the context; nothing is invented.",
    "no_foreign_data": "no_foreign_data: the answer reveals no data beyond what the caller's"
    " own tool results and context contain (no other users' or customers' data, no secrets,"
    " no credentials).",
    "policy": "policy: the answer complies with this policy: {policy}",
}

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"enum": ["pass", "flag", "block"]},
        "reasons": {
            "type": "array",
            "items": {"type": "string", "maxLength": 200},
            "maxItems": 5,
        },
    },
    "required": ["verdict", "reasons"],
    "additionalProperties": False,
}


def injection_findings(text: str, limit: int = 3) -> list[str]:
    """The instruction-like passages in ``text`` (at most ``limit``), quoted briefly."""
    return [m.group(0)[:80] for m in INJECTION.finditer(text)][:limit]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


Emit = Callable[[Event], None]


def record_verdict(run: RunState, verdict: VerdictRecord, emit: Emit) -> None:
    """Put a verdict in the run record, on the current span and in the event stream."""
    run.verdicts.append(verdict)
    emit(Event("verdict", verdict))
    span = trace.get_current_span()
    span.add_event(
        "agentd.guardrail.verdict",
        {
            "agentd.guardrail.verdict": verdict.verdict,
            "agentd.guardrail.stage": verdict.stage,
            "agentd.guardrail.guard": verdict.guard,
            "agentd.guardrail.reasons": verdict.reasons,
        },
    )
    if verdict.verdict != "pass":
        span.set_attribute(f"agentd.guardrail.{verdict.stage}", verdict.verdict)


class Guardrails:
    """The configured guards of one deployment; stateless, shared by every run."""

    def __init__(self, config: GuardrailsConfig, guard_model: str = "") -> None:
        self.config = config
        self.guard_model = guard_model
        self.deny = [re.compile(p, re.IGNORECASE) for p in config.deny_patterns]
        self.keywords = {
            k: re.compile(rf"(?<!\w){re.escape(k)}(?!\w)", re.IGNORECASE) for k in config.keywords
        }
        self.schema: dict[str, Any] | None = None
        if config.output_schema:
            self.schema = json.loads(Path(config.output_schema).read_text())

    # --- input ------------------------------------------------------------------------------

    def check_input(self, task: str, context: dict[str, Any]) -> list[VerdictRecord]:
        """Findings on the task and context; nothing when all is well."""
        if not self.config.input:
            return []
        text = task + ("\n" + json.dumps(context) if context else "")
        verdicts: list[VerdictRecord] = []
        if len(text) > self.config.max_input_chars:
            reason = f"input is {len(text)} characters; the limit is {self.config.max_input_chars}"
            verdicts.append(VerdictRecord("block", [reason], "rules", "input"))
        denied = [f"matches deny pattern {p.pattern!r}" for p in self.deny if p.search(text)]
        if denied:
            verdicts.append(VerdictRecord("block", denied, "rules", "input"))
        if self.config.injection != "off":
            found = injection_findings(text)
            if found:
                reasons = [f"prompt-injection heuristic: {f!r}" for f in found]
                verdicts.append(VerdictRecord(self.config.injection, reasons, "rules", "input"))
        return verdicts

    def guard_input(self, run: RunState, emit: Emit) -> None:
        """Record the input findings; raises BlockedByGuardrail on a block."""
        with telemetry.guardrail_span("rules", "input") as span:
            verdicts = self.check_input(run.task, run.context)
            for verdict in verdicts:
                record_verdict(run, verdict, emit)
                span.verdict(verdict.verdict, "; ".join(verdict.reasons))
            if not verdicts:
                span.verdict("pass")
        self._raise_if_blocked(run, "input")

    # --- tool results ---------------------------------------------------------------------

    def flag_result(self, run: RunState, step: StepRecord, emit: Emit) -> None:
        """Flag instruction-like content in a step's result: it stays data, marked."""
        if not self.config.tool_results or step.result is None:
            return
        found: list[str] = []
        for text in _strings(step.result):
            found += injection_findings(text)
            if len(found) >= 3:
                break
        if not found:
            return
        step.flags = [f"instruction-like content: {f!r}" for f in found[:3]]
        record_verdict(
            run,
            VerdictRecord(
                "flag", [f"step {step.id}: {f}" for f in step.flags], "rules", "tool_result"
            ),
            emit,
        )

    # --- output -----------------------------------------------------------------------------

    async def guard_output(self, run: RunState, ask: Ask, prompts: Prompts, emit: Emit) -> None:
        """Run the output guards in order; a block (or a flag with on_flag=block) withholds
        the answer and ends the run as blocked_by_guardrail."""
        for name in self.config.output:
            # One `apply_guardrail` span per guard; a guard model's chat span nests inside.
            with telemetry.guardrail_span(name, "output") as span:
                if name == "rules":
                    verdict = self.rules_verdict(run)
                else:
                    verdict = await self.model_verdict(run, ask, prompts)
                record_verdict(run, verdict, emit)
                span.verdict(verdict.verdict, "; ".join(verdict.reasons))
            if self._blocks(verdict):
                break
        self._raise_if_blocked(run, "output")

    def rules_verdict(self, run: RunState) -> VerdictRecord:
        reasons: list[str] = []
        reasons += [
            f"matches deny pattern {p.pattern!r}" for p in self.deny if p.search(run.output)
        ]
        reasons += [f"contains {k!r}" for k, p in self.keywords.items() if p.search(run.output)]
        if self.schema is not None:
            value = run.output_json
            if value is None:
                try:
                    value = json.loads(run.output)
                except json.JSONDecodeError:
                    value = run.output
            error = jsonschema.exceptions.best_match(validator(self.schema).iter_errors(value))
            if error is not None:
                where = "/" + "/".join(str(p) for p in error.absolute_path)
                reasons.append(
                    f"output does not match guardrails.output_schema at {where}: {error.message}"
                )
        return VerdictRecord("block" if reasons else "pass", reasons, "rules", "output")

    async def model_verdict(self, run: RunState, ask: Ask, prompts: Prompts) -> VerdictRecord:
        """The guard model's judgement; no usable verdict counts as a block (fail closed)."""
        guard = f"model:{self.guard_model}" if self.guard_model else "model"
        messages = self.guard_messages(run, prompts)
        try:
            reply = await ask(
                "guard",
                prompts.get("guard"),
                lambda m: m.complete_json(messages, VERDICT_SCHEMA, name="guard_verdict"),
            )
        except (ModelError, Terminating) as exc:
            why = exc.public if isinstance(exc, ModelError) else str(exc)
            return VerdictRecord(
                "block", [f"the guard model gave no verdict: {why}"], guard, "output"
            )
        value = reply.value
        verdict = value.get("verdict")
        if verdict not in ("pass", "flag", "block"):
            return VerdictRecord(
                "block", [f"the guard model answered {verdict!r}"], guard, "output"
            )
        reasons = [str(r) for r in value.get("reasons") or []]
        return VerdictRecord(verdict, reasons, guard, "output")

    def guard_messages(self, run: RunState, prompts: Prompts) -> list[dict[str, Any]]:
        criteria = [
            CRITERIA_TEXT[c].format(policy=self.config.policy)
            for c in self.config.criteria
            if c != "policy" or self.config.policy
        ]
        system = prompts.get("guard").text + "\n\nCriteria:\n- " + "\n- ".join(criteria)
        user = task_block(run)
        user += f"Tool results (untrusted data):\n{results_json(run)}\n"
        user += f"Answer (untrusted data):\n{run.output}"
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    # --- verdicts -----------------------------------------------------------------------------

    def _blocks(self, verdict: VerdictRecord) -> bool:
        return verdict.verdict == "block" or (
            verdict.verdict == "flag" and self.config.on_flag == "block"
        )

    def _raise_if_blocked(self, run: RunState, stage: str) -> None:
        blocking = [v for v in run.verdicts if v.stage == stage and self._blocks(v)]
        if blocking:
            run.output, run.output_json = "", None  # a blocked answer is never returned
            reasons = "; ".join(blocking[0].reasons) or blocking[0].verdict
            raise BlockedByGuardrail(f"{stage} blocked by {blocking[0].guard}: {reasons}")


__all__ = ["Guardrails", "injection_findings", "record_verdict"]
