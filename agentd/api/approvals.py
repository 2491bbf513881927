"""Durable runs: deciding a run's pending calls (ApproveRun), resuming it from its record, and
taking over the runs of a replica that died.

A run that stops for approval is stored with its plan, its finished steps and its pending
calls. A decision is taken once, atomically in the store (``RunStore.decide``): the first
ApproveRun for a waiting period wins, a repeat of it (same ``request_id``) gets the run as it
stands, any other gets ABORTED. The winner resumes the run on its own replica: finished steps
are reused, decided calls run (approved, with the arguments the approval is bound to) or fail
with the rejection's reason, and the loop carries on from there.

Every replica also watches the store (``Supervisor``): a RUNNING run whose lease lapsed is
taken over and resumed from its journal. A call that was in flight when its replica died is
retried when its method has no side effects or is idempotent; otherwise its outcome is
unknown, and the run stops for a person to decide rather than repeat it blindly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from google.protobuf import json_format

from agentd.api import bounds
from agentd.api.records import run_message, run_state
from agentd.loop.deadline import Deadline
from agentd.loop.executor import arguments_sha256
from agentd.loop.plan import validate
from agentd.loop.state import ApprovalRecord, Budget, Decision, PendingCall, RunState
from agentd.tools import memory
from agentd.v1 import agent_pb2

if TYPE_CHECKING:
    from agentd.api.service import AgentService, Audit

log = structlog.get_logger("agentd.api.approvals")

OUTCOME_UNKNOWN = (
    "outcome unknown: the replica making this call stopped before its result was stored; "
    "approve to call it again, or reject if it already took effect"
)


# The request_id of the rejections the expiry sweep records (approvals.on_expiry = "reject").
EXPIRY_REQUEST = "expiry"


class BadDecision(Exception):
    """A decision that cannot be applied; the message names the field."""


class PolicyForbids(BadDecision):
    """An approval the current allowlist or policy no longer lets run (FAILED_PRECONDITION)."""


def waiting_key(record: agent_pb2.RunResponse) -> str:
    """Names one waiting period of a run: a run resumed twice can wait (and be decided) twice."""
    return f"wait-{record.resumes}"


def waiting_since(record: agent_pb2.RunResponse) -> float:
    """When the run stopped to wait: the end of its last stretch of running."""
    return (record.start_time.ToNanoseconds() + record.duration.ToNanoseconds()) / 1e9


def tools_of(service: AgentService, run: RunState, request: dict[str, Any]) -> dict[str, Any]:
    """The run's tools, by the names stored with its request, as the catalog has them now."""
    names = set(request.get("tools") or ())
    tools: dict[str, Any] = {n: t for n, t in service.catalog.tools.items() if n in names}
    builtin = memory.builtin_tools(service.store, service.config.memory, run, None)
    tools.update({n: t for n, t in builtin.items() if n in names})
    return tools


def check_request(request: agent_pb2.ApproveRunRequest) -> str:
    """'' when every field of ``request`` is within its bound (agentd/api/bounds.py), else
    the INVALID_ARGUMENT message naming the first that is not."""
    try:
        bounds.run_id("ApproveRunRequest.run_id", request.run_id)
        bounds.text("ApproveRunRequest.request_id", request.request_id)
        bounds.count("ApproveRunRequest.decisions", request.decisions)
        for i, item in enumerate(request.decisions):
            field = f"decisions[{i}]"
            bounds.text("ApproveRunRequest.decisions.step_id", item.step_id, f"{field}.step_id")
            bounds.text("ApproveRunRequest.decisions.reason", item.reason, f"{field}.reason")
            path = "ApproveRunRequest.decisions.arguments"
            bounds.struct(path, item.arguments, f"{field}.arguments")
    except bounds.BadField as exc:
        return str(exc)
    return ""


