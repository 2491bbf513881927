"""Durable runs: deciding a run's pending calls (ApproveRun), resuming it from its record, and
taking over the runs of a replica that died.

A run that stops for approval is stored with its plan, its finished steps and its pending
calls. A decision is taken once, atomically in the store (``RunStore.decide``): the first
ApproveRun for a waiting period wins, a repeat of it (same ``request_id``) gets the run as it
stands, any other gets AlreadyDecided. The winner resumes the run on its own replica: finished steps
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
import copy
import time
import uuid
from collections.abc import Sequence
from typing import Any

import structlog

from agentd.loop.deadline import Deadline
from agentd.loop.executor import arguments_sha256
from agentd.loop.plan import validate
from agentd.loop.state import ApprovalRecord, Budget, Decision, PendingCall, RunState
from agentd.runs.errors import (
    AlreadyDecided,
    ApprovalExpired,
    InvalidField,
    NotWaiting,
    PolicyForbids,
    RunNotFound,
)
from agentd.runs.runner import Metadata, Runner, TimeLeft
from agentd.runs.spec import CallDecision, Principal
from agentd.store.runs import Stored, without_seal
from agentd.tools import memory

log = structlog.get_logger("agentd.runs.approvals")

OUTCOME_UNKNOWN = (
    "outcome unknown: the replica making this call stopped before its result was stored; "
    "approve to call it again, or reject if it already took effect"
)


# The request_id of the rejections the expiry sweep records (approvals.on_expiry = "reject").
EXPIRY_REQUEST = "expiry"


class BadDecision(InvalidField):
    """A decision that cannot be applied; the message names the field."""


def waiting_key(run: RunState) -> str:
    """Names one waiting period of a run: a run resumed twice can wait (and be decided) twice."""
    return f"wait-{run.resumes}"


def waiting_since(run: RunState) -> float:
    """When the run stopped to wait: the end of its last stretch of running."""
    return run.start_time + run.duration_s


def tools_of(runs: Runner, run: RunState, request: dict[str, Any]) -> dict[str, Any]:
    """The run's tools, by the names stored with its request, as the catalog has them now."""
    names = set(request.get("tools") or ())
    tools: dict[str, Any] = {n: t for n, t in runs.catalog.tools.items() if n in names}
    builtin = memory.builtin_tools(runs.store, runs.config.memory, run, None)
    tools.update({n: t for n, t in builtin.items() if n in names})
    return tools


def decide(
    run: RunState,
    tools: dict[str, Any],
    decisions: Sequence[CallDecision],
    principal: str,
    request_id: str,
) -> None:
    """Apply one decision per pending call to ``run`` (checked; raises BadDecision), ready
    to resume: the decided steps run again, what waited on them too."""
    pending = {p.step_id: p for p in run.pending_calls}
    chosen: dict[str, CallDecision] = {}
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
        if not item.approve and item.arguments is not None:
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
        if tool is not None and item.arguments is not None:  # an approval's edit
            arguments = item.arguments
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
    runs: Runner,
    stored: Stored,
    principal: Principal,
    decisions: Sequence[CallDecision],
    request_id: str,
    caller: Metadata,
    time_left: TimeLeft,
) -> tuple[Stored, bool]:
    """Decide the pending calls of ``stored`` (the caller's run, or for an admin anyone's) and
    resume it; the run at its end, and whether this only repeated an earlier decision."""
    record = stored.run
    request_id = request_id or uuid.uuid4().hex
    if len(request_id) > 128:
        raise InvalidField("request_id: at most 128 characters")
    if record.status != "needs_approval":
        # Nothing to decide: the store says whether this repeats a decision, or why not.
        outcome, current = await runs.records.decide(
            record.run_id, waiting_key(record), request_id, record, stored.request
        )
        return _refused(runs, record, outcome, current), True
    ttl = runs.config.approvals.ttl_s
    if ttl and time.time() - waiting_since(record) > ttl:
        await expire(runs, stored)
        raise _expired(runs, record.run_id)
    request = stored.request
    run = copy.deepcopy(record)
    tools = tools_of(runs, run, request)
    decide(run, tools, decisions, principal.id, request_id)
    # Admission first (a slot, and room in the owner's limits), then the decision: a
    # decision is never recorded for a resume that cannot start.
    async with runs.admission.resuming(record.principal):
        outcome, current = await runs.records.decide(
            record.run_id, waiting_key(record), request_id, run, request
        )
        if outcome != "decided" or current is None:
            return _refused(runs, record, outcome, current), True
        # What runs is what the store kept: the decisions (and the hashes they are bound to)
        # as stored, as a replica taking the run over would read them.
        run = current.run
        log.info("run decided", run_id=run.run_id, decisions=len(decisions), by=principal.id)
        limits = Budget.of(runs.config.limits).charge(run)
        # An approver decides, never lends: the run calls upstreams as its owner. The owner
        # approving sends their credentials now; anyone else's are never used, only the
        # owner's kept sealed (approvals.seal_key_env), else none.
        if principal.id == record.principal:
            done = await runs.run_to_end(run, tools, limits, caller, time_left, admitted=True)
            return done, False
        owner = runs.unseal(run.run_id, request)
        done = await runs.run_to_end(
            run, tools, limits, [], time_left, owner_metadata=owner, admitted=True
        )
        return done, False


