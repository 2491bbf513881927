import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoopMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOOP_MODE_UNSPECIFIED: _ClassVar[LoopMode]
    LOOP_MODE_PLAN_EXECUTE: _ClassVar[LoopMode]
    LOOP_MODE_REACT: _ClassVar[LoopMode]

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_SUCCEEDED: _ClassVar[RunStatus]
    RUN_STATUS_FAILED: _ClassVar[RunStatus]
    RUN_STATUS_LIMITS_EXCEEDED: _ClassVar[RunStatus]
    RUN_STATUS_NEEDS_APPROVAL: _ClassVar[RunStatus]
    RUN_STATUS_BLOCKED_BY_GUARDRAIL: _ClassVar[RunStatus]
    RUN_STATUS_CANCELLED: _ClassVar[RunStatus]
    RUN_STATUS_DEADLINE_EXCEEDED: _ClassVar[RunStatus]
    RUN_STATUS_EXPIRED: _ClassVar[RunStatus]

class StepStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_STATUS_UNSPECIFIED: _ClassVar[StepStatus]
    STEP_STATUS_RUNNING: _ClassVar[StepStatus]
    STEP_STATUS_SUCCEEDED: _ClassVar[StepStatus]
    STEP_STATUS_FAILED: _ClassVar[StepStatus]
    STEP_STATUS_SKIPPED: _ClassVar[StepStatus]
    STEP_STATUS_NEEDS_APPROVAL: _ClassVar[StepStatus]
    STEP_STATUS_DENIED: _ClassVar[StepStatus]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_PASS: _ClassVar[Verdict]
    VERDICT_FLAG: _ClassVar[Verdict]
    VERDICT_BLOCK: _ClassVar[Verdict]
LOOP_MODE_UNSPECIFIED: LoopMode
LOOP_MODE_PLAN_EXECUTE: LoopMode
LOOP_MODE_REACT: LoopMode
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_SUCCEEDED: RunStatus
RUN_STATUS_FAILED: RunStatus
RUN_STATUS_LIMITS_EXCEEDED: RunStatus
RUN_STATUS_NEEDS_APPROVAL: RunStatus
RUN_STATUS_BLOCKED_BY_GUARDRAIL: RunStatus
RUN_STATUS_CANCELLED: RunStatus
RUN_STATUS_DEADLINE_EXCEEDED: RunStatus
RUN_STATUS_EXPIRED: RunStatus
STEP_STATUS_UNSPECIFIED: StepStatus
STEP_STATUS_RUNNING: StepStatus
STEP_STATUS_SUCCEEDED: StepStatus
STEP_STATUS_FAILED: StepStatus
STEP_STATUS_SKIPPED: StepStatus
STEP_STATUS_NEEDS_APPROVAL: StepStatus
STEP_STATUS_DENIED: StepStatus
VERDICT_UNSPECIFIED: Verdict
VERDICT_PASS: Verdict
VERDICT_FLAG: Verdict
VERDICT_BLOCK: Verdict

class Limits(_message.Message):
    __slots__ = ("max_steps", "max_replans", "max_model_calls", "max_tokens")
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_REPLANS_FIELD_NUMBER: _ClassVar[int]
    MAX_MODEL_CALLS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    max_steps: int
    max_replans: int
    max_model_calls: int
    max_tokens: int
    def __init__(self, max_steps: _Optional[int] = ..., max_replans: _Optional[int] = ..., max_model_calls: _Optional[int] = ..., max_tokens: _Optional[int] = ...) -> None: ...

