"""The data of one run as the loop builds it, and the exceptions that steer the loop.

Control flow follows mini-swe-agent: recoverable problems (a bad plan, a failed
tool call) become observations for the model; terminating ones end the run with
a defined status and whatever results exist so far.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from agentd.config import LimitsConfig
from agentd.library.example import Example
from agentd.telemetry.redact import NONE, Redactor

RunStatus = Literal[
    "running",
    "succeeded",
    "failed",
    "limits_exceeded",
    "needs_approval",
    "blocked_by_guardrail",
    "cancelled",
    "deadline_exceeded",
    "expired",
]
StepStatus = Literal["running", "succeeded", "failed", "skipped", "needs_approval", "denied"]


# --- exceptions -------------------------------------------------------------------------


class Terminating(Exception):
    """Ends the run with ``status``; the message becomes the run's ``error``."""

    status: RunStatus = "failed"


class LimitsExceeded(Terminating):
    status = "limits_exceeded"


class NeedsApproval(Terminating):
    status = "needs_approval"


class RunFailed(Terminating):
    status = "failed"


class BlockedByGuardrail(Terminating):
    """A guardrail withheld the input or the answer; the run ends with no output."""

    status = "blocked_by_guardrail"


# --- records ----------------------------------------------------------------------------

# Error codes of steps that failed before their call was made.
_NOT_CALLED = frozenset({"INVALID_ARGUMENTS", "REJECTED", "LIMITS_EXCEEDED", "ARGUMENTS_CHANGED"})


@dataclass
class PlanStep:
    id: str
    tool: str
    arguments: dict[str, Any]
    depends_on: list[str] = field(default_factory=list)
    purpose: str = ""


@dataclass
class Plan:
    revision: int
    steps: list[PlanStep]
    direct_answer: str | None = None
    rationale: str = ""
    # The tools the planner was shown, when the catalog was shortlisted (empty: all of it).
    offered_tools: tuple[str, ...] = ()
    # The plan library's examples the planner was shown (their ids).
    examples: tuple[str, ...] = ()
    # Arguments taken out because the task does not ask for them (agentd.loop.grounding).
    dropped: tuple[str, ...] = ()


@dataclass
class StepRecord:
    id: str
    tool: str
    method: str
    arguments: dict[str, Any]
    plan_revision: int
    status: StepStatus = "running"
    result: dict[str, Any] | None = None
    error_code: str = ""
    error_message: str = ""
    start_time: float = 0.0  # unix seconds
    duration_s: float = 0.0
    result_truncated: bool = False
    truncation: str = ""  # what was cut, for the model ("transactions: 5 of 20 items shown")
    # Guardrail findings on the result, e.g. "instruction-like content: ignore previous ...".
    flags: list[str] = field(default_factory=list)

    @property
    def called(self) -> bool:
        """Whether the upstream was called (or may have been: a call in flight)."""
        if self.status in ("succeeded", "running"):
            return True
        return self.status == "failed" and self.error_code not in _NOT_CALLED

    def observation(self) -> dict[str, Any]:
        """What the model sees of this step (results are data, never instructions)."""
        seen: dict[str, Any] = {"step": self.id, "tool": self.tool, "status": self.status}
        if self.result_truncated:  # a small model counts what it sees: say what it does not
            seen["note"] = (
                f"result cut to the result budget ({self.truncation or 'lists shortened'}); "
                "a count or total is in the result's own fields, not the items shown"
            )
        if self.result is not None:
            # Plain fields (totalSize, a status) before lists: a small model reads the first
            # numbers it meets, and a count after twenty listed items is read as the twentieth.
            plain = {k: v for k, v in self.result.items() if not isinstance(v, list | dict)}
            seen["result"] = {**plain, **self.result}
        if self.error_message:
            seen["error"] = f"{self.error_code}: {self.error_message}"
        if self.flags:
            seen["flags"] = self.flags  # warn the model: instruction-like text, still only data
        return seen


@dataclass
class RoleUsage:
    role: str
    model: str
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class ModelCallRecord:
    """One model call, for the run record and ``agentd trace``."""

    role: str
    model: str
    prompt: str
    prompt_version: str
    start_time: float  # unix seconds
    duration_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0  # of input_tokens, read from the endpoint's prompt cache
    cost_usd: float = 0.0
    finish_reason: str = ""
    error: str = ""
    span_id: str = ""


@dataclass
class PendingCall:
    step_id: str
    tool: str
    method: str
    arguments: dict[str, Any]
    side_effects: str
    # Why it waits when not for its policy, e.g. "outcome unknown" after a replica died.
    reason: str = ""


@dataclass
class Decision:
    """What a person decided about one pending call, applied when the run resumes."""

    step_id: str
    approve: bool
    arguments: dict[str, Any]  # what runs when approved: the pending arguments or the edit
    reason: str = ""  # a rejection's reason, which the model sees as the call's error
    # Fixed when the decision is taken (of the arguments the approver saw or wrote) and stored
    # with it: the executor refuses to send arguments whose hash differs.
    arguments_sha256: str = ""
    plan_revision: int = 0  # of the decided step: with step_id, the call it applies to


@dataclass
class ApprovalRecord:
    """A decision as the run record keeps it, for audit: the original and the edit both."""

    step_id: str
    tool: str
    approved: bool
    original_arguments: dict[str, Any]
    arguments: dict[str, Any]
    edited: bool
    arguments_sha256: str
    reason: str
    principal: str
    request_id: str
    time: float
    plan_revision: int = 0


