"""Run records as messages and back: ``RunState`` (the loop's) <-> ``RunResponse`` (stored,
returned). The way back is how a run resumes from its record: after a decision on its pending
calls, or on another replica after the one running it died.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message

from agentd.loop.state import (
    ApprovalRecord,
    Decision,
    Event,
    ModelCallRecord,
    PendingCall,
    Plan,
    PlanStep,
    RoleUsage,
    RunState,
    StepRecord,
    VerdictRecord,
)
from agentd.telemetry.redact import Redactor
from agentd.v1 import agent_pb2

# --- records to messages ------------------------------------------------------------------

_STATUS = {
    "running": agent_pb2.RUN_STATUS_RUNNING,
    "succeeded": agent_pb2.RUN_STATUS_SUCCEEDED,
    "failed": agent_pb2.RUN_STATUS_FAILED,
    "limits_exceeded": agent_pb2.RUN_STATUS_LIMITS_EXCEEDED,
    "needs_approval": agent_pb2.RUN_STATUS_NEEDS_APPROVAL,
    "blocked_by_guardrail": agent_pb2.RUN_STATUS_BLOCKED_BY_GUARDRAIL,
    "cancelled": agent_pb2.RUN_STATUS_CANCELLED,
    "deadline_exceeded": agent_pb2.RUN_STATUS_DEADLINE_EXCEEDED,
    "expired": agent_pb2.RUN_STATUS_EXPIRED,
}
_STEP_STATUS = {
    "running": agent_pb2.STEP_STATUS_RUNNING,
    "succeeded": agent_pb2.STEP_STATUS_SUCCEEDED,
    "failed": agent_pb2.STEP_STATUS_FAILED,
    "skipped": agent_pb2.STEP_STATUS_SKIPPED,
    "needs_approval": agent_pb2.STEP_STATUS_NEEDS_APPROVAL,
    "denied": agent_pb2.STEP_STATUS_DENIED,
}


def _struct(value: Mapping[str, Any] | None) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    if value:
        message.update(json.loads(json.dumps(value)))  # plain JSON types only
    return message


def plan_message(plan: Plan) -> agent_pb2.Plan:
    return agent_pb2.Plan(
        revision=plan.revision,
        steps=[
            agent_pb2.PlanStep(
                id=s.id,
                tool=s.tool,
                arguments=_struct(s.arguments),
                depends_on=s.depends_on,
                purpose=s.purpose,
            )
            for s in plan.steps
        ],
        direct_answer=plan.direct_answer or "",
        rationale=plan.rationale,
        offered_tools=plan.offered_tools,
        examples=plan.examples,
    )


def step_message(record: StepRecord) -> agent_pb2.Step:
    message = agent_pb2.Step(
        id=record.id,
        tool=record.tool,
        method=record.method,
        arguments=_struct(record.arguments),
        status=_STEP_STATUS[record.status],
        plan_revision=record.plan_revision,
        result_truncated=record.result_truncated,
        flags=record.flags,
    )
    if record.result is not None:
        message.result.CopyFrom(_struct(record.result))
    if record.error_code or record.error_message:
        message.error.code = record.error_code
        message.error.message = record.error_message
    message.start_time.FromNanoseconds(int(record.start_time * 1e9))
    message.duration.FromNanoseconds(int(record.duration_s * 1e9))
    return message


def run_message(run: RunState) -> agent_pb2.RunResponse:
    message = agent_pb2.RunResponse(
        run_id=run.run_id,
        trace_id=run.trace_id,
        status=_STATUS[run.status],
        output=run.output,
        steps=[step_message(s) for s in run.steps],
        error=run.error,
        mode=agent_pb2.LOOP_MODE_REACT if run.mode == "react" else agent_pb2.LOOP_MODE_PLAN_EXECUTE,
        conversation_id=run.conversation_id,
        user_id=run.user_id,
        task=run.task,
        principal=run.principal,
    )
    if run.output_json is not None:
        json_format.ParseDict(run.output_json, message.output_json)
    if run.plan:
        message.plan.CopyFrom(plan_message(run.plan))
    for usage in run.usage.values():
        message.usage.add(
            role=usage.role,
            model=usage.model,
            calls=usage.calls,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=run.role_cost_usd(usage.role),
        )
        message.models.append(f"{usage.role}={usage.model}")
    message.cost_usd = run.cost_usd
    for call in run.model_calls:
        item = message.model_calls.add(
            role=call.role,
            model=call.model,
            prompt=call.prompt,
            prompt_version=call.prompt_version,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cached_input_tokens=call.cached_input_tokens,
            cost_usd=call.cost_usd,
            finish_reason=call.finish_reason,
            error=call.error,
            span_id=call.span_id,
        )
        item.start_time.FromNanoseconds(int(call.start_time * 1e9))
        item.duration.FromNanoseconds(int(call.duration_s * 1e9))
    message.pending_calls.extend(pending_message(p) for p in run.pending_calls)
    if run.pending_calls:
        message.pending_call.CopyFrom(message.pending_calls[0])
    message.approvals.extend(approval_message(a) for a in run.approvals)
    message.resumes = run.resumes
    message.verdicts.extend(verdict_message(v) for v in run.verdicts)
    message.start_time.FromNanoseconds(int(run.start_time * 1e9))
    message.duration.FromNanoseconds(int(run.duration_s * 1e9))
    if run.redactor:  # a second line behind the executor's: no secret of the run is stored
        redact_message(message, run.redactor)
    return message


def redact_message(message: Message, redactor: Redactor) -> None:
    """Replace the run's secrets in every string field of ``message``, nested ones included."""
    for fd, value in message.ListFields():
        if fd.type == fd.TYPE_STRING:
            if fd.is_repeated:
                value[:] = [redactor.text(v) for v in value]
            else:
                setattr(message, fd.name, redactor.text(value))
        elif fd.type == fd.TYPE_MESSAGE:
            if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
                _redact_map(value, fd, redactor)
            elif fd.is_repeated:
                for item in value:
                    redact_message(item, redactor)
            else:
                redact_message(value, redactor)