class RunRequest(_message.Message):
    __slots__ = ("task", "context", "response_schema", "tools", "limits", "conversation_id", "user_id", "mode")
    TASK_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    task: str
    context: _struct_pb2.Struct
    response_schema: str
    tools: _containers.RepeatedScalarFieldContainer[str]
    limits: Limits
    conversation_id: str
    user_id: str
    mode: LoopMode
    def __init__(self, task: _Optional[str] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., response_schema: _Optional[str] = ..., tools: _Optional[_Iterable[str]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., mode: _Optional[_Union[LoopMode, str]] = ...) -> None: ...

class PlanStep(_message.Message):
    __slots__ = ("id", "tool", "arguments", "depends_on", "purpose")
    ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    id: str
    tool: str
    arguments: _struct_pb2.Struct
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    purpose: str
    def __init__(self, id: _Optional[str] = ..., tool: _Optional[str] = ..., arguments: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., depends_on: _Optional[_Iterable[str]] = ..., purpose: _Optional[str] = ...) -> None: ...

class Plan(_message.Message):
    __slots__ = ("revision", "steps", "direct_answer", "rationale", "offered_tools", "examples")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    DIRECT_ANSWER_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    OFFERED_TOOLS_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    revision: int
    steps: _containers.RepeatedCompositeFieldContainer[PlanStep]
    direct_answer: str
    rationale: str
    offered_tools: _containers.RepeatedScalarFieldContainer[str]
    examples: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, revision: _Optional[int] = ..., steps: _Optional[_Iterable[_Union[PlanStep, _Mapping]]] = ..., direct_answer: _Optional[str] = ..., rationale: _Optional[str] = ..., offered_tools: _Optional[_Iterable[str]] = ..., examples: _Optional[_Iterable[str]] = ...) -> None: ...