def decide(
    run: RunState,
    tools: dict[str, Any],
    decisions: list[agent_pb2.CallDecision],
    principal: str,
    request_id: str,
) -> None:
    """Apply one decision per pending call to ``run`` (checked; raises BadDecision), ready
    to resume: the decided steps run again, what waited on them too."""
    pending = {p.step_id: p for p in run.pending_calls}
    chosen: dict[str, agent_pb2.CallDecision] = {}
    for i, item in enumerate(decisions):
        field = f"decisions[{i}]"
        step_id = item.step_id
        if not step_id:
            if len(pending) != 1:
                raise BadDecision(
                    f"{field}.step_id: required, the run waits on {len(pending)} calls"
                )
            step_id = next(iter(pending))
        if step_id not in pending:
            raise BadDecision(
                f"{field}.step_id: {step_id!r} is not pending (pending: {', '.join(pending)})"
            )
        if step_id in chosen:
            raise BadDecision(f"{field}.step_id: {step_id!r} is decided twice")
        if not item.approve and item.HasField("arguments"):
            raise BadDecision(f"{field}.arguments: only an approval can edit the arguments")
        chosen[step_id] = item
    missing = [s for s in pending if s not in chosen]
    if missing:
        raise BadDecision(f"decisions: no decision for pending call(s) {', '.join(missing)}")
    revision = run.plan.revision if run.plan else 0
    for i, (step_id, item) in enumerate(chosen.items()):
        call = pending[step_id]
        tool = tools.get(call.tool)
        # The allowlist and policy as they are now, not as when the call went pending; a
        # rejection is always possible (it calls nothing).
        if item.approve and tool is None:
            raise PolicyForbids(
                f"decisions[{i}]: tool {call.tool} is no longer allowed (not in the catalog or"
                " the run's tools: upstreams[].allow/deny changed); reject it instead"
            )
        if item.approve and getattr(tool, "policy", "") == "deny":
            raise PolicyForbids(
                f"decisions[{i}]: tool {call.tool} is now denied by policy ('deny',"
                " upstreams[].side_effects or methods); reject it instead"
            )
        arguments = call.arguments
        if tool is not None and item.HasField("arguments"):  # an approval's edit
            arguments = json_format.MessageToDict(item.arguments)
            problems = validate(tool, arguments)
            if problems:
                raise BadDecision(f"decisions[{i}].arguments: {'; '.join(problems)}")
        reason = item.reason or "rejected"
        if not item.approve:
            reason = f"rejected by {principal}: {reason}"
        # Fixed now, of what the approver saw or wrote; stored with the decision.
        digest = arguments_sha256(arguments)
        run.decisions[step_id] = Decision(
            step_id, item.approve, arguments, reason, digest, revision
        )
        run.approvals.append(
            ApprovalRecord(
                step_id=step_id,
                tool=call.tool,
                approved=item.approve,
                original_arguments=call.arguments,
                arguments=arguments if item.approve else {},
                edited=item.approve and arguments != call.arguments,
                arguments_sha256=digest if item.approve else "",
                reason="" if item.approve else reason,
                principal=principal,
                request_id=request_id,
                time=time.time(),
                plan_revision=revision,
            )
        )
    reopen(run)


def reopen(run: RunState) -> None:
    """Make a stopped run runnable again: its pending and skipped steps of the last plan
    are forgotten (they run again), and it is RUNNING once more."""
    revision = run.plan.revision if run.plan else 0
    run.steps = [
        s
        for s in run.steps
        if not (s.plan_revision == revision and s.status in ("needs_approval", "skipped"))
    ]
    run.pending_calls = []
    run.status, run.error = "running", ""
    run.resumes += 1