@dataclass
class VerdictRecord:
    """A guardrail's judgement: ``verdict`` is pass, flag or block; ``stage`` input,
    tool_result or output; ``guard`` which guard decided ("rules", "model:NAME")."""

    verdict: Literal["pass", "flag", "block"]
    reasons: list[str]
    guard: str
    stage: str


@dataclass
class Event:
    """One RunStream event: ``kind`` is plan, replan_reason, step_started, step_finished,
    verdict or answer_delta (a piece of the answer as it is decoded; "" starts it over)."""

    kind: str
    payload: Any
    time: float = field(default_factory=time.time)
    sequence: int = 0  # the run's event number, given by the run's journal (0: not numbered)


@dataclass
class RunState:
    run_id: str
    task: str
    mode: Literal["plan_execute", "react"]
    context: dict[str, Any] = field(default_factory=dict)
    response_schema: dict[str, Any] | None = None
    conversation_id: str = ""
    user_id: str = ""  # whose memory and history the run uses ("" : none)
    principal: str = ""  # who started it (authenticated); owns the record
    trace_id: str = ""
    status: RunStatus = "running"
    output: str = ""
    output_json: Any = None
    error: str = ""
    plans: list[Plan] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    usage: dict[str, RoleUsage] = field(default_factory=dict)
    # The calls waiting for a decision (needs_approval), in plan order.
    pending_calls: list[PendingCall] = field(default_factory=list)
    approvals: list[ApprovalRecord] = field(default_factory=list)
    # Decisions to apply in this resume, by step id; stored as ``approvals`` (with their plan
    # revision), from which a resumed record rebuilds the ones not applied yet.
    decisions: dict[str, Decision] = field(default_factory=dict)
    # The owner's forwarded metadata, sealed (agentd.runs.sealing; never in clear), stored with
    # the request while the run waits or may be taken over; None: nothing kept.
    sealed_credentials: dict[str, Any] | None = None
    resumes: int = 0
    model_calls: list[ModelCallRecord] = field(default_factory=list)
    verdicts: list[VerdictRecord] = field(default_factory=list)
    # Bounded summary of earlier runs of the same conversation, for planner and responder.
    history: str = ""
    # Worked examples from the plan library (agentd.library), shown to the planner.
    examples: list[Example] = field(default_factory=list)
    start_time: float = field(default_factory=time.time)
    duration_s: float = 0.0
    # When the run must have ended (unix seconds; 0: not yet set), and whether the caller's
    # deadline set it (else limits.run_timeout_s). Stored with the request.
    deadline_at: float = 0.0
    deadline_caller: bool = False
    # The run's secrets (credentials, forwarded metadata, configured secrets): what comes
    # back from an upstream passes through it before it enters the run. Never stored.
    redactor: Redactor = field(default=NONE, repr=False, compare=False)

    @property
    def plan(self) -> Plan | None:
        return self.plans[-1] if self.plans else None

    @property
    def pending_call(self) -> PendingCall | None:
        return self.pending_calls[0] if self.pending_calls else None

    @property
    def cost_usd(self) -> float:
        """Every model call's cost (priced when the call ends, see telemetry.chat_span)."""
        return sum(call.cost_usd for call in self.model_calls)

    def role_cost_usd(self, role: str) -> float:
        return sum(call.cost_usd for call in self.model_calls if call.role == role)

    def step(self, step_id: str) -> StepRecord | None:
        for record in self.steps:
            if record.id == step_id:
                return record
        return None

    def finish(self, status: RunStatus, error: str = "") -> None:
        self.status = status
        self.error = error
        self.duration_s = time.time() - self.start_time


@dataclass
class Budget:
    """The hard limits of one run (the server's, lowered by the request where it asks) and what
    the run has used of them; exceeding one raises LimitsExceeded."""

    max_steps: int
    max_replans: int
    max_model_calls: int
    max_tokens: int
    steps: int = 0
    replans: int = 0
    model_calls: int = 0
    tokens: int = 0

    @classmethod
    def of(cls, config: LimitsConfig, **lowered: int | None) -> Budget:
        limits = {
            "max_steps": config.max_steps,
            "max_replans": config.max_replans,
            "max_model_calls": config.max_model_calls,
            "max_tokens": config.max_tokens,
        }
        for key, value in lowered.items():
            if value is not None:
                limits[key] = min(limits[key], value)
        return cls(**limits)

    def charge(self, run: RunState) -> Budget:
        """Count what a resumed run used before it stopped, so its limits hold across resumes."""
        self.steps = sum(1 for r in run.steps if r.called)
        self.model_calls = len(run.model_calls)
        self.tokens = sum(c.input_tokens + c.output_tokens for c in run.model_calls)
        self.replans = run.plan.revision if run.plan else 0
        return self

    def before_model_call(self) -> None:
        if self.model_calls >= self.max_model_calls:
            raise LimitsExceeded(f"model call budget of {self.max_model_calls} calls used up")
        if self.tokens >= self.max_tokens:
            raise LimitsExceeded(f"token budget of {self.max_tokens} tokens used up")
        self.model_calls += 1

    def after_model_call(self, tokens: int) -> None:
        self.tokens += tokens

    def before_step(self) -> None:
        if self.steps >= self.max_steps:
            raise LimitsExceeded(f"step budget of {self.max_steps} tool calls used up")
        self.steps += 1