class Step(_message.Message):
    __slots__ = ("id", "tool", "method", "arguments", "result", "status", "error", "start_time", "duration", "plan_revision", "result_truncated", "flags")
    ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    PLAN_REVISION_FIELD_NUMBER: _ClassVar[int]
    RESULT_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    tool: str
    method: str
    arguments: _struct_pb2.Struct
    result: _struct_pb2.Struct
    status: StepStatus
    error: StepError
    start_time: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    plan_revision: int
    result_truncated: bool
    flags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., tool: _Optional[str] = ..., method: _Optional[str] = ..., arguments: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., status: _Optional[_Union[StepStatus, str]] = ..., error: _Optional[_Union[StepError, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., plan_revision: _Optional[int] = ..., result_truncated: _Optional[bool] = ..., flags: _Optional[_Iterable[str]] = ...) -> None: ...

class StepError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("role", "model", "calls", "input_tokens", "output_tokens", "cost_usd")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    role: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    def __init__(self, role: _Optional[str] = ..., model: _Optional[str] = ..., calls: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ...) -> None: ...

class ModelCall(_message.Message):
    __slots__ = ("role", "model", "prompt", "prompt_version", "start_time", "duration", "input_tokens", "output_tokens", "cost_usd", "finish_reason", "error", "span_id", "cached_input_tokens")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_VERSION_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    CACHED_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    role: str
    model: str
    prompt: str
    prompt_version: str
    start_time: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    input_tokens: int
    output_tokens: int
    cost_usd: float
    finish_reason: str
    error: str
    span_id: str
    cached_input_tokens: int
    def __init__(self, role: _Optional[str] = ..., model: _Optional[str] = ..., prompt: _Optional[str] = ..., prompt_version: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., finish_reason: _Optional[str] = ..., error: _Optional[str] = ..., span_id: _Optional[str] = ..., cached_input_tokens: _Optional[int] = ...) -> None: ...

class GuardrailVerdict(_message.Message):
    __slots__ = ("verdict", "reasons", "guard", "stage")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    GUARD_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    verdict: Verdict
    reasons: _containers.RepeatedScalarFieldContainer[str]
    guard: str
    stage: str
    def __init__(self, verdict: _Optional[_Union[Verdict, str]] = ..., reasons: _Optional[_Iterable[str]] = ..., guard: _Optional[str] = ..., stage: _Optional[str] = ...) -> None: ...

class Feedback(_message.Message):
    __slots__ = ("rating", "comment", "labels", "time", "user_id")
    RATING_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    rating: int
    comment: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    time: _timestamp_pb2.Timestamp
    user_id: str
    def __init__(self, rating: _Optional[int] = ..., comment: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., user_id: _Optional[str] = ...) -> None: ...

class PendingCall(_message.Message):
    __slots__ = ("step_id", "tool", "method", "arguments", "side_effects", "reason")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    SIDE_EFFECTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    tool: str
    method: str
    arguments: _struct_pb2.Struct
    side_effects: str
    reason: str
    def __init__(self, step_id: _Optional[str] = ..., tool: _Optional[str] = ..., method: _Optional[str] = ..., arguments: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., side_effects: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RunResponse(_message.Message):
    __slots__ = ("run_id", "trace_id", "status", "output", "output_json", "plan", "steps", "usage", "models", "error", "pending_call", "start_time", "duration", "mode", "conversation_id", "user_id", "task", "model_calls", "cost_usd", "verdicts", "feedback", "principal", "pending_calls", "approvals", "resumes")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PENDING_CALL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    MODEL_CALLS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    PENDING_CALLS_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    RESUMES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    trace_id: str
    status: RunStatus
    output: str
    output_json: _struct_pb2.Value
    plan: Plan
    steps: _containers.RepeatedCompositeFieldContainer[Step]
    usage: _containers.RepeatedCompositeFieldContainer[Usage]
    models: _containers.RepeatedScalarFieldContainer[str]
    error: str
    pending_call: PendingCall
    start_time: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    mode: LoopMode
    conversation_id: str
    user_id: str
    task: str
    model_calls: _containers.RepeatedCompositeFieldContainer[ModelCall]
    cost_usd: float
    verdicts: _containers.RepeatedCompositeFieldContainer[GuardrailVerdict]
    feedback: _containers.RepeatedCompositeFieldContainer[Feedback]
    principal: str
    pending_calls: _containers.RepeatedCompositeFieldContainer[PendingCall]
    approvals: _containers.RepeatedCompositeFieldContainer[Approval]
    resumes: int
    def __init__(self, run_id: _Optional[str] = ..., trace_id: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ..., output: _Optional[str] = ..., output_json: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., plan: _Optional[_Union[Plan, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[Step, _Mapping]]] = ..., usage: _Optional[_Iterable[_Union[Usage, _Mapping]]] = ..., models: _Optional[_Iterable[str]] = ..., error: _Optional[str] = ..., pending_call: _Optional[_Union[PendingCall, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., mode: _Optional[_Union[LoopMode, str]] = ..., conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., task: _Optional[str] = ..., model_calls: _Optional[_Iterable[_Union[ModelCall, _Mapping]]] = ..., cost_usd: _Optional[float] = ..., verdicts: _Optional[_Iterable[_Union[GuardrailVerdict, _Mapping]]] = ..., feedback: _Optional[_Iterable[_Union[Feedback, _Mapping]]] = ..., principal: _Optional[str] = ..., pending_calls: _Optional[_Iterable[_Union[PendingCall, _Mapping]]] = ..., approvals: _Optional[_Iterable[_Union[Approval, _Mapping]]] = ..., resumes: _Optional[int] = ...) -> None: ...

class CallDecision(_message.Message):
    __slots__ = ("step_id", "approve", "arguments", "reason")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    approve: bool
    arguments: _struct_pb2.Struct
    reason: str
    def __init__(self, step_id: _Optional[str] = ..., approve: _Optional[bool] = ..., arguments: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class ApproveRunRequest(_message.Message):
    __slots__ = ("run_id", "request_id", "decisions")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    request_id: str
    decisions: _containers.RepeatedCompositeFieldContainer[CallDecision]
    def __init__(self, run_id: _Optional[str] = ..., request_id: _Optional[str] = ..., decisions: _Optional[_Iterable[_Union[CallDecision, _Mapping]]] = ...) -> None: ...

class Approval(_message.Message):
    __slots__ = ("step_id", "tool", "approved", "original_arguments", "arguments", "edited", "arguments_sha256", "reason", "principal", "request_id", "time", "plan_revision")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    EDITED_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_SHA256_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PLAN_REVISION_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    tool: str
    approved: bool
    original_arguments: _struct_pb2.Struct
    arguments: _struct_pb2.Struct
    edited: bool
    arguments_sha256: str
    reason: str
    principal: str
    request_id: str
    time: _timestamp_pb2.Timestamp
    plan_revision: int
    def __init__(self, step_id: _Optional[str] = ..., tool: _Optional[str] = ..., approved: _Optional[bool] = ..., original_arguments: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., arguments: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., edited: _Optional[bool] = ..., arguments_sha256: _Optional[str] = ..., reason: _Optional[str] = ..., principal: _Optional[str] = ..., request_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., plan_revision: _Optional[int] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("run_id", "sequence", "time", "plan", "replan_reason", "step_started", "step_finished", "final", "verdict", "answer_delta")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    REPLAN_REASON_FIELD_NUMBER: _ClassVar[int]
    STEP_STARTED_FIELD_NUMBER: _ClassVar[int]
    STEP_FINISHED_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_DELTA_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    sequence: int
    time: _timestamp_pb2.Timestamp
    plan: Plan
    replan_reason: str
    step_started: Step
    step_finished: Step
    final: RunResponse
    verdict: GuardrailVerdict
    answer_delta: str
    def __init__(self, run_id: _Optional[str] = ..., sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., plan: _Optional[_Union[Plan, _Mapping]] = ..., replan_reason: _Optional[str] = ..., step_started: _Optional[_Union[Step, _Mapping]] = ..., step_finished: _Optional[_Union[Step, _Mapping]] = ..., final: _Optional[_Union[RunResponse, _Mapping]] = ..., verdict: _Optional[_Union[GuardrailVerdict, _Mapping]] = ..., answer_delta: _Optional[str] = ...) -> None: ...

class ListToolsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Tool(_message.Message):
    __slots__ = ("name", "method", "description", "side_effects", "input_schema", "output_schema", "upstream", "policy")
    NAME_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SIDE_EFFECTS_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    name: str
    method: str
    description: str
    side_effects: str
    input_schema: str
    output_schema: str
    upstream: str
    policy: str
    def __init__(self, name: _Optional[str] = ..., method: _Optional[str] = ..., description: _Optional[str] = ..., side_effects: _Optional[str] = ..., input_schema: _Optional[str] = ..., output_schema: _Optional[str] = ..., upstream: _Optional[str] = ..., policy: _Optional[str] = ...) -> None: ...

class ListToolsResponse(_message.Message):
    __slots__ = ("tools", "unavailable_upstreams")
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_UPSTREAMS_FIELD_NUMBER: _ClassVar[int]
    tools: _containers.RepeatedCompositeFieldContainer[Tool]
    unavailable_upstreams: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tools: _Optional[_Iterable[_Union[Tool, _Mapping]]] = ..., unavailable_upstreams: _Optional[_Iterable[str]] = ...) -> None: ...

class SubmitFeedbackRequest(_message.Message):
    __slots__ = ("run_id", "rating", "comment", "labels")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    rating: int
    comment: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_id: _Optional[str] = ..., rating: _Optional[int] = ..., comment: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ...) -> None: ...

class SubmitFeedbackResponse(_message.Message):
    __slots__ = ("run_id", "feedback")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    feedback: Feedback
    def __init__(self, run_id: _Optional[str] = ..., feedback: _Optional[_Union[Feedback, _Mapping]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("with_feedback", "limit", "status", "page_token")
    WITH_FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    with_feedback: bool
    limit: int
    status: RunStatus
    page_token: str
    def __init__(self, with_feedback: _Optional[bool] = ..., limit: _Optional[int] = ..., status: _Optional[_Union[RunStatus, str]] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[RunResponse]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[RunResponse, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchRunRequest(_message.Message):
    __slots__ = ("run_id", "after")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    after: int
    def __init__(self, run_id: _Optional[str] = ..., after: _Optional[int] = ...) -> None: ...