def _redact_map(value: Any, fd: Any, redactor: Redactor) -> None:
    entry = fd.message_type.fields_by_name["value"]
    for key in list(value):
        clean = redactor.text(key) if isinstance(key, str) else key
        if entry.type == entry.TYPE_MESSAGE:
            redact_message(value[key], redactor)
            if clean != key:
                value[clean].CopyFrom(value[key])
                del value[key]
        else:
            item = value[key]
            if clean != key:
                del value[key]
            value[clean] = redactor.text(item) if isinstance(item, str) else item


def pending_message(p: PendingCall) -> agent_pb2.PendingCall:
    return agent_pb2.PendingCall(
        step_id=p.step_id,
        tool=p.tool,
        method=p.method,
        arguments=_struct(p.arguments),
        side_effects=p.side_effects,
        reason=p.reason,
    )


def approval_message(a: ApprovalRecord) -> agent_pb2.Approval:
    message = agent_pb2.Approval(
        step_id=a.step_id,
        tool=a.tool,
        approved=a.approved,
        original_arguments=_struct(a.original_arguments),
        arguments=_struct(a.arguments),
        edited=a.edited,
        arguments_sha256=a.arguments_sha256,
        reason=a.reason,
        principal=a.principal,
        request_id=a.request_id,
        plan_revision=a.plan_revision,
    )
    message.time.FromNanoseconds(int(a.time * 1e9))
    return message


_VERDICT = {
    "pass": agent_pb2.VERDICT_PASS,
    "flag": agent_pb2.VERDICT_FLAG,
    "block": agent_pb2.VERDICT_BLOCK,
}


def verdict_message(verdict: VerdictRecord) -> agent_pb2.GuardrailVerdict:
    return agent_pb2.GuardrailVerdict(
        verdict=_VERDICT[verdict.verdict],
        reasons=verdict.reasons,
        guard=verdict.guard,
        stage=verdict.stage,
    )


def event_message(run_id: str, sequence: int, event: Event) -> agent_pb2.RunEvent:
    message = agent_pb2.RunEvent(run_id=run_id, sequence=sequence)
    message.time.FromNanoseconds(int(event.time * 1e9))
    if event.kind == "plan":
        message.plan.CopyFrom(plan_message(event.payload))
    elif event.kind == "replan_reason":
        message.replan_reason = str(event.payload)
    elif event.kind == "step_started":
        message.step_started.CopyFrom(step_message(event.payload))
    elif event.kind == "step_finished":
        message.step_finished.CopyFrom(step_message(event.payload))
    elif event.kind == "verdict":
        message.verdict.CopyFrom(verdict_message(event.payload))
    elif event.kind == "answer_delta":  # "" too: the answer starts over
        message.answer_delta = str(event.payload)
    return message


def journal_event(run: RunState, sequence: int, event: Event) -> agent_pb2.RunEvent:
    """An event of ``run`` as journaled and re-streamed: copied now (the run's records change
    afterwards), the run's secrets redacted as in its stored record."""
    message = event_message(run.run_id, sequence, event)
    if run.redactor:
        redact_message(message, run.redactor)
    return message


def final_event(run_id: str, sequence: int, record: agent_pb2.RunResponse) -> agent_pb2.RunEvent:
    """The last event of a run's stream (or of one part of it, up to a wait for approval)."""
    message = agent_pb2.RunEvent(run_id=run_id, sequence=sequence, final=record)
    message.time.GetCurrentTime()
    return message


# --- messages back to records (resuming a run) ----------------------------------------------

