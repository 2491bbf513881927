"""Every config section, declared once: keys, types, bounds, defaults and the reference's text.

Each class is a frozen pydantic dataclass (``extra="forbid"``): ``dataclasses.replace``,
``dataclasses.asdict`` and immutability work as they always did, and every field is
type-checked, strictly (``"5"`` is not an integer, ``"yes"`` not a boolean), including those
whose default is None. A field's ``description`` is its line in docs/config.md
(``make config-docs``). Checks across fields and against the file system (TLS halves, files
that must exist, the upstreams' credentials) are in ``agentd.config.load``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, Strict
from pydantic.dataclasses import dataclass

ROLES = ("planner", "executor", "responder", "guard")
Policy = Literal["allow", "approve", "deny"]
POLICIES = ("allow", "approve", "deny")
# The embedded model agentd ships by default (`agentd models` lists the others).
DEFAULT_EMBEDDED_MODEL = "qwen2.5-coder-1.5b"
ToolCallMode = Literal["native", "structured"]
# The prompts a [prompts] table may replace (agentd.loop.prompts holds their texts).
PROMPT_NAMES = ("planner", "replan", "examples", "executor", "responder", "react", "guard")
Guard = Literal["rules", "model"]
GUARDS = ("rules", "model")
Criterion = Literal["supported", "no_foreign_data", "policy"]
CRITERIA: tuple[Criterion, ...] = ("supported", "no_foreign_data", "policy")


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"must be host:port, got {value!r}")
    return value


def _optional_host_port(value: str) -> str:
    return _host_port(value) if value else value


def _non_empty(value: str) -> str:
    if not value:
        raise ValueError("must be a non-empty string")
    return value


def _required(value: str) -> str:
    if not value:
        raise ValueError("is required (a non-empty string)")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regex: {exc}") from None
    return value


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _log_level(value: str) -> str:
    if value.lower() not in ("debug", "info", "warning", "error"):
        raise ValueError("must be debug, info, warning or error")
    return value


# Strict scalars: TOML's types as they are, never coerced (an int is accepted as a float).
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
Int = Annotated[int, Strict(), Field(ge=0)]
Float = Annotated[float, Strict(), Field(ge=0)]
Strings = tuple[Str, ...]
NonEmpty = Annotated[Str, AfterValidator(_non_empty)]
Required = Annotated[Str, AfterValidator(_required)]
HostPort = Annotated[Str, AfterValidator(_host_port)]

_SECTION = ConfigDict(extra="forbid")


@dataclass(frozen=True, config=_SECTION)
class ModelConfig:
    """One role's endpoint. The API key itself is never stored here, only the env var's name."""

    base_url: Str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint; unset: `$OPENAI_BASE_URL`, else the embedded"
        " model",
    )
    model: Str = Field(
        default="",
        description="model name (required with a base_url; the embedded model's is"
        " `embedded.model`)",
    )
    api_key_env: Str = Field(default="OPENAI_API_KEY", description="env var holding the API key")
    tool_call_mode: ToolCallMode = Field(
        default="native",
        description="how the model is asked for a tool call: native `tools`, or `structured`"
        " output under a schema (the embedded model is always structured)",
    )
    temperature: Float = Field(default=0.0, description="sampling temperature, per call")
    max_tokens: Int = Field(default=1024, description="completion tokens per call")
    timeout_s: Float = Field(default=60.0, description="per call")
    max_retries: Int = Field(default=3, description="the openai SDK's retries per call")
    # The HTTP pool scans its connections on every request, so thousands cost CPU on each call.
    max_connections: Int = Field(
        default=128,
        description="open HTTP connections per endpoint; more concurrent calls wait for one",
    )
    # Each idle connection is probed on every request too, which cost more CPU than reconnecting.
    max_idle_connections: Int = Field(
        default=32,
        description="with httpx: idle connections kept for later calls, the rest closed as calls"
        " end (its pool probes each idle one on every request, which costs more CPU than"
        " reconnecting on loopback; raise it for a TLS endpoint under bursty load, where a"
        " reconnect costs a handshake)",
    )
    http_client: Literal["auto", "httpx", "aiohttp"] = Field(
        default="auto",
        description="the openai SDK's HTTP transport: `auto` is its aiohttp transport when"
        " installed (`agentd[fast]` brings `openai[aiohttp]`; about half the CPU per model"
        " call), else httpx; `httpx` or `aiohttp` (an error without it)",
    )


def embedded_alias(model: str) -> str:
    """The name llama.cpp answers to: a bundled model's name, or a local ``.gguf`` file's stem.

    Whether a name is a bundled model is checked where the weights are resolved
    (``agentd.llm.bundled``), which names ``embedded.model`` in its error.
    """
    if model.endswith(".gguf") or os.sep in model:
        return Path(model).stem
    return model


@dataclass(frozen=True, config=_SECTION)
class AuthConfig:
    """Inbound authentication. With neither tokens nor a client CA, every caller is anonymous."""

    bearer_tokens_env: NonEmpty | None = Field(
        default=None,
        description="env var with `TOKEN PRINCIPAL ROLE,ROLE` entries separated by `;` or"
        " newlines: fields separated by whitespace only (a `:` never splits), roles by `,`"
        " (principal and roles optional); tokens of 16+ characters, never equal to a principal"
        " or role name; a malformed entry is a config error naming its number; calls without a"
        " known token get UNAUTHENTICATED",
    )
    bearer_tokens_file: NonEmpty | None = Field(
        default=None,
        description="the same, one entry per line (`#` comments); errors name the file and line",
    )
    tls_cert: NonEmpty | None = Field(
        default=None, description="server certificate (PEM); enables TLS (with `tls_key`)"
    )
    tls_key: NonEmpty | None = Field(default=None, description="the server's private key (PEM)")
    client_ca: NonEmpty | None = Field(
        default=None, description="require client certificates signed by this CA (mTLS; needs TLS)"
    )
    gateway_header: Str = Field(
        default="",
        description="a gateway may name the caller in this header, honoured only over mTLS from"
        " the certificate `gateway_identity`; from anyone else it is ignored and logged",
    )
    gateway_identity: Str = Field(
        default="",
        description="the gateway's certificate (its CN or SAN), required with gateway_header",
    )
    cert_roles: Mapping[str, Strings] = Field(
        default_factory=dict,
        description='roles of certificate and gateway principals: `{ "ops-cli" = ["admin"] }`',
    )


@dataclass(frozen=True, config=_SECTION)
class ServerConfig:
    listen: HostPort = Field(
        default="127.0.0.1:50051",
        description="address of AgentService (also health and reflection)",
    )
    max_concurrent_runs: Int = Field(
        default=64,
        description="more concurrent runs get RESOURCE_EXHAUSTED (a burst is never CANCELLED by"
        " the transport: gRPC's limit on calls waiting for the application is raised to 10,000,"
        " or 4 × this)",
    )
    max_message_bytes: Int = Field(
        default=16 * 1024 * 1024, description="largest gRPC message in and out"
    )
    grace_s: Float = Field(default=10.0, description="SIGTERM drains in-flight runs this long")
    health_listen: Annotated[Str, AfterValidator(_optional_host_port)] = Field(
        default="",
        description="a second, plaintext port serving only `grpc.health.v1`, no reflection and no"
        " AgentService (Kubernetes' gRPC probes cannot speak TLS); `agentd health --target`"
        ' checks it; `""`: none',
    )
    max_connection_age_s: Float = Field(
        default=0.0,
        description="each client connection is closed (GOAWAY) after this long, so clients"
        " balancing over DNS re-resolve and find new replicas; calls in flight get"
        " `limits.run_timeout_s` to finish (0: never)",
    )
    max_runs_per_principal: Int = Field(
        default=0,
        description="concurrent runs per principal, so one caller cannot starve the others; over"
        " it RESOURCE_EXHAUSTED naming the limit (0: no limit)",
    )
    runs_per_minute: Int = Field(
        default=0, description="runs per principal per minute, likewise (0: no limit)"
    )
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        default="auto",
        description="`agentd serve`'s event loop: `auto` is uvloop when installed"
        " (`agentd[fast]`), else asyncio's; `uvloop` (an error without it) or `asyncio`",
    )
    auth: AuthConfig = Field(default_factory=AuthConfig, description="inbound authentication")


@dataclass(frozen=True, config=_SECTION)
class UpstreamConfig:
    name: Required = Field(description="the upstream's name (unique)")
    target: Required = Field(description="its address, host:port")
    allow: Strings = Field(default=(), description="allowlist patterns (required, at least one)")
    deny: Strings = Field(default=(), description="denylist patterns, applied after `allow`")
    forward_metadata: Strings = Field(
        default=("authorization",),
        description='caller metadata forwarded to this upstream; `"from=to"` renames. Default'
        ' `["authorization"]`, or `[]` with bearer auth on: then `authorization` is agentd\'s'
        " own token, and listing it is a config error unless `forward_inbound_credential = true`",
    )
    forward_inbound_credential: Bool = Field(
        default=False,
        description="with bearer auth on, send the caller's agentd token (`authorization`) to this"
        " upstream (it could call agentd as the caller)",
    )
    side_effects: Policy = Field(
        default="approve",
        description="policy for methods with side effects: allow, approve or deny",
    )
    methods: Mapping[str, Policy] = Field(
        default_factory=dict,
        description='per-method policy, `"pkg.Service/Method" = "allow"` (globs allowed)',
    )
    tls: Bool = Field(default=False, description="TLS to the upstream")
    ca_file: Str | None = Field(default=None, description="CA bundle (PEM) for TLS to the upstream")
    descriptor_set: Str | None = Field(
        default=None, description="FileDescriptorSet file instead of / besides reflection"
    )
    timeout_s: Float | None = Field(
        default=None,
        description="per-tool timeout for this upstream; unset: `limits.tool_timeout_s`",
    )
    always_offer: Bool = Field(
        default=False,
        description="offer this upstream's tools on every task, past the shortlist"
        " (`limits.max_offered_tools`): for utilities such as a calculator that tasks need"
        " without naming them",
    )
    stream_max_messages: Annotated[int, Strict(), Field(gt=0)] = Field(
        default=100,
        description="a server-streaming method's result keeps at most this many messages (then"
        " `truncated` and `cutBy: count` in the result the model reads, and the call is"
        " cancelled); a client-streaming method takes at most this many requests",
    )
    stream_max_bytes: Annotated[int, Strict(), Field(gt=0)] = Field(
        default=256 * 1024,
        description="bytes of JSON of those messages (then `cutBy: bytes`), or of those requests"
        " together",
    )
    stream_timeout_s: Annotated[float, Strict(), Field(gt=0)] = Field(
        default=10.0,
        description="seconds a server stream is read (then `cutBy: time`; the call's deadline,"
        " when sooner, cuts it too); a client-streaming call's longest deadline",
    )


# The limits the bundled models were measured with (every evals/*.yaml figure, the commented
# examples/*.toml): short plans, one replan, results cut to what a 1.5B model reads in seconds
# on 2 cores. When the embedded model plans, they are the defaults of [limits]: a key the file
# or the environment sets still wins; likewise its roles' [llm] keys (EMBEDDED_LLM: a reply's
# tokens and a call's time at ~20 tokens a second). The defaults below are for hosted models,
# whose speed makes an 8,000-character result cheap.
EMBEDDED_LLM: Mapping[str, Any] = {"max_tokens": 1536, "timeout_s": 120.0}  # its [llm] keys
EMBEDDED_LIMITS: Mapping[str, Any] = {
    "max_steps": 6,
    "max_plan_steps": 3,
    "max_replans": 1,
    "max_model_calls": 8,
    "run_timeout_s": 180.0,
    "max_answer_chars": 400,
    "max_result_chars": 2500,
}


@dataclass(frozen=True, config=_SECTION)
class LimitsConfig:
    max_steps: Int = Field(default=12, description="tool calls per run")
    max_plan_steps: Int = Field(
        default=0,
        description="steps in one plan (0: `max_steps`); small models repeat a pattern until the"
        " array is full, so a short plan array keeps their plans short; a replan can add more",
    )
    max_offered_tools: Int = Field(
        default=12,
        description="tools the planner is shown per task (0: all); a larger catalog is ranked"
        " against the task (BM25 over names, descriptions, fields and comments) and"
        " shortlisted, each replan twice as many; the record's `plan.offered_tools` and the"
        " plan span say which",
    )
    max_replans: Int = Field(default=2, description="plan revisions per run")
    max_model_calls: Int = Field(default=24, description="model calls per run, all roles")
    max_tokens: Int = Field(default=200_000, description="tokens per run, all roles")
    max_plan_repairs: Int = Field(
        default=2, description="times a plan failing its checks goes back to the planner"
    )
    run_timeout_s: Float = Field(
        default=120.0, description="run deadline (the caller's deadline, if shorter, wins)"
    )
    tool_timeout_s: Float = Field(default=10.0, description="per tool call")
    max_parallel_steps: Int = Field(default=8, description="concurrent tool calls within a run")
    max_result_chars: Int = Field(
        default=8_000,
        description="a tool result longer than this is cut (longest lists first) before the"
        " model sees it",
    )
    max_answer_chars: Int = Field(
        default=4_000,
        description="longest text answer (a bound small models need: they run on to max_tokens"
        " in unbounded strings)",
    )
    idempotency_header: Str = Field(
        default="x-agentd-idempotency-key",
        description="metadata key of each tool call's idempotency key,"
        ' `uuid5(NAMESPACE_URL, "agentd:run/<run id>/step/<step id>")`, the same whenever that'
        ' step of that run is called, so an upstream can deduplicate; `""` sends none',
    )


@dataclass(frozen=True, config=_SECTION)
class AgentConfig:
    mode: Literal["plan_execute", "react"] = Field(
        default="plan_execute", description="the loop: plan, execute, replan, respond; or `react`"
    )
    discovery_retry_s: Float = Field(
        default=5.0, description="retry period for upstreams that were down"
    )
    stream_answer: Bool = Field(
        default=True,
        description="`RunStream` and `WatchRun` carry the answer as it is decoded"
        " (`answer_delta`, the model's reply streamed); `false`: step events and the final"
        " answer only, which costs less CPU per streamed run (bench stream_cpu_overhead)",
    )


@dataclass(frozen=True, config=_SECTION)
class EmbeddedConfig:
    """The llama.cpp model agentd runs when a role has no ``llm.base_url``."""

    model: Str = Field(
        default=DEFAULT_EMBEDDED_MODEL,
        description="bundled model (`agentd models`) or a `.gguf` path, for roles without"
        " `base_url`",
    )
    threads: Int = Field(
        default=0,
        description="llama.cpp threads; 0: two (one on a single core), the fastest measured on 2"
        " cores; 1 where the cores are busy with other work",
    )
    context: Annotated[int, Strict(), Field(ge=512)] = Field(
        default=4096, description="tokens of context per slot"
    )
    slots: Annotated[int, Strict(), Field(ge=1)] = Field(
        default=3, description="parallel slots, each with its own prompt cache (one per role)"
    )


@dataclass(frozen=True, config=_SECTION)
class StorageConfig:
    path: Str = Field(default="agentd.db", description="SQLite run store (WAL)")
    url: Str = Field(
        default="",
        description="`postgresql://...`: a PostgreSQL store shared by replicas (needs"
        " `agentd[postgres]`)",
    )
    pool_size: Annotated[int, Strict(), Field(ge=1)] = Field(
        default=10, description="PostgreSQL: connections per replica"
    )
    pool_timeout_s: Annotated[float, Strict(), Field(gt=0)] = Field(
        default=5.0,
        description="PostgreSQL: how long a call waits for a connection (or for a database that"
        " is down) before it is answered `UNAVAILABLE`",
    )
    lease_s: Annotated[float, Strict(), Field(gt=0)] = Field(
        default=30.0, description="a running run's lease, renewed while it runs"
    )
    takeover_s: Annotated[float, Strict(), Field(gt=0)] = Field(
        default=5.0,
        description="every this long each replica takes over runs whose lease lapsed (their"
        " replica died)",
    )
    journal: Bool = Field(
        default=True,
        description="store a run as it goes (RUNNING, after its plan and steps) and lease it;"
        " `false`: only when it ends (no lease, no takeover), the cost bench's journal_overhead"
        " measures",
    )
    max_events_per_run: Annotated[int, Strict(), Field(ge=0)] = Field(
        default=5_000,
        description="a run's events kept in the store for `WatchRun` (with its snapshots);"
        " later ones are streamed live but not kept (a re-attaching caller sees a gap in"
        " their sequence numbers); the final event is always kept",
    )


@dataclass(frozen=True, config=_SECTION)
class ApprovalsConfig:
    ttl_s: Float = Field(
        default=86_400.0,
        description="a run waiting for a decision longer than this expires (0: never)",
    )
    on_expiry: Literal["expire", "reject"] = Field(
        default="expire",
        description="`expire`: the run ends `expired`; `reject`: it resumes as if every pending"
        " call was rejected",
    )
    seal_key_env: Str = Field(
        default="",
        description="env var holding a base64 32-byte key (the same on every replica): the"
        " owner's forwarded metadata is kept sealed with it (AES-256-GCM, bound to the run)"
        " while a run waits or may be taken over, so a run resumed by an admin, the expiry or a"
        " takeover calls upstreams as its owner; unset: such a run forwards no metadata (never"
        " the approver's)",
    )


# --- guardrails, memory, alerts --------------------------------------------------------


@dataclass(frozen=True, config=_SECTION)
class GuardrailsConfig:
    """Input checks are on by default; output guards only when listed in ``output``."""

    input: Bool = Field(
        default=True, description="input checks: size, deny patterns, prompt-injection heuristic"
    )
    max_input_chars: Int = Field(
        default=32_000, description="task plus context JSON; longer input is blocked"
    )
    deny_patterns: tuple[Annotated[Str, AfterValidator(_regex)], ...] = Field(
        default=(), description="regexes; a match in the input or (with `rules`) the answer blocks"
    )
    injection: Literal["flag", "block", "off"] = Field(
        default="flag", description="what the injection heuristic does: `flag`, `block` or `off`"
    )
    tool_results: Bool = Field(
        default=True, description="flag instruction-like content in tool results on their step"
    )
    output: tuple[Guard, ...] = Field(
        default=(), description='output guards in order: `"rules"`, `"model"` (the `guard` role)'
    )
    keywords: Strings = Field(default=(), description="`rules`: words an answer must not contain")
    output_schema: Str = Field(
        default="", description="`rules`: JSON Schema file the answer (output_json) must match"
    )
    criteria: tuple[Criterion, ...] = Field(
        default=CRITERIA, description="`model`: what the model guard judges"
    )
    policy: Str = Field(default="", description="`model`: the deployment's policy text")
    on_flag: Literal["return", "block"] = Field(
        default="return", description="`return` the answer with the verdict, or `block` it"
    )


@dataclass(frozen=True, config=_SECTION)
class MemoryConfig:
    enabled: Bool = Field(default=True, description="the `memory_*` tools, for runs with a user")
    user_header: Str = Field(
        default="x-user-id",
        description="metadata naming the user to act for when `RunRequest.user_id` is empty;"
        " like it, only for admin/impersonate",
    )
    allow_anonymous: Bool = Field(
        default=False,
        description="give the anonymous principal (auth off) memory tools and history; then every"
        " anonymous caller shares one memory and history scope",
    )
    recall_limit: Int = Field(default=8, description="memories per recall")
    max_memory_chars: Int = Field(default=2_000, description="characters per memory")
    history_runs: Int = Field(
        default=5, description="earlier runs of the conversation shown to planner and responder"
    )
    history_chars: Int = Field(default=3_000, description="characters of that conversation summary")


@dataclass(frozen=True, config=_SECTION)
class ExamplesConfig:
    enabled: Bool = Field(
        default=True, description="show the planner worked examples from the plan library"
    )
    file: Str = Field(
        default="",
        description="a YAML file of examples, for review in git (relative to the config file;"
        " `agentd examples export` writes it); checked at start, shown to every run",
    )
    from_feedback: Bool = Field(
        default=True,
        description="a succeeded run rated positively (SubmitFeedback) adds its plan",
    )
    share: Bool = Field(
        default=False,
        description="show plans from one principal's feedback to every principal's runs (they"
        " may hold that principal's data: ids, emails); maintainers' examples are always shared",
    )
    k: Int = Field(default=2, description="examples shown per planner prompt, most similar first")
    min_score: Float = Field(
        default=0.3,
        description="the least similarity (0-1: the task's BM25 against the example's task and"
        " tool names, over its own) for an example to be shown",
    )
    max_per_principal: Annotated[int, Strict(), Field(ge=1)] = Field(
        default=200, description="examples kept per principal; the oldest go first"
    )
    max_plan_chars: Annotated[int, Strict(), Field(ge=1)] = Field(
        default=4_000,
        description="characters of one example (task and plan); larger ones are not kept",
    )
    max_prompt_chars: Int = Field(
        default=3_000, description="characters of examples in one planner prompt"
    )
    max_candidates: Annotated[int, Strict(), Field(ge=1)] = Field(
        default=1_000, description="examples read from the store and ranked per run"
    )
    leave_one_out: Bool = Field(
        default=False,
        description="never show an example whose task is the run's own task (`agentd eval"
        " --examples-from` sets it: a case never sees its own plan)",
    )


@dataclass(frozen=True, config=_SECTION)
class AlertsConfig:
    webhooks: tuple[Annotated[Str, AfterValidator(_http_url)], ...] = Field(
        default=(), description="http(s) URLs that get a JSON POST per alert"
    )
    log: Bool = Field(default=True, description="alerts also go to the log (warning)")
    on_failed_run: Bool = Field(default=True, description="a failed run raises an alert")
    on_guardrail: Bool = Field(
        default=True, description="a guardrail flag or block raises an alert"
    )
    on_negative_feedback: Bool = Field(
        default=True, description="negative feedback raises an alert"
    )
    retries: Int = Field(default=4, description="delivery attempts after the first")
    backoff_s: Float = Field(
        default=0.5, description="first backoff, doubled per attempt, capped at 30 s"
    )
    timeout_s: Float = Field(default=5.0, description="per delivery attempt")


@dataclass(frozen=True, config=_SECTION)
class LoggingConfig:
    level: Annotated[Str, AfterValidator(_log_level)] = Field(
        default="info", description="debug, info, warning or error"
    )
    format: Literal["auto", "json", "console"] = Field(
        default="auto", description="`auto`: readable on a terminal, JSON lines otherwise"
    )


# --- telemetry and pricing (observability) ------------------------------------------------


@dataclass(frozen=True, config=_SECTION)
class TelemetryConfig:
    """Span content; exporters follow the standard OTEL_* variables instead of this file."""

    capture_content: Bool = Field(
        default=False,
        description="prompts, completions, tool arguments and results on spans (they may hold"
        " personal data); default `$OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`",
    )
    max_content_chars: Int = Field(
        default=4_000, description="captured content per attribute is cut after this"
    )


@dataclass(frozen=True, config=_SECTION)
class PriceConfig:
    """One model's price in US dollars per million tokens."""

    input_per_mtok: Float = Field(default=0.0, description="USD per million input tokens")
    output_per_mtok: Float = Field(default=0.0, description="USD per million output tokens")


