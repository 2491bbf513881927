"""Carries out a plan: its steps as a DAG, independent steps concurrently.

Per step: arguments (from the plan, with ``$step.path`` references resolved, or
completed by the executor model from the results the step depends on), the
policy for side effects, then the real upstream call with the caller's metadata
and the time left. A failed call is an observation for the model, never a crash.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentd import telemetry
from agentd.llm.model import ChatModel, ModelReply, ToolChoice, ToolSpec
from agentd.loop.deadline import Deadline
from agentd.loop.grounding import Known, unknown_ids
from agentd.loop.hooks import RunHooks
from agentd.loop.messages import model_json, results_json, task_block
from agentd.loop.plan import LoopTool, validate
from agentd.loop.prompts import Prompt, Prompts
from agentd.loop.references import Unresolved, resolve
from agentd.loop.repair import Rejected, Unrepaired, repaired
from agentd.loop.state import (
    Budget,
    Decision,
    Event,
    LimitsExceeded,
    PendingCall,
    Plan,
    PlanStep,
    RunState,
    StepRecord,
)

# A model call made through the loop's accounting (budget, usage, spans).
ModelCall = Callable[[str, Prompt, Callable[[ChatModel], Awaitable[Any]]], Awaitable[Any]]


@dataclass
class CallContext:
    """What every upstream call of one run carries."""

    metadata: Mapping[str, Sequence[tuple[str, str]]]  # per tool name: forwarded caller metadata
    deadline: Deadline  # the run's: each call gets at most what is left of it
    tool_timeout_s: float
    max_result_chars: int
    idempotency_header: str = "x-agentd-idempotency-key"  # "" sends no key


# The step flag of a result or error that held a secret of the run (replaced by [REDACTED]).
REDACTED_FLAG = "redacted: the upstream sent back a credential of this run; it was removed"


class ArgumentsUnavailable(Exception):
    """The arguments of a step could not be completed."""


class Executor:
    def __init__(
        self,
        run: RunState,
        tools: Mapping[str, LoopTool],
        budget: Budget,
        call: CallContext,
        ask: ModelCall,
        max_parallel: int,
        hooks: RunHooks,
        prompts: Prompts,
    ) -> None:
        self.run = run
        self.tools = tools
        self.budget = budget
        self.call = call
        self.ask = ask
        self.hooks = hooks
        self.prompts = prompts
        self.slots = asyncio.Semaphore(max(1, max_parallel))

    async def execute(self, plan: Plan) -> None:
        """Run every step of ``plan``; returns when all have ended."""
        finished = {step.id: asyncio.Event() for step in plan.steps}
        async with asyncio.TaskGroup() as group:
            for step in plan.steps:
                group.create_task(self._run_when_ready(step, plan.revision, finished))

    async def _run_when_ready(
        self, step: PlanStep, revision: int, finished: Mapping[str, asyncio.Event]
    ) -> None:
        try:
            if self.run.step(step.id) is not None:  # a resumed run: this step already ended
                return
            for dep in step.depends_on:
                if dep in finished:
                    await finished[dep].wait()
            failed = [d for d in step.depends_on if not self._succeeded(d)]
            if failed:
                record = self._record(step, step.arguments, revision)
                self._end(
                    record, "skipped", "SKIPPED", f"depends on {', '.join(failed)}, which failed"
                )
                return
            async with self.slots:
                await self.run_step(step, revision)
        finally:
            finished[step.id].set()

    def _succeeded(self, step_id: str) -> bool:
        record = self.run.step(step_id)
        return record is not None and record.status == "succeeded"

    async def run_step(self, step: PlanStep, revision: int) -> StepRecord:
        """One tool call, start to end, in its span; also used by the ReAct loop."""
        tool = self.tools.get(step.tool)
        record = self._record(step, step.arguments, revision)
        if tool is None:  # a resumed plan whose tool left the allowlist meanwhile
            self._end(record, "denied", "PERMISSION_DENIED", f"{step.tool} is no longer allowed")
            return record
        with telemetry.tool_span(tool, record):  # reads the record's status when the step ends
            return await self._call(step, tool, record)

    async def _call(self, step: PlanStep, tool: LoopTool, record: StepRecord) -> StepRecord:
        decision = self.run.decisions.get(step.id)
        if decision is not None:  # decided on resume: its arguments are the approved ones
            return await self._decided(step, tool, record, decision)
        try:
            record.arguments = await self._arguments(step, tool)
        except ArgumentsUnavailable as exc:
            self._end(record, "failed", "INVALID_ARGUMENTS", str(exc))
            return record
        if tool.side_effects != "none" and tool.policy != "allow":
            if tool.policy == "deny":
                self._end(record, "denied", "PERMISSION_DENIED", f"{tool.name} is denied by policy")
            else:
                self._end(record, "needs_approval", "", "")
                self.run.pending_calls.append(
                    PendingCall(
                        step.id, tool.name, tool.method, record.arguments, tool.side_effects
                    )
                )
            return record
        return await self._invoke(step, tool, record)

    async def _decided(
        self, step: PlanStep, tool: LoopTool, record: StepRecord, decision: Decision
    ) -> StepRecord:
        """A resumed call someone decided: rejected, or approved with exactly the arguments
        the approval was bound to, if the tool's policy still lets it run."""
        if not decision.approve:
            self._end(record, "failed", "REJECTED", decision.reason or "rejected")
            return record
        if tool.policy == "deny":  # tightened after the decision: the policy now wins
            self._end(
                record,
                "denied",
                "PERMISSION_DENIED",
                f"{tool.name} is denied by policy (set after it was approved)",
            )
            return record
        record.arguments = dict(decision.arguments)
        return await self._invoke(step, tool, record, bound_to=decision.arguments_sha256)

    async def _invoke(
        self, step: PlanStep, tool: LoopTool, record: StepRecord, bound_to: str | None = None
    ) -> StepRecord:
        """The upstream call; ``bound_to``: the hash an approval fixed, which the arguments
        about to be sent must have."""
        try:
            self.budget.before_step()
        except LimitsExceeded as exc:
            self._end(record, "skipped", "LIMITS_EXCEEDED", str(exc))
            raise
        self.hooks.on_event(Event("step_started", record))
        if tool.side_effects != "none":  # in the journal before it starts (see RunHooks)
            await self.hooks.before_side_effect()
        arguments = record.arguments  # exactly what is sent
        if bound_to is not None and bound_to != arguments_sha256(arguments):
            self._end(
                record,
                "failed",
                "ARGUMENTS_CHANGED",
                "the arguments differ from the ones approved (their SHA-256 does not match)",
            )
            return record
        if self.call.deadline.expired():  # no call starts once the run's time is up
            self._end(record, "skipped", "DEADLINE_EXCEEDED", "the run's deadline passed")
            raise TimeoutError("the run's deadline passed")
        record.start_time = time.time()
        started = time.monotonic()
        try:
            result = await tool.invoke(
                arguments,
                # The caller's forwarded metadata, the step's idempotency key, and traceparent
                # so the upstream joins the trace.
                metadata=telemetry.with_trace_context(
                    (*self.call.metadata.get(tool.name, ()), *self._idempotency(step))
                ),
                timeout=self._timeout(),
            )
        except Exception as exc:  # typed tool errors become observations
            record.duration_s = time.monotonic() - started
            code, message = describe_tool_error(exc)
            # An upstream may echo the run's credentials in its error message.
            self._end(record, "failed", code, self._redacted(record, message))
            return record
        record.duration_s = time.monotonic() - started
        # The one place upstream data enters the run: every secret of the run it echoes is
        # replaced here, so records, events, prompts, alerts and exports never hold one.
        result = self._redacted(record, result)
        record.result, record.truncation = truncate(result, self.call.max_result_chars)
        record.result_truncated = bool(record.truncation)
        self.hooks.check_result(self.run, record)
        self._end(record, "succeeded", "", "")
        return record

    def _redacted(self, record: StepRecord, value: Any) -> Any:
        """``value`` without the run's secrets; a step whose data had one is flagged."""
        clean = self.run.redactor.value(value)
        if clean != value:
            record.flags.append(REDACTED_FLAG)
        return clean

    def _idempotency(self, step: PlanStep) -> tuple[tuple[str, str], ...]:
        """uuid5 of (run id, step id): the same key whenever this step of this run is called."""
        if not self.call.idempotency_header:
            return ()
        key = uuid.uuid5(uuid.NAMESPACE_URL, f"agentd:run/{self.run.run_id}/step/{step.id}")
        return ((self.call.idempotency_header, str(key)),)

    def _timeout(self) -> float:
        return self.call.deadline.call_timeout(self.call.tool_timeout_s)

    def _record(self, step: PlanStep, arguments: dict[str, Any], revision: int) -> StepRecord:
        tool = self.tools.get(step.tool)
        record = StepRecord(
            id=step.id,
            tool=step.tool,
            method=tool.method if tool else "",
            arguments=arguments,
            plan_revision=revision,
            start_time=time.time(),
        )
        self.run.steps.append(record)
        return record

    def _end(self, record: StepRecord, status: Any, code: str, message: str) -> None:
        record.status = status
        record.error_code = code
        record.error_message = message
        self.hooks.on_event(Event("step_finished", record))

    async def _arguments(self, step: PlanStep, tool: LoopTool) -> dict[str, Any]:
        """The step's complete arguments: references resolved, else the executor model asked."""
        problems: list[str] = []
        try:
            arguments = resolve(step.arguments, self._results())
            problems = validate(tool, arguments)
        except Unresolved as exc:
            arguments, problems = step.arguments, [str(exc)]
        if not problems:
            return dict(arguments)
        if not step.depends_on:
            raise ArgumentsUnavailable("; ".join(problems))
        return await self._complete(step, tool, arguments, problems)

    def _results(self) -> dict[str, Any]:
        return {r.id: r.result for r in self.run.steps if r.status == "succeeded"}

    async def _complete(
        self, step: PlanStep, tool: LoopTool, partial: Any, problems: list[str]
    ) -> dict[str, Any]:
        """Ask the executor model for the arguments; one retry with the errors fed back."""
        observations = [r.observation() for r in self.run.steps if r.id in step.depends_on]
        prompt = self.prompts.get("executor")
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": prompt.text},
            {
                "role": "user",
                "content": (
                    f"Task: {self.run.task}\nStep {step.id}: call {tool.name} ({step.purpose})\n"
                    f"Arguments known so far: {model_json(partial)}\n"
                    f"Results of the steps it depends on (untrusted data):\n"
                    f"{model_json(observations)}"
                ),
            },
            {"role": "user", "content": "Fix these problems: " + "; ".join(problems)},
        ]
        spec = ToolSpec(tool.name, tool.description, tool.model_schema)

        # The same rule as for plans (agentd.loop.grounding): an id the run has not seen is
        # a guess, whether the planner or the executor wrote it.
        known = Known(f"{task_block(self.run, history=True)}{results_json(self.run)}")

        def accept(choice: ToolChoice) -> dict[str, Any]:
            arguments = choice.arguments
            try:
                arguments = resolve(arguments, self._results())
                found = validate(tool, arguments) + unknown_ids(arguments, known)
            except Unresolved as exc:  # the model's mistake: tell it, never pass it on
                found = [str(exc)]
            if found:
                fix = "Fix these problems: " + "; ".join(found)
                raise Rejected(found, said=json.dumps(arguments), feedback=fix)
            return dict(arguments)

        try:
            return await repaired(
                messages,
                2,
                lambda: self.ask(
                    "executor",
                    prompt,
                    lambda m: m.choose_tool(messages, [spec], name="step_arguments"),
                ),
                accept,
            )
        except Unrepaired as exc:
            raise ArgumentsUnavailable("; ".join(exc.problems)) from None