_STATUS_OF = {v: k for k, v in _STATUS.items()}
_STEP_STATUS_OF = {v: k for k, v in _STEP_STATUS.items()}
_VERDICT_OF = {v: k for k, v in _VERDICT.items()}


def _dict(message: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(message)


def _seconds(stamp: Any) -> float:
    return float(stamp.ToNanoseconds()) / 1e9


def run_state(record: agent_pb2.RunResponse, request: Mapping[str, Any]) -> RunState:
    """The loop's state of a stored run, to resume it: its request (task, context, schema,
    scope) and what it did so far (last plan, steps, model calls, verdicts, decisions)."""
    run = RunState(
        run_id=record.run_id,
        task=record.task,
        mode="react" if record.mode == agent_pb2.LOOP_MODE_REACT else "plan_execute",
        context=dict(request.get("context") or {}),
        response_schema=request.get("response_schema"),
        conversation_id=record.conversation_id,
        user_id=str(request.get("user_id", record.user_id)),
        principal=record.principal,
        trace_id=record.trace_id,
        status=_STATUS_OF[record.status],  # type: ignore[arg-type]
        output=record.output,
        error=record.error,
        start_time=_seconds(record.start_time),
        duration_s=_seconds(record.duration),
        resumes=record.resumes,
    )
    if record.HasField("plan"):
        p = record.plan
        run.plans.append(
            Plan(
                revision=p.revision,
                steps=[
                    PlanStep(s.id, s.tool, _dict(s.arguments), list(s.depends_on), s.purpose)
                    for s in p.steps
                ],
                direct_answer=p.direct_answer or None,
                rationale=p.rationale,
                offered_tools=tuple(p.offered_tools),
                examples=tuple(p.examples),
            )
        )
    for s in record.steps:
        run.steps.append(
            StepRecord(
                id=s.id,
                tool=s.tool,
                method=s.method,
                arguments=_dict(s.arguments),
                plan_revision=s.plan_revision,
                status=_STEP_STATUS_OF[s.status],  # type: ignore[arg-type]
                result=_dict(s.result) if s.HasField("result") else None,
                error_code=s.error.code,
                error_message=s.error.message,
                start_time=_seconds(s.start_time),
                duration_s=_seconds(s.duration),
                result_truncated=s.result_truncated,
                flags=list(s.flags),
            )
        )
    for u in record.usage:
        run.usage[u.role] = RoleUsage(u.role, u.model, u.calls, u.input_tokens, u.output_tokens)
    for c in record.model_calls:
        run.model_calls.append(
            ModelCallRecord(
                role=c.role,
                model=c.model,
                prompt=c.prompt,
                prompt_version=c.prompt_version,
                start_time=_seconds(c.start_time),
                duration_s=_seconds(c.duration),
                input_tokens=c.input_tokens,
                output_tokens=c.output_tokens,
                cached_input_tokens=c.cached_input_tokens,
                cost_usd=c.cost_usd,
                finish_reason=c.finish_reason,
                error=c.error,
                span_id=c.span_id,
            )
        )
    run.verdicts = [
        VerdictRecord(_VERDICT_OF[v.verdict], list(v.reasons), v.guard, v.stage)  # type: ignore[arg-type]
        for v in record.verdicts
    ]
    run.pending_calls = [
        PendingCall(p.step_id, p.tool, p.method, _dict(p.arguments), p.side_effects, p.reason)
        for p in record.pending_calls
    ]
    run.approvals = [
        ApprovalRecord(
            step_id=a.step_id,
            tool=a.tool,
            approved=a.approved,
            original_arguments=_dict(a.original_arguments),
            arguments=_dict(a.arguments),
            edited=a.edited,
            arguments_sha256=a.arguments_sha256,
            reason=a.reason,
            principal=a.principal,
            request_id=a.request_id,
            time=_seconds(a.time),
            plan_revision=a.plan_revision,
        )
        for a in record.approvals
    ]
    run.decisions = undone_decisions(run)
    if record.HasField("output_json"):
        run.output_json = json_format.MessageToDict(record.output_json)
    return run


def undone_decisions(run: RunState) -> dict[str, Decision]:
    """The stored decisions still to apply: the latest one per step of the current plan
    revision whose step has not run yet (a takeover after an approval does not ask again)."""
    revision = run.plan.revision if run.plan else 0
    ran = {s.id for s in run.steps if s.plan_revision == revision}
    decisions: dict[str, Decision] = {}
    for a in run.approvals:  # in the order taken: a later decision of a step wins
        if a.plan_revision != revision or a.step_id in ran:
            continue
        decisions[a.step_id] = Decision(
            a.step_id,
            a.approved,
            a.arguments if a.approved else {},
            a.reason,
            a.arguments_sha256,
            a.plan_revision,
        )
    return decisions