def _refused(runs: Runner, record: RunState, outcome: str, current: Stored | None) -> Stored:
    """The answer to an ApproveRun that decided nothing: a repeat gets the run as it stands,
    anything else an error naming why (an expired wait says so, whoever noticed it)."""
    if outcome == "repeat" and current is not None:
        return current  # the run as it stands; nothing is decided again
    if outcome == "missing" or current is None:
        raise RunNotFound(f"run_id: no run {record.run_id!r}", run_id=record.run_id)
    if outcome == "expired" or expired(current.run):
        raise _expired(runs, record.run_id)
    status = current.status_name
    if outcome == "taken":
        raise AlreadyDecided(
            f"run_id: run {record.run_id} is {status}: another decision was taken first",
            run_id=record.run_id,
        )
    raise NotWaiting(
        f"run_id: run {record.run_id} is {status}, not waiting for approval",
        run_id=record.run_id,
    )


def expired(run: RunState) -> bool:
    """Whether the run's last wait ended by expiry: ended EXPIRED, or resumed as rejected
    (approvals.on_expiry = "reject") and not waiting again since."""
    if run.status == "expired":
        return True
    last = run.approvals[-1] if run.approvals else None
    waiting = run.status == "needs_approval"
    return last is not None and last.request_id == EXPIRY_REQUEST and not waiting


def _expired(runs: Runner, run_id: str) -> ApprovalExpired:
    ttl = runs.config.approvals.ttl_s
    return ApprovalExpired(
        f"run_id: the approval of run {run_id} expired after {ttl:g} s (approvals.ttl_s)",
        run_id=run_id,
    )


async def expire(runs: Runner, waiting: Stored) -> None:
    """End a run nobody decided in time: expired, or resumed as rejected (approvals.on_expiry).
    ``waiting``: the run as found waiting (its request is read here)."""
    record = waiting.run
    stored = await runs.records.request(record.run_id)
    run = runs.records.state(waiting, stored)
    ttl = runs.config.approvals.ttl_s
    reject = runs.config.approvals.on_expiry == "reject"
    if reject:
        tools = tools_of(runs, run, stored)
        rejections = [
            CallDecision(step_id=p.step_id, approve=False, reason="approval expired")
            for p in run.pending_calls
        ]
        with contextlib.suppress(BadDecision, PolicyForbids):
            decide(run, tools, rejections, "agentd", EXPIRY_REQUEST)
    if not reject or run.status != "running":
        run.finish("expired", f"nobody decided the pending calls within {ttl:g} s")
    outcome, _ = await runs.records.decide(
        record.run_id, waiting_key(record), f"expiry-{record.run_id}", run, stored
    )
    if outcome != "decided":
        return  # decided meanwhile: that decision stands
    log.info("approval expired", run_id=run.run_id, on_expiry=runs.config.approvals.on_expiry)
    if run.status == "running":
        limits = Budget.of(runs.config.limits).charge(run)
        # Nobody attends it: it calls upstreams with its owner's sealed metadata, or none.
        owner = runs.unseal(run.run_id, stored)
        await runs.run_to_end(run, tools, limits, [], owner_metadata=owner)
    elif "sealed_credentials" in stored:  # the run ended: saved again, its seal goes
        await runs.records.save(run, stored)


async def take_over(runs: Runner, run_id: str) -> None:
    """Resume a run whose replica died (its lease is now ours) from its journal."""
    found = await runs.records.get(run_id)
    if found is None or found.run.status != "running":
        return
    stored = found.request
    run = found.run
    deadline = Deadline.stored(
        float(stored.get("deadline_at") or 0),
        bool(stored.get("deadline_caller")),
        runs.config.limits.run_timeout_s,
    )
    if deadline.expired():
        # Its caller was told DEADLINE_EXCEEDED (or its time is up): it ends so, calling no
        # model and no upstream; a call in flight when its replica died stays unknown.
        for step in [s for s in run.steps if s.status == "running"]:
            step.status, step.error_code = "failed", "DEADLINE_EXCEEDED"
            step.error_message = f"{OUTCOME_UNKNOWN.partition(':')[0]}; the deadline passed"
        run.resumes += 1
        run.finish(*deadline.ending(False, runs.config.limits.run_timeout_s))  # type: ignore[arg-type]
        log.info("run taken over after its deadline", run_id=run_id)
        await runs.records.save(run, stored)  # ended: the save drops its sealed credentials
        return
    tools = tools_of(runs, run, stored)
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
    owner = runs.unseal(run_id, stored)
    if unknown and run.mode == "react":  # nothing else to finish first: wait right away
        run.finish("needs_approval", f"{', '.join(p.tool for p in unknown)}: {OUTCOME_UNKNOWN}")
        sealed = runs.seal_while_waiting(run_id, owner)
        request = without_seal(stored) | ({"sealed_credentials": sealed} if sealed else {})
        await runs.records.save(run, request)
        return
    # The plan carries on: safe steps run, the unknown ones wait (and what depends on them),
    # and the run then stops for approval.
    limits = Budget.of(runs.config.limits).charge(run)
    # Only the owner's sealed metadata (or none); it keeps its deadline.
    await runs.run_to_end(run, tools, limits, [], owner_metadata=owner, deadline=deadline)


class Supervisor:
    """Every ``storage.takeover_s``: take over lapsed runs, expire undecided approvals."""

    def __init__(self, runs: Runner) -> None:
        self.runs = runs
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
            await asyncio.sleep(self.runs.config.storage.takeover_s)

    async def tick(self) -> None:
        runs = self.runs
        room = runs.config.server.max_concurrent_runs - len(self.running)
        for run_id in await runs.store.take_over(max(0, min(room, 8))):
            self._spawn(take_over(runs, run_id))
        ttl = runs.config.approvals.ttl_s
        if ttl:
            for waiting in await runs.records.waiting(100):
                if time.time() - waiting_since(waiting.run) > ttl:
                    self._spawn(expire(runs, waiting))

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