@dataclass(frozen=True, config=_SECTION)
class Config:
    server: ServerConfig = Field(default_factory=ServerConfig, description="the gRPC server")
    upstreams: tuple[UpstreamConfig, ...] = Field(
        default=(),
        description="the gRPC services whose allowlisted methods are tools ([[upstreams]])",
    )
    models: Mapping[str, ModelConfig] = Field(
        default_factory=dict, description="one per role, from [llm] and [llm.ROLE]"
    )
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="per run")
    agent: AgentConfig = Field(default_factory=AgentConfig, description="the loop")
    embedded: EmbeddedConfig = Field(
        default_factory=EmbeddedConfig, description="the embedded llama.cpp model"
    )
    storage: StorageConfig = Field(default_factory=StorageConfig, description="the run store")
    approvals: ApprovalsConfig = Field(
        default_factory=ApprovalsConfig, description="runs waiting for a decision"
    )
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="logs")
    guardrails: GuardrailsConfig = Field(
        default_factory=GuardrailsConfig, description="input and output guards"
    )
    memory: MemoryConfig = Field(default_factory=MemoryConfig, description="memory and history")
    examples: ExamplesConfig = Field(
        default_factory=ExamplesConfig, description="the plan library: worked examples"
    )
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="alerts")
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig, description="span content")
    pricing: Mapping[str, PriceConfig] = Field(
        default_factory=dict, description='prices keyed by model name ([pricing."MODEL"])'
    )
    prompts: Mapping[str, Str] = Field(
        default_factory=dict,
        description="prompt name -> text file replacing that template (relative to the config"
        f" file); names: {', '.join(PROMPT_NAMES)}",
    )
    source: Str = Field(default="<defaults>", description="the file read (not a key)")

    @property
    def uses_embedded_model(self) -> bool:
        return any(m.base_url is None for m in self.models.values())