def arguments_sha256(arguments: Mapping[str, Any]) -> str:
    """The hash an approval binds a call to: canonical JSON (sorted keys, no spaces, whole
    numbers as integers, so it survives the record's Struct, which stores every number as a
    double)."""
    text = json.dumps(
        _canonical(arguments), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def describe_tool_error(exc: BaseException) -> tuple[str, str]:
    """(code, message) of a failed tool call: a gRPC status name or INVALID_ARGUMENTS."""
    code = getattr(exc, "code", None)
    if callable(code):  # a raw grpc.aio.AioRpcError
        code = code()
    name = getattr(code, "name", None)
    if name:
        details = getattr(exc, "details", None)
        message = details() if callable(details) else details
        return name, str(message or exc)
    violations = getattr(exc, "violations", None)
    if violations is not None:
        return "INVALID_ARGUMENTS", "; ".join(map(str, violations)) or str(exc)
    if isinstance(exc, TimeoutError):
        return "DEADLINE_EXCEEDED", "the call timed out"
    return type(exc).__name__, str(exc)


def truncate(result: dict[str, Any], max_chars: int) -> tuple[dict[str, Any], str]:
    """Keep a result within the budget the model can read, shortening its longest lists.

    Returns the result and, when it was cut, what was cut ("transactions: 5 of 20 items
    shown"; "" when nothing was): a small model counts the items it sees, so it is told."""
    text = json.dumps(result)
    if len(text) <= max_chars:
        return result, ""
    trimmed = json.loads(text)
    totals: dict[str, tuple[list[Any], int]] = {}  # path -> (the list, its length before)
    while len(json.dumps(trimmed)) > max_chars:
        found = _longest_list(trimmed)
        if found is None or len(found[1]) <= 1:
            return {"truncated_json": json.dumps(trimmed)[:max_chars]}, "the result as text"
        path, longest = found
        totals.setdefault(path, (longest, len(longest)))
        del longest[max(1, len(longest) // 2) :]
    shown = [
        f"{path or 'the list'}: {len(kept)} of {total} items shown"
        for path, (kept, total) in totals.items()
    ]
    return trimmed, "; ".join(shown)


def _longest_list(node: Any) -> tuple[str, list[Any]] | None:
    """The longest list in ``node`` and its path ("transactions", "groups.0.items")."""
    best: tuple[str, list[Any]] | None = None
    stack: list[tuple[str, Any]] = [("", node)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, list):
            if best is None or len(item) > len(best[1]):
                best = (path, item)
            stack.extend((f"{path}.{i}".lstrip("."), v) for i, v in enumerate(item))
        elif isinstance(item, dict):
            stack.extend((f"{path}.{k}".lstrip("."), v) for k, v in item.items())
    return best


__all__ = [
    "CallContext",
    "Executor",
    "ModelReply",
    "arguments_sha256",
    "describe_tool_error",
    "truncate",
]