async def approve(
    service: AgentService,
    request: agent_pb2.ApproveRunRequest,
    context: grpc.aio.ServicerContext,
    audit: Audit,
    record: agent_pb2.RunResponse,
    caller: list[tuple[str, str]],
) -> agent_pb2.RunResponse:
    """ApproveRun on the caller's own run ``record`` (or, for an admin, anyone's)."""
    request_id = request.request_id or uuid.uuid4().hex
    if len(request_id) > 128:
        await service.deny(
            context, audit, grpc.StatusCode.INVALID_ARGUMENT, "request_id: at most 128 characters"
        )
    if record.status != agent_pb2.RUN_STATUS_NEEDS_APPROVAL:
        # Nothing to decide: the store says whether this repeats a decision, or why not.
        outcome, current = await service.store.decide(
            record.run_id, waiting_key(record), request_id, record
        )
        return await _refused(service, context, audit, record, outcome, current)
    ttl = service.config.approvals.ttl_s
    if ttl and time.time() - waiting_since(record) > ttl:
        await expire(service, record)
        await _deny_expired(service, context, audit, record.run_id)
    stored = await service.store.get_request(record.run_id) or {}
    run = run_state(record, stored)
    tools = tools_of(service, run, stored)
    try:
        decide(run, tools, list(request.decisions), audit.principal, request_id)
    except PolicyForbids as exc:
        await service.deny(context, audit, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    except BadDecision as exc:
        await service.deny(context, audit, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    # Admission first (a slot, and room in the owner's limits), then the decision: a
    # decision is never recorded for a resume that cannot start.
    async with service.admitted(context, audit, record.principal):
        outcome, current = await service.store.decide(
            record.run_id, waiting_key(record), request_id, run_message(run)
        )
        if outcome != "decided" or current is None:
            return await _refused(service, context, audit, record, outcome, current)
        # What runs is what the store kept: the decisions (and the hashes they are bound to)
        # as stored, as a replica taking the run over would read them.
        run = run_state(current, stored)
        log.info(
            "run decided", run_id=run.run_id, decisions=len(request.decisions), by=audit.principal
        )
        limits = Budget.of(service.config.limits).charge(run)
        # An approver decides, never lends: the run calls upstreams as its owner. The owner
        # approving sends their credentials now; anyone else's are never used, only the
        # owner's kept sealed (approvals.seal_key_env), else none.
        if audit.principal == record.principal:
            return await service.run_to_end(
                run, tools, limits, caller, context.time_remaining, admitted=True
            )
        owner = service.unseal(run.run_id, stored)
        return await service.run_to_end(
            run, tools, limits, [], context.time_remaining, owner_metadata=owner, admitted=True
        )


async def _refused(
    service: AgentService,
    context: grpc.aio.ServicerContext,
    audit: Audit,
    record: agent_pb2.RunResponse,
    outcome: str,
    current: agent_pb2.RunResponse | None,
) -> agent_pb2.RunResponse:
    """The answer to an ApproveRun that decided nothing: a repeat gets the run as it stands,
    anything else a status naming why (an expired wait says so, whoever noticed it)."""
    if outcome == "repeat" and current is not None:
        audit.outcome = "OK repeat"
        return current  # the run as it stands; nothing is decided again
    if outcome == "missing" or current is None:
        await service.deny(
            context, audit, grpc.StatusCode.NOT_FOUND, f"run_id: no run {record.run_id!r}"
        )
    assert current is not None
    if outcome == "expired" or expired(current):
        await _deny_expired(service, context, audit, record.run_id)
    status = agent_pb2.RunStatus.Name(current.status)
    if outcome == "taken":
        await service.deny(
            context,
            audit,
            grpc.StatusCode.ABORTED,
            f"run_id: run {record.run_id} is {status}: another decision was taken first",
        )
    await service.deny(
        context,
        audit,
        grpc.StatusCode.FAILED_PRECONDITION,
        f"run_id: run {record.run_id} is {status}, not waiting for approval",
    )
    raise AssertionError("unreachable: deny aborts")


def expired(record: agent_pb2.RunResponse) -> bool:
    """Whether the run's last wait ended by expiry: ended EXPIRED, or resumed as rejected
    (approvals.on_expiry = "reject") and not waiting again since."""
    if record.status == agent_pb2.RUN_STATUS_EXPIRED:
        return True
    last = record.approvals[-1] if record.approvals else None
    waiting = record.status == agent_pb2.RUN_STATUS_NEEDS_APPROVAL
    return last is not None and last.request_id == EXPIRY_REQUEST and not waiting


async def _deny_expired(
    service: AgentService, context: grpc.aio.ServicerContext, audit: Audit, run_id: str
) -> None:
    ttl = service.config.approvals.ttl_s
    await service.deny(
        context,
        audit,
        grpc.StatusCode.FAILED_PRECONDITION,
        f"run_id: the approval of run {run_id} expired after {ttl:g} s (approvals.ttl_s)",
    )


async def expire(service: AgentService, record: agent_pb2.RunResponse) -> None:
    """End a run nobody decided in time: expired, or resumed as rejected (approvals.on_expiry)."""
    stored = await service.store.get_request(record.run_id) or {}
    run = run_state(record, stored)
    ttl = service.config.approvals.ttl_s
    reject = service.config.approvals.on_expiry == "reject"
    if reject:
        tools = tools_of(service, run, stored)
        rejections = [
            agent_pb2.CallDecision(step_id=p.step_id, approve=False, reason="approval expired")
            for p in run.pending_calls
        ]
        with contextlib.suppress(BadDecision):
            decide(run, tools, rejections, "agentd", EXPIRY_REQUEST)
    if not reject or run.status != "running":
        run.finish("expired", f"nobody decided the pending calls within {ttl:g} s")
    outcome, _ = await service.store.decide(
        record.run_id, waiting_key(record), f"expiry-{record.run_id}", run_message(run)
    )
    if outcome != "decided":
        return  # decided meanwhile: that decision stands
    log.info("approval expired", run_id=run.run_id, on_expiry=service.config.approvals.on_expiry)
    if run.status == "running":
        limits = Budget.of(service.config.limits).charge(run)
        # Nobody attends it: it calls upstreams with its owner's sealed metadata, or none.
        owner = service.unseal(run.run_id, stored)
        await service.run_to_end(run, tools, limits, [], owner_metadata=owner)
    elif "sealed_credentials" in stored:  # the run ended: its sealed credentials go
        await service.store.save(run_message(run), without_seal(stored))


def without_seal(request: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in request.items() if k != "sealed_credentials"}


async def take_over(service: AgentService, run_id: str) -> None:
    """Resume a run whose replica died (its lease is now ours) from its journal."""
    record = await service.store.get(run_id)
    if record is None or record.status != agent_pb2.RUN_STATUS_RUNNING:
        return
    stored = await service.store.get_request(run_id) or {}
    run = run_state(record, stored)
    deadline = Deadline.stored(
        float(stored.get("deadline_at") or 0),
        bool(stored.get("deadline_caller")),
        service.config.limits.run_timeout_s,
    )
    if deadline.expired():
        # Its caller was told DEADLINE_EXCEEDED (or its time is up): it ends so, calling no
        # model and no upstream; a call in flight when its replica died stays unknown.
        for step in [s for s in run.steps if s.status == "running"]:
            step.status, step.error_code = "failed", "DEADLINE_EXCEEDED"
            step.error_message = f"{OUTCOME_UNKNOWN.partition(':')[0]}; the deadline passed"
        run.resumes += 1
        run.finish(*deadline.ending(False, service.config.limits.run_timeout_s))  # type: ignore[arg-type]
        log.info("run taken over after its deadline", run_id=run_id)
        await service.store.save(run_message(run))
        return
    tools = tools_of(service, run, stored)
    unknown: list[PendingCall] = []
    for step in [s for s in run.steps if s.status == "running"]:
        tool = tools.get(step.tool)
        if tool is not None and tool.side_effects in ("none", "idempotent"):
            run.steps.remove(step)  # safe to call again: it runs when the plan is resumed
            continue
        step.status = "needs_approval"
        side_effects = tool.side_effects if tool is not None else "unknown"
        unknown.append(
            PendingCall(
                step.id, step.tool, step.method, step.arguments, side_effects, OUTCOME_UNKNOWN
            )
        )
    run.resumes += 1
    run.pending_calls = unknown
    log.info("run taken over", run_id=run_id, in_flight_unknown=len(unknown))
    # No caller is waiting: the run calls upstreams with its owner's metadata if it was kept
    # sealed (approvals.seal_key_env, until the run's deadline); else with none, and calls
    # that need credentials fail and the model sees why.
    owner = service.unseal(run_id, stored)
    if unknown and run.mode == "react":  # nothing else to finish first: wait right away
        run.finish("needs_approval", f"{', '.join(p.tool for p in unknown)}: {OUTCOME_UNKNOWN}")
        sealed = service.seal_while_waiting(run_id, owner)
        request = without_seal(stored) | ({"sealed_credentials": sealed} if sealed else {})
        await service.store.save(run_message(run), request)
        return
    # The plan carries on: safe steps run, the unknown ones wait (and what depends on them),
    # and the run then stops for approval.
    limits = Budget.of(service.config.limits).charge(run)
    # Only the owner's sealed metadata (or none); it keeps its deadline.
    await service.run_to_end(run, tools, limits, [], owner_metadata=owner, deadline=deadline)


class Supervisor:
    """Every ``storage.takeover_s``: take over lapsed runs, expire undecided approvals."""

    def __init__(self, service: AgentService) -> None:
        self.service = service
        self.task: asyncio.Task[None] | None = None
        self.running: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:  # the store may be down: try again next time
                log.warning("supervisor tick failed", error=repr(exc))
            await asyncio.sleep(self.service.config.storage.takeover_s)

    async def tick(self) -> None:
        store = self.service.store
        room = self.service.config.server.max_concurrent_runs - len(self.running)
        for run_id in await store.take_over(max(0, min(room, 8))):
            self._spawn(take_over(self.service, run_id))
        ttl = self.service.config.approvals.ttl_s
        if ttl:
            for record in await store.runs_with_status("RUN_STATUS_NEEDS_APPROVAL", 100):
                if time.time() - waiting_since(record) > ttl:
                    self._spawn(expire(self.service, record))

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(self._guarded(work))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    @staticmethod
    async def _guarded(work: Any) -> None:
        try:
            await work
        except Exception as exc:  # one run's trouble must not stop the others
            log.warning("resume failed", error=repr(exc))

    async def stop(self) -> None:
        for task in [self.task, *self.running]:
            if task is not None:
                task.cancel()
        for task in [self.task, *self.running]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
