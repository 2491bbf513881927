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


class BadDecision(Exception):
    """A decision that cannot be applied; the message names the field."""


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
    for i, (step_id, item) in enumerate(chosen.items()):
        call = pending[step_id]
        tool = tools.get(call.tool)
        if tool is None:
            raise BadDecision(f"decisions[{i}]: tool {call.tool} is no longer in the catalog")
        arguments = call.arguments
        if item.HasField("arguments"):
            arguments = json_format.MessageToDict(item.arguments)
            problems = validate(tool, arguments)
            if problems:
                raise BadDecision(f"decisions[{i}].arguments: {'; '.join(problems)}")
        reason = item.reason or "rejected"
        if not item.approve:
            reason = f"rejected by {principal}: {reason}"
        digest = arguments_sha256(arguments)
        run.decisions[step_id] = Decision(step_id, item.approve, arguments, reason, digest)
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
    """ApproveRun on the caller's own run ``record``."""
    request_id = request.request_id or uuid.uuid4().hex
    if len(request_id) > 128:
        await service.deny(
            context, audit, grpc.StatusCode.INVALID_ARGUMENT, "request_id: at most 128 characters"
        )
    run: RunState | None = None
    tools: dict[str, Any] = {}
    updated = record
    if record.status == agent_pb2.RUN_STATUS_NEEDS_APPROVAL:
        ttl = service.config.approvals.ttl_s
        if ttl and time.time() - waiting_since(record) > ttl:
            await expire(service, record)
            await service.deny(
                context,
                audit,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"run_id: the approval of run {record.run_id} expired after {ttl:g} s"
                " (approvals.ttl_s)",
            )
        stored = await service.store.get_request(record.run_id) or {}
        run = run_state(record, stored)
        tools = tools_of(service, run, stored)
        try:
            decide(run, tools, list(request.decisions), audit.principal, request_id)
        except BadDecision as exc:
            await service.deny(context, audit, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        updated = run_message(run)
    outcome, current = await service.store.decide(
        record.run_id, waiting_key(record), request_id, updated
    )
    status = agent_pb2.RunStatus.Name(current.status) if current else ""
    if outcome == "repeat":
        assert current is not None
        audit.outcome = "OK repeat"
        return current  # the run as it stands; nothing is decided again
    if outcome == "taken":
        await service.deny(
            context,
            audit,
            grpc.StatusCode.ABORTED,
            f"run_id: run {record.run_id} is {status}: another decision was taken first",
        )
    if outcome == "not_waiting":
        await service.deny(
            context,
            audit,
            grpc.StatusCode.FAILED_PRECONDITION,
            f"run_id: run {record.run_id} is {status}, not waiting for approval",
        )
    if outcome == "missing" or run is None:
        await service.deny(
            context, audit, grpc.StatusCode.NOT_FOUND, f"run_id: no run {record.run_id!r}"
        )
    assert run is not None
    log.info("run decided", run_id=run.run_id, decisions=len(request.decisions), by=audit.principal)
    limits = Budget.of(service.config.limits).charge(run)
    return await service.run_to_end(run, tools, limits, caller, context.time_remaining)


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
            decide(run, tools, rejections, "agentd", "expiry")
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
        await service.run_to_end(run, tools, limits, [])


async def take_over(service: AgentService, run_id: str) -> None:
    """Resume a run whose replica died (its lease is now ours) from its journal."""
    record = await service.store.get(run_id)
    if record is None or record.status != agent_pb2.RUN_STATUS_RUNNING:
        return
    stored = await service.store.get_request(run_id) or {}
    run = run_state(record, stored)
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
    if unknown and run.mode == "react":  # nothing else to finish first: wait right away
        run.finish("needs_approval", f"{', '.join(p.tool for p in unknown)}: {OUTCOME_UNKNOWN}")
        await service.store.save(run_message(run))
        return
    # The plan carries on: safe steps run, the unknown ones wait (and what depends on them),
    # and the run then stops for approval.
    limits = Budget.of(service.config.limits).charge(run)
    # No caller is waiting, and none of its credentials were stored: upstream calls that
    # need forwarded metadata fail and the model sees why.
    await service.run_to_end(run, tools, limits, [])


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
