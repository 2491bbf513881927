"""One run's loop: plan, execute, (replan, execute)*, respond, and the model calls it makes.

Split from ``agentd.loop.agent`` so that module holds only what a caller meets (``Agent.run``)
and how a run ends when something stops it; the loop's own steps, the planner and responder
rounds with their repairs, the honest ending (``succeed``: no success while a requested side
effect did not happen) and the budgeted model calls live here, on ``Session``. The ReAct
baseline drives a session too, from ``agentd.loop.react``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog

from agentd import telemetry
from agentd.config import LimitsConfig
from agentd.llm.model import ChatModel, ModelError, ModelReply
from agentd.llm.schemas import NotStrict, strict_schema
from agentd.loop.answer import AnswerStream
from agentd.loop.executor import CallContext, Executor
from agentd.loop.grounding import Known, drop_unasked, invented_ids, unasked_side_effects
from agentd.loop.guardrails import Guardrails
from agentd.loop.hooks import RunHooks
from agentd.loop.messages import examples_block, results_json, task_block
from agentd.loop.plan import (
    LoopTool,
    answer_schema,
    check_plan,
    decode_plan,
    merge_repeats,
    plan_schema,
    without_bad_steps,
)
from agentd.loop.prompts import Prompt, Prompts
from agentd.loop.references import references
from agentd.loop.repair import Rejected, Unrepaired, repaired
from agentd.loop.shortlist import shortlist
from agentd.loop.state import (
    Budget,
    Event,
    LimitsExceeded,
    ModelCallRecord,
    NeedsApproval,
    Plan,
    PlanStep,
    RoleUsage,
    RunFailed,
    RunState,
)
from agentd.loop.template import answer_fields, is_placeholder, plan_answer, undone
from agentd.loop.warmup import Warmup, planner_system

_NOTHING_MISSING = {"", "none", "nothing", "n/a", "na", "null", "-"}

log = structlog.get_logger("agentd.loop")


class Session:
    """The state of one run's loop; methods read top to bottom like the loop itself."""

    def __init__(
        self,
        models: Mapping[str, ChatModel],
        limits: LimitsConfig,
        guardrails: Guardrails | None,
        run: RunState,
        tools: Mapping[str, LoopTool],
        budget: Budget,
        call: CallContext,
        hooks: RunHooks,
        prompts: Prompts,
        warmup: Warmup | None = None,
    ) -> None:
        self.models = models
        self.warmup = warmup
        self.limits = limits
        self.run = run
        self.tools = tools
        self.budget = budget
        self.prompts = prompts
        self.emit = hooks.on_event
        # The answer streams as it is decoded when someone follows the events, unless output
        # guards must judge it first: then it comes whole, once they pass (settle).
        self.answer = AnswerStream(self.emit) if hooks.stream_answer else None
        self.live = self.answer is not None and not (guardrails and guardrails.config.output)
        self.executor = Executor(
            run, tools, budget, call, self.ask, limits.max_parallel_steps, hooks, prompts
        )

    # --- plan and execute -----------------------------------------------------------------

    async def plan_execute(self) -> None:
        # A resumed run carries on with its stored plan: finished steps are not run again.
        plan = self.run.plan or await self.plan(reason=None)
        while True:
            if plan.steps:
                await self.executor.execute(plan)
            self.stop_for_approval()
            failed = [s for s in plan.steps if (r := self.run.step(s.id)) and r.status == "failed"]
            failures = "steps failed: " + ", ".join(f"{s.id} ({s.tool})" for s in failed)
            if failed and not any(r.status == "succeeded" for r in self.run.steps):
                # Nothing to answer from: plan again straight away.
                self.check_step_budget(failed)
                if self.can_replan():
                    plan = await self.plan(reason=failures)
                    continue
            filled = plan_answer(plan, self.run, self.limits.max_answer_chars)
            if filled is not None:
                # The plan's answer, as written or filled from the results: no responder.
                self.set_answer(filled)
                self.succeed()
                return
            # Like a joiner: the responder judges whether the results so far answer the task
            # (a failed extra step need not cost a replan); it names what is missing if not.
            missing = await self.respond()
            if missing and failed:
                self.check_step_budget(failed)
            if missing and self.budget.steps < self.budget.max_steps and self.can_replan():
                why = f"{failures}; " if failed else ""
                plan = await self.plan(reason=f"{why}the answer needs more: {missing}")
                continue
            self.succeed()
            return

    def not_done(self) -> list[str]:
        kinds = {name: tool.side_effects for name, tool in self.tools.items()}
        return undone(self.run.steps, kinds)

    def succeed(self) -> None:
        """End the run: succeeded, unless a side effect the plan asked for did not happen
        (failed, skipped after a failed step, rejected, denied) and no later step did it; then
        failed, with an answer that says what was not done."""
        not_done = self.not_done()
        if not not_done:
            self.run.finish("succeeded")
            return
        what = "; ".join(not_done)
        self.run.output, self.run.output_json = f"Not done: {what}.", None
        self.run.finish("failed", f"the requested side effect did not happen: {what}"[:1000])

    def stop_for_approval(self) -> None:
        if self.run.pending_calls:
            tools = ", ".join(p.tool for p in self.run.pending_calls)
            raise NeedsApproval(f"{tools}: side effects need approval")

    def check_step_budget(self, failed: Sequence[PlanStep]) -> None:
        if self.budget.steps >= self.budget.max_steps:
            raise LimitsExceeded(
                f"step budget of {self.budget.max_steps} tool calls used up, "
                f"and {len(failed)} failed"
            )

    def can_replan(self) -> bool:
        if self.budget.replans >= self.budget.max_replans:
            return False
        self.budget.replans += 1
        return True

    @telemetry.planning
    async def plan(self, reason: str | None) -> Plan:
        """Ask the planner; a plan that fails its checks goes back with the errors."""
        revision = self.run.plan.revision + 1 if self.run.plan else 0
        if reason:
            self.emit(Event("replan_reason", reason))
        left = self.budget.max_steps - self.budget.steps
        if self.limits.max_plan_steps:
            left = min(left, self.limits.max_plan_steps)
        done = [r.id for r in self.run.steps if r.status == "succeeded"]
        taken = [r.id for r in self.run.steps]
        # Empty and answerless is a way out only when something ran or was said before.
        allow_empty = bool(self.run.steps or self.run.history)
        structured = self.models["planner"].tool_call_mode == "structured"
        offered = self.offered_tools(revision)
        schema = plan_schema(
            offered,
            max_steps=left,
            done=done,
            taken=taken,
            allow_empty=allow_empty,
            union=structured,  # a root union for grammar-constrained (structured) planners only
            template=self.run.response_schema is None,
            fields=tuple(answer_fields(self.run.response_schema)),  # a structured answer's
        )
        strict = False
        if not structured:  # native endpoints (OpenAI) get strict mode where it can be had
            with contextlib.suppress(NotStrict):  # a map or open object: the plan goes lax
                schema, strict = strict_schema(schema), True
        messages = self.planner_messages(reason, offered)
        latest: Plan | None = None  # the last plan that decoded
        asked = task_block(self.run, history=True)
        known = Known(f"{asked}{results_json(self.run)}")  # read once, not per repair

        def accept(reply: ModelReply) -> Plan:
            nonlocal latest
            plan = merge_repeats(decode_plan(reply.value, revision), self.tools)
            # Filters the task does not ask for go; ids it does not contain are sent back.
            plan.dropped = tuple(drop_unasked(plan, self.tools, asked, known))
            if plan.dropped:
                log.info("unasked arguments dropped", run_id=self.run.run_id, dropped=plan.dropped)
            if offered is not self.tools:
                plan.offered_tools = tuple(offered)
            plan.examples = tuple(e.id for e in self.run.examples)
            latest = plan
            errors = check_plan(plan, self.tools, self.run.steps)
            errors += unasked_side_effects(plan, self.tools, asked, self.run.task)
            errors += invented_ids(plan, known)
            if errors:
                fix = "The plan has errors; fix them:\n- " + "\n- ".join(errors)
                raise Rejected(errors, said=reply.text, feedback=fix)
            return plan

        prompt = self.prompts.get("replan" if reason else "planner")
        attempts = self.limits.max_plan_repairs + 1
        await self.warmed("planner")
        try:
            plan = await repaired(
                messages,
                attempts,
                lambda: self.ask(
                    "planner",
                    prompt,
                    lambda m: m.complete_json(
                        messages, schema, name="plan", strict=strict, on_delta=self.direct_answer()
                    ),
                ),
                accept,
            )
        except Unrepaired as exc:
            errors = exc.problems
        else:
            self.run.plans.append(plan)
            self.emit(Event("plan", plan))
            return plan
        pruned = without_bad_steps(latest, errors) if latest is not None else None
        if pruned is not None and not check_plan(pruned, self.tools, self.run.steps):
            # The repairs failed, but the valid steps stand on their own: run those, and let
            # the responder say what is missing. (Small models keep an extra step they cannot
            # write correctly, e.g. a calculator on a string's "length".)
            self.emit(Event("replan_reason", "dropped steps: " + "; ".join(errors)[:300]))
            self.run.plans.append(pruned)
            self.emit(Event("plan", pruned))
            return pruned
        # The last problems go into the record, so a failed run says what the model got wrong.
        raise RunFailed(
            f"the planner gave no valid plan in {attempts} "
            f"attempts; last problems: {'; '.join(errors)[:500]}"
        )

    def offered_tools(self, revision: int) -> Mapping[str, LoopTool]:
        """The catalog, or the task's shortlist of it when it is larger than
        ``max_offered_tools``; each replan widens it twice over, since the tool it missed
        may rank lower."""
        k = self.limits.max_offered_tools
        return shortlist(self.tools, self.run.task, k << min(revision, 8)) if k else self.tools

    def planner_messages(
        self, reason: str | None, tools: Mapping[str, LoopTool] | None = None
    ) -> list[dict[str, Any]]:
        """Static first (instructions and catalog: the same bytes every run, so llama.cpp's
        prompt cache reuses them), then this run's task."""
        user = task_block(self.run, history=True)
        messages: list[dict[str, Any]] = [
            {
                "role": "system",
                "content": planner_system(self.prompts, self.tools if tools is None else tools),
            },
        ]
        if self.run.examples:  # after the static prefix: the cached part stays the same
            text = examples_block(self.prompts.get("examples").text, self.run.examples)
            messages.append({"role": "user", "content": text})
        fields = answer_fields(self.run.response_schema)
        if fields:  # the plan's answer object has these fields (its grammar says so too)
            user += "Answer fields: " + ", ".join(f"{k} ({v})" for k, v in fields.items())
        messages.append({"role": "user", "content": user.rstrip()})
        if reason:
            messages.append(
                {
                    "role": "user",
                    "content": f"{self.prompts.get('replan').text}\nWhy: {reason}\n"
                    f"Observations (untrusted data):\n{results_json(self.run)}",
                }
            )
        return messages

    # --- respond ----------------------------------------------------------------------------

    async def respond(self) -> str:
        """Write the answer; returns what is missing when the responder says it cannot."""
        defs: dict[str, Any] = {}
        answer = answer_schema(self.run.response_schema, self.limits.max_answer_chars, defs)
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {
                "answer": answer,
                # null when the observations suffice: small models write "none" into a
                # string that must be left empty, and that would trigger a replan
                "missing": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 200}]},
            },
            "required": ["answer", "missing"],
            "additionalProperties": False,
        }
        if defs:
            schema["$defs"] = defs
        user = task_block(self.run, history=True)
        plan = self.run.plan
        # Only a plan without steps answers by itself. Beside steps the answer is a template:
        # one that did not fill is no draft (a small model copies "${s3.fullName}", fills
        # "salary is ${s2.salary}" with a value of its own, or repeats a number it guessed
        # before any result came back).
        if plan and plan.direct_answer and not plan.steps and not references(plan.direct_answer):
            user += f"Planner's answer: {plan.direct_answer}\n"
        user += f"Observations (untrusted data):\n{results_json(self.run)}"
        prompt = self.prompts.get("responder")
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": prompt.text},
            {"role": "user", "content": user},
        ]
        said_missing = ""
        await self.warmed("responder")

        def accept(reply: ModelReply) -> tuple[Any, str]:
            nonlocal said_missing
            answer = reply.value["answer"]
            missing = str(reply.value.get("missing") or "").strip()
            if missing.lower().strip(".") not in _NOTHING_MISSING:
                said_missing = missing
            text = answer if isinstance(answer, str) else json.dumps(answer)
            if references(text):  # a step reference copied into the answer, never filled
                raise Rejected(
                    ["the answer contains a step reference"],
                    said=reply.text,
                    feedback="Write the values themselves from the observations, not "
                    '"${...}" references.',
                )
            if isinstance(answer, str) and is_placeholder(answer):
                # A small model sometimes writes the field's name instead of an answer.
                raise Rejected(
                    [f"{answer!r} is not an answer"],
                    said=reply.text,
                    feedback=f'"{answer}" is not an answer: write the answer to the task '
                    'from the observations in "answer", and what is missing (if anything) '
                    'in "missing".',
                )
            return answer, missing

        try:
            answer, missing = await repaired(
                messages,
                2,
                lambda: self.ask(
                    "responder",
                    prompt,
                    lambda m: m.complete_json(
                        messages, schema, name="answer", on_delta=self.answer_text()
                    ),
                ),
                accept,
            )
        except Unrepaired:
            if said_missing and self.run.response_schema is None:
                # The model keeps naming what is missing but writes no answer: say that,
                # plainly, rather than fail a run whose tools cannot give what the task asks.
                self.run.output = f"I cannot answer that from the tools' results: {said_missing}"
                return ""
            if self.not_done():  # the answer is what was not done (see succeed)
                return ""
            raise RunFailed("the responder gave no valid answer in 2 attempts") from None
        self.set_answer(answer)
        return "" if missing.lower().strip(".") in _NOTHING_MISSING else missing

    def answer_text(self) -> Callable[[str], None] | None:
        """The responder's ``answer`` as it is decoded: its text, or its JSON with a
        response_schema (None: not streamed)."""
        if self.answer is None or not self.live:
            return None
        return self.answer.reader(as_json=self.run.response_schema is not None)

    def direct_answer(self) -> Callable[[str], None] | None:
        """A plan's ``answer`` as it is decoded, when it is the run's answer: after empty
        ``steps``, without a response_schema (None: not streamed)."""
        if self.answer is None or not self.live or self.run.response_schema is not None:
            return None
        return self.answer.reader(after_empty="steps")

    def set_answer(self, answer: Any) -> None:
        if self.run.response_schema is not None:
            self.run.output_json = answer
            self.run.output = json.dumps(answer, ensure_ascii=False)
        else:
            self.run.output = str(answer)

    # --- model calls ------------------------------------------------------------------------

    async def warmed(self, role: str) -> None:
        """Wait while the embedded model reads this role's static prefix into its cache
        (``agentd.loop.warmup``): this call would wait behind that reading anyway."""
        if self.warmup is not None:
            await self.warmup.wait(role)

    async def ask(
        self, role: str, prompt: Prompt, call: Callable[[ChatModel], Awaitable[Any]]
    ) -> Any:
        """Make one model call of ``role`` within the budget and record it and its usage."""
        model = self.models[role]
        self.budget.before_model_call()
        usage = self.run.usage.setdefault(role, RoleUsage(role=role, model=model.model))
        usage.calls += 1
        record = ModelCallRecord(role, model.model, prompt.name, prompt.version, time.time())
        self.run.model_calls.append(record)
        started = time.monotonic()
        with telemetry.chat_span(record, model):  # reads the record when the call ends
            try:
                result = await call(model)
            except ModelError as exc:
                # Callers see a short reason; the endpoint, the status text and the model's
                # output go to the log here and to the chat span.
                record.error = f"{exc.kind}: {exc.reason}"
                log.warning("model call failed", role=role, kind=exc.kind, error=str(exc))
                if exc.reply is not None:
                    self._count(record, usage, exc.reply)
                if exc.kind in ("transport", "http"):
                    raise RunFailed(exc.public) from exc
                raise
            finally:
                record.duration_s = time.monotonic() - started
            self._count(record, usage, getattr(result, "reply", result))
        return result

    def _count(self, record: ModelCallRecord, usage: RoleUsage, reply: ModelReply) -> None:
        record.input_tokens, record.output_tokens = reply.input_tokens, reply.output_tokens
        record.cached_input_tokens = reply.cached_tokens
        record.finish_reason = reply.finish_reason or ""
        usage.input_tokens += reply.input_tokens
        usage.output_tokens += reply.output_tokens
        self.budget.after_model_call(reply.input_tokens + reply.output_tokens)
