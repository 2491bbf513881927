"""agentd's configuration: one TOML file plus environment overrides, as typed dataclasses.

Every error names the key and the file, so a user knows what to fix. Environment
variables override the file: ``AGENTD_<SECTION>_<KEY>`` (e.g. ``AGENTD_SERVER_LISTEN``,
``AGENTD_LLM_MODEL``, ``AGENTD_LLM_PLANNER_MODEL``, ``AGENTD_LIMITS_MAX_STEPS``), and the
openai SDK's ``OPENAI_BASE_URL`` is the default endpoint. With no endpoint anywhere,
agentd runs the embedded model.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ROLES = ("planner", "executor", "responder", "guard")
Policy = Literal["allow", "approve", "deny"]
POLICIES = ("allow", "approve", "deny")
# The embedded model agentd ships by default (`agentd models` lists the others).
DEFAULT_EMBEDDED_MODEL = "qwen2.5-coder-1.5b"
ToolCallMode = Literal["native", "structured"]
# The prompts a [prompts] table may replace (agentd.loop.prompts holds their texts).
PROMPT_NAMES = ("planner", "replan", "executor", "responder", "react", "guard")


@dataclass(frozen=True)
class ModelConfig:
    """One role's endpoint. The API key itself is never stored here, only the env var's name."""

    base_url: str | None  # None → the embedded model
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    tool_call_mode: ToolCallMode = "native"
    temperature: float = 0.0
    max_tokens: int = 1024
    timeout_s: float = 60.0
    max_retries: int = 3
    # Open connections to the endpoint; more concurrent calls wait for one. The HTTP pool
    # scans its connections on every request, so thousands of them cost CPU on each call.
    max_connections: int = 128
    # Idle connections kept open for the next calls; more are closed as calls end. Each idle
    # connection is probed on every request too, which cost more CPU than reconnecting.
    max_idle_connections: int = 32
    # The SDK's HTTP transport: its aiohttp one (openai[aiohttp], in agentd[fast]) costs about
    # half the CPU per call of httpx's pool; "auto" uses it when installed.
    http_client: Literal["auto", "httpx", "aiohttp"] = "auto"


def embedded_alias(model: str) -> str:
    """The name llama.cpp answers to: a bundled model's name, or a local ``.gguf`` file's stem.

    Whether a name is a bundled model is checked where the weights are resolved
    (``agentd.llm.bundled``), which names ``embedded.model`` in its error.
    """
    if model.endswith(".gguf") or os.sep in model:
        return Path(model).stem
    return model


class ConfigError(ValueError):
    """A config file or environment value that agentd cannot use; the message names the key."""


@dataclass(frozen=True)
class AuthConfig:
    """Inbound authentication. With neither tokens nor a client CA, every caller is anonymous."""

    # env var holding comma-separated "TOKEN:PRINCIPAL:ROLE,ROLE" entries (principal optional)
    bearer_tokens_env: str | None = None
    bearer_tokens_file: str | None = None  # one "TOKEN PRINCIPAL ROLE,ROLE" per line
    tls_cert: str | None = None  # server certificate (PEM); enables TLS
    tls_key: str | None = None
    client_ca: str | None = None  # require client certificates signed by this CA (mTLS)
    # A gateway in front may name the caller in this header, honoured only over mTLS from the
    # certificate named gateway_identity (its CN or SAN).
    gateway_header: str = ""
    gateway_identity: str = ""
    # Roles of certificate (and gateway-asserted) principals: name -> ["admin", ...].
    cert_roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerConfig:
    listen: str = "127.0.0.1:50051"
    max_concurrent_runs: int = 64
    max_message_bytes: int = 16 * 1024 * 1024
    grace_s: float = 10.0
    # A second, plaintext port serving only grpc.health.v1 (""= none): Kubernetes' gRPC probes
    # cannot speak TLS, so with server.auth TLS on they probe this port instead.
    health_listen: str = ""
    # Close each client connection after this long (GOAWAY; in-flight calls get the run timeout
    # to finish), so clients balancing over a headless Service re-resolve and find new
    # replicas (0: never).
    max_connection_age_s: float = 0.0
    # Per principal, so one caller cannot starve the others (0: no limit).
    max_runs_per_principal: int = 0
    runs_per_minute: int = 0
    # `agentd serve`'s event loop: uvloop (agentd[fast]) when installed, else asyncio's.
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    auth: AuthConfig = field(default_factory=AuthConfig)


@dataclass(frozen=True)
class UpstreamConfig:
    name: str
    target: str
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    # Caller metadata passed on ("from=to" renames). The default: ["authorization"] with no
    # inbound bearer auth; nothing with it, since then `authorization` is agentd's own token.
    forward_metadata: tuple[str, ...] = ("authorization",)
    # With bearer auth on: send agentd's own inbound token (`authorization`) to this upstream.
    forward_inbound_credential: bool = False
    side_effects: Policy = "approve"
    # Per-method policy overrides, keyed by "pkg.Service/Method" (globs allowed).
    methods: Mapping[str, Policy] = field(default_factory=dict)
    tls: bool = False
    ca_file: str | None = None
    descriptor_set: str | None = None
    timeout_s: float | None = None  # per-tool timeout; default [limits].tool_timeout_s
    # Offer this upstream's tools to the planner on every task, past the shortlist: for
    # utilities (a calculator, a clock) that a task needs without naming them.
    always_offer: bool = False


@dataclass(frozen=True)
class LimitsConfig:
    max_steps: int = 12
    # Steps in one plan (0: max_steps). Small models repeat a pattern until the array is
    # full, so a short plan array keeps their plans short; a replan can add more.
    max_plan_steps: int = 0
    # Tools the planner is shown per task (0: all). A larger catalog is ranked against the
    # task (BM25) and the best ones offered, each replan twice as many; the built-ins always.
    max_offered_tools: int = 12
    max_replans: int = 2
    max_model_calls: int = 24
    max_tokens: int = 200_000
    max_plan_repairs: int = 2
    run_timeout_s: float = 120.0
    tool_timeout_s: float = 10.0
    max_parallel_steps: int = 8
    max_result_chars: int = 8_000
    # Longest text answer; small models run on to max_tokens in unbounded strings.
    max_answer_chars: int = 4_000
    # Metadata key of every upstream call's idempotency key, uuid5(run id, step id): the same
    # on every retry of a step, so an upstream can deduplicate; "" sends none.
    idempotency_header: str = "x-agentd-idempotency-key"


@dataclass(frozen=True)
class AgentConfig:
    mode: Literal["plan_execute", "react"] = "plan_execute"
    discovery_retry_s: float = 5.0


@dataclass(frozen=True)
class EmbeddedConfig:
    """The llama.cpp model agentd runs when a role has no ``llm.base_url``."""

    model: str = DEFAULT_EMBEDDED_MODEL  # a bundled model's name (agentd models) or a .gguf path
    threads: int = 0  # 0: one per core, leaving a core to the event loop
    context: int = 4096  # tokens of context per slot
    slots: int = 3  # one per role, so each keeps its own prompt cache


@dataclass(frozen=True)
class StorageConfig:
    path: str = "agentd.db"
    # postgresql://... : a PostgreSQL store shared by several replicas (needs psycopg, psycopg-pool).
    url: str = ""
    # PostgreSQL only: connections per replica, and how long a call waits for one (or for a
    # database that is down) before it is answered UNAVAILABLE.
    pool_size: int = 10
    pool_timeout_s: float = 5.0
    # A running run holds a lease, renewed while it runs; a run whose lease lapsed (its
    # replica died) is taken over by a replica sharing the store, checked every takeover_s.
    lease_s: float = 30.0
    takeover_s: float = 5.0
    # false: a run is stored only when it ends (no RUNNING record, no lease, no takeover):
    # the journal's cost, measured by bench's journal_overhead.
    journal: bool = True


@dataclass(frozen=True)
class ApprovalsConfig:
    # A run waiting for a decision longer than this expires (0: never).
    ttl_s: float = 86_400.0
    # "expire": the run ends expired; "reject": it resumes as if every pending call was rejected.
    on_expiry: Literal["expire", "reject"] = "expire"
    # Env var holding a base64 32-byte key (the same on every replica): the owner's forwarded
    # metadata is kept sealed with it (AES-GCM) while a run waits or may be taken over, so a
    # run resumed by an admin's approval, the expiry or a takeover calls upstreams as its
    # owner. Unset: such a resumed run forwards no metadata (never the approver's).
    seal_key_env: str = ""


# --- guardrails, memory, alerts --------------------------------------------------------

GUARDS = ("rules", "model")
CRITERIA = ("supported", "no_foreign_data", "policy")


@dataclass(frozen=True)
class GuardrailsConfig:
    """Input checks are on by default; output guards only when listed in ``output``."""

    input: bool = True  # size, deny patterns and the prompt-injection heuristic
    max_input_chars: int = 32_000  # task plus context JSON
    deny_patterns: tuple[str, ...] = ()  # regexes; a match in the input or answer blocks
    injection: Literal["flag", "block", "off"] = "flag"  # what the injection heuristic does
    tool_results: bool = True  # flag instruction-like content in tool results on its step
    output: tuple[str, ...] = ()  # output guards in order: "rules", "model"
    keywords: tuple[str, ...] = ()  # rules: words an answer must not contain (blocks)
    output_schema: str = ""  # rules: JSON Schema file that output_json must match
    criteria: tuple[str, ...] = CRITERIA  # what the model guard judges
    policy: str = ""  # deployment policy text for the model guard
    on_flag: Literal["return", "block"] = "return"


@dataclass(frozen=True)
class MemoryConfig:
    enabled: bool = True  # memory_* tools for authenticated principals
    # Metadata naming the user to act for; like RunRequest.user_id, only admin/impersonate.
    user_header: str = "x-user-id"
    # The anonymous principal (auth off) gets memory tools and history only when this is true;
    # then every anonymous caller shares one memory and history scope.
    allow_anonymous: bool = False
    recall_limit: int = 8
    max_memory_chars: int = 2_000
    history_runs: int = 5  # earlier runs of the conversation shown to planner and responder
    history_chars: int = 3_000


@dataclass(frozen=True)
class AlertsConfig:
    webhooks: tuple[str, ...] = ()  # http(s) URLs receiving a JSON POST per alert
    log: bool = True
    on_failed_run: bool = True
    on_guardrail: bool = True  # a flag or block verdict
    on_negative_feedback: bool = True
    retries: int = 4  # delivery attempts after the first
    backoff_s: float = 0.5  # doubled per attempt, capped at 30 s
    timeout_s: float = 5.0


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"
    format: Literal["auto", "json", "console"] = "auto"


# --- telemetry and pricing (observability) ------------------------------------------------


@dataclass(frozen=True)
class TelemetryConfig:
    """Span content; exporters follow the standard OTEL_* variables instead of this file."""

    # Prompts, completions, tool arguments and results on spans. Off: they may hold personal data.
    capture_content: bool = False
    max_content_chars: int = 4_000  # per attribute, after which the text is cut


@dataclass(frozen=True)
class PriceConfig:
    """One model's price in US dollars per million tokens."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    upstreams: tuple[UpstreamConfig, ...] = ()
    models: Mapping[str, ModelConfig] = field(default_factory=dict)  # one per role
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    embedded: EmbeddedConfig = field(default_factory=EmbeddedConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    approvals: ApprovalsConfig = field(default_factory=ApprovalsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    guardrails: GuardrailsConfig = field(default_factory=GuardrailsConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    pricing: Mapping[str, PriceConfig] = field(default_factory=dict)  # keyed by model name
    # [prompts]: prompt name -> text file replacing that template (paths resolved at load).
    prompts: Mapping[str, str] = field(default_factory=dict)
    source: str = "<defaults>"

    @property
    def uses_embedded_model(self) -> bool:
        return any(m.base_url is None for m in self.models.values())


_LLM_KEYS = {f.name for f in dataclasses.fields(ModelConfig)}


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (or only defaults and env when None) and apply environment overrides."""
    env = os.environ if env is None else env
    source = str(path) if path else "<defaults>"
    raw: dict[str, Any] = {}
    if path:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"{source}: file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    _apply_env(raw, env)
    return _Reader(source).config(raw, env)


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    """Fold AGENTD_SECTION_KEY variables into the raw TOML dict (values parsed as TOML)."""
    sections = {"server", "limits", "agent", "storage", "logging", "llm", "embedded"}
    sections |= {"guardrails", "memory", "alerts"}
    sections |= {"telemetry", "approvals"}
    for name, value in env.items():
        if not name.startswith("AGENTD_"):
            continue
        parts = name[len("AGENTD_") :].lower().split("_")
        section = parts[0]
        if section not in sections or len(parts) < 2:
            continue
        table = raw.setdefault(section, {})
        rest = parts[1:]
        # Nested tables: AGENTD_LLM_PLANNER_MODEL, AGENTD_SERVER_AUTH_TLS_CERT,
        # AGENTD_SERVER_AUTH_CERT_ROLES_<NAME>.
        descended = True
        while descended:
            descended = False
            for i in range(1, len(rest)):
                name = "_".join(rest[:i])
                if name in _NESTED.get(section, ()) or isinstance(table.get(name), dict):
                    section, table, rest = f"{section}.{name}", table.setdefault(name, {}), rest[i:]
                    descended = True
                    break
        table["_".join(rest)] = _parse_env_value(value)


# Tables inside sections that AGENTD_ variables may reach even when the file does not have them.
_NESTED: dict[str, tuple[str, ...]] = {
    "llm": ROLES,
    "server": ("auth",),
    "server.auth": ("cert_roles",),
}


def _parse_env_value(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value  # a bare string


class _Reader:
    """Turns the raw dict into dataclasses, naming ``file: key`` in every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {message}")

    def table(self, raw: Mapping[str, Any], key: str) -> dict[str, Any]:
        value = raw.get(key.rsplit(".", 1)[-1], {})
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, got {type(value).__name__}")
        return value

    def fill(self, cls: type, raw: Mapping[str, Any], prefix: str, skip: set[str] = set()) -> Any:  # noqa: B006
        """Build dataclass ``cls`` from ``raw``, checking unknown keys and value types."""
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}
        unknown = set(raw) - set(fields) - skip
        if unknown:
            key = sorted(unknown)[0]
            raise self.fail(f"{prefix}{key}", f"unknown key (known: {', '.join(sorted(fields))})")
        values: dict[str, Any] = {}
        for name, value in raw.items():
            if name in skip:
                continue
            values[name] = self.check(f"{prefix}{name}", value, _default(fields[name]))
        return values

    def check(self, key: str, value: Any, expected: Any) -> Any:
        if expected is None:
            return value
        if isinstance(expected, bool):
            if not isinstance(value, bool):
                raise self.fail(key, f"must be true or false, got {value!r}")
        elif isinstance(expected, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(key, f"must be a number, got {value!r}")
            if value < 0:
                raise self.fail(key, f"must not be negative, got {value!r}")
            return float(value)
        elif isinstance(expected, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(key, f"must be an integer, got {value!r}")
            if value < 0:
                raise self.fail(key, f"must not be negative, got {value!r}")
        elif isinstance(expected, str) and not isinstance(value, str):
            raise self.fail(key, f"must be a string, got {value!r}")
        elif isinstance(expected, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.fail(key, f"must be a list of strings, got {value!r}")
            return tuple(value)
        return value

    def config(self, raw: dict[str, Any], env: Mapping[str, str]) -> Config:
        known = {"server", "upstreams", "llm", "embedded", "limits", "agent", "storage"}
        known |= {"logging", "approvals"}
        known |= {"guardrails", "memory", "alerts"}
        known |= {"telemetry", "pricing"}
        known |= {"prompts"}
        for key in raw:
            if key not in known:
                raise self.fail(key, f"unknown section (known: {', '.join(sorted(known))})")
        server_raw = self.table(raw, "server")
        auth = self.auth(self.table(server_raw, "server.auth"))
        server = ServerConfig(**self.fill(ServerConfig, server_raw, "server.", {"auth"}), auth=auth)
        _check_listen(self, server.listen)
        if server.health_listen:
            _check_listen(self, server.health_listen, "server.health_listen")
        if server.event_loop not in ("auto", "uvloop", "asyncio"):
            raise self.fail("server.event_loop", "must be auto, uvloop or asyncio")
        limits = LimitsConfig(**self.fill(LimitsConfig, self.table(raw, "limits"), "limits."))
        agent = AgentConfig(**self.fill(AgentConfig, self.table(raw, "agent"), "agent."))
        if agent.mode not in ("plan_execute", "react"):
            raise self.fail("agent.mode", f"must be plan_execute or react, got {agent.mode!r}")
        embedded = EmbeddedConfig(
            **self.fill(EmbeddedConfig, self.table(raw, "embedded"), "embedded.")
        )
        alias = embedded_alias(embedded.model)
        if embedded.slots < 1 or embedded.context < 512:
            raise self.fail("embedded", "slots must be at least 1 and context at least 512")
        storage = StorageConfig(**self.fill(StorageConfig, self.table(raw, "storage"), "storage."))
        if storage.lease_s <= 0 or storage.takeover_s <= 0:
            raise self.fail("storage", "lease_s and takeover_s must be positive")
        if storage.pool_size < 1:
            raise self.fail("storage.pool_size", "must be at least 1")
        if storage.pool_timeout_s <= 0:
            raise self.fail("storage.pool_timeout_s", "must be positive")
        approvals = ApprovalsConfig(
            **self.fill(ApprovalsConfig, self.table(raw, "approvals"), "approvals.")
        )
        if approvals.on_expiry not in ("expire", "reject"):
            raise self.fail("approvals.on_expiry", "must be expire or reject")
        logging = LoggingConfig(**self.fill(LoggingConfig, self.table(raw, "logging"), "logging."))
        if logging.format not in ("auto", "json", "console"):
            raise self.fail("logging.format", "must be auto, json or console")
        if logging.level.lower() not in ("debug", "info", "warning", "error"):
            raise self.fail("logging.level", "must be debug, info, warning or error")
        return Config(
            server=server,
            upstreams=self.upstreams(
                raw.get("upstreams", []), bool(auth.bearer_tokens_env or auth.bearer_tokens_file)
            ),
            models={
                role: model if model.base_url else dataclasses.replace(model, model=alias)
                for role, model in self.models(self.table(raw, "llm"), env).items()
            },
            limits=limits,
            agent=agent,
            embedded=embedded,
            storage=storage,
            approvals=approvals,
            logging=logging,
            **self.issue5_sections(raw),
            **self.observability_sections(raw, env),
            prompts=self.prompts(self.table(raw, "prompts")),
            source=self.source,
        )

    def auth(self, raw: dict[str, Any]) -> AuthConfig:
        """[server.auth], complete or an error naming the missing key (never silent plaintext)."""
        values = self.fill(AuthConfig, raw, "server.auth.", {"cert_roles"})
        roles = raw.get("cert_roles", {})
        if not isinstance(roles, dict):
            raise self.fail("server.auth.cert_roles", "must be a table of name = [roles]")
        for name, items in roles.items():
            roles[name] = self.check(f"server.auth.cert_roles.{name}", items, ())
        auth = AuthConfig(**values, cert_roles=roles)
        for key in ("bearer_tokens_env", "bearer_tokens_file", "tls_cert", "tls_key", "client_ca"):
            value = getattr(auth, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise self.fail(f"server.auth.{key}", "must be a non-empty string")
        if auth.tls_cert and not auth.tls_key:
            raise self.fail("server.auth.tls_key", "is required with tls_cert (the private key)")
        if auth.tls_key and not auth.tls_cert:
            raise self.fail("server.auth.tls_cert", "is required with tls_key (the certificate)")
        if auth.client_ca and not auth.tls_cert:
            raise self.fail(
                "server.auth.tls_cert", "is required with client_ca (mTLS needs a TLS server)"
            )
        if auth.gateway_header and not auth.gateway_identity:
            raise self.fail(
                "server.auth.gateway_identity", "is required with gateway_header (whose to trust)"
            )
        if auth.gateway_identity and not auth.gateway_header:
            raise self.fail("server.auth.gateway_header", "is required with gateway_identity")
        if auth.gateway_header and not auth.client_ca:
            raise self.fail(
                "server.auth.client_ca", "is required with gateway_header (the gateway uses mTLS)"
            )
        for key in ("tls_cert", "tls_key", "client_ca", "bearer_tokens_file"):
            value = getattr(auth, key)
            if value and not Path(value).is_file():
                raise self.fail(f"server.auth.{key}", f"file not found: {value}")
        return auth

    def issue5_sections(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The [guardrails], [memory] and [alerts] tables, checked."""
        guard = GuardrailsConfig(
            **self.fill(GuardrailsConfig, self.table(raw, "guardrails"), "guardrails.")
        )
        for i, name in enumerate(guard.output):
            if name not in GUARDS:
                raise self.fail(f"guardrails.output[{i}]", f"must be one of {', '.join(GUARDS)}")
        for i, name in enumerate(guard.criteria):
            if name not in CRITERIA:
                raise self.fail(
                    f"guardrails.criteria[{i}]", f"must be one of {', '.join(CRITERIA)}"
                )
        for i, pattern in enumerate(guard.deny_patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise self.fail(f"guardrails.deny_patterns[{i}]", f"invalid regex: {exc}") from None
        if guard.injection not in ("flag", "block", "off"):
            raise self.fail("guardrails.injection", "must be flag, block or off")
        if guard.on_flag not in ("return", "block"):
            raise self.fail("guardrails.on_flag", "must be return or block")
        if guard.output_schema and not Path(guard.output_schema).is_file():
            raise self.fail("guardrails.output_schema", f"no file {guard.output_schema!r}")
        memory = MemoryConfig(**self.fill(MemoryConfig, self.table(raw, "memory"), "memory."))
        alerts = AlertsConfig(**self.fill(AlertsConfig, self.table(raw, "alerts"), "alerts."))
        for i, url in enumerate(alerts.webhooks):
            if not url.startswith(("http://", "https://")):
                raise self.fail(f"alerts.webhooks[{i}]", "must be an http:// or https:// URL")
        return {"guardrails": guard, "memory": memory, "alerts": alerts}

    def observability_sections(self, raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
        """The [telemetry] and [pricing."MODEL"] tables, checked."""
        telemetry_raw = self.table(raw, "telemetry")
        if "capture_content" not in telemetry_raw:
            # The GenAI instrumentations' standard switch, honoured as the default.
            flag = env.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
            telemetry_raw = {**telemetry_raw, "capture_content": flag.lower() in ("true", "1")}
        telemetry = TelemetryConfig(**self.fill(TelemetryConfig, telemetry_raw, "telemetry."))
        pricing: dict[str, PriceConfig] = {}
        for model, table in self.table(raw, "pricing").items():
            key = f'pricing."{model}"'
            if not isinstance(table, dict):
                raise self.fail(key, "must be a table: input_per_mtok = ..., output_per_mtok = ...")
            pricing[model] = PriceConfig(**self.fill(PriceConfig, table, key + "."))
        return {"telemetry": telemetry, "pricing": pricing}

    def prompts(self, raw: dict[str, Any]) -> dict[str, str]:
        """[prompts] name = "file.txt": relative paths are relative to the config file."""
        base = Path(self.source).parent if self.source != "<defaults>" else Path()
        paths: dict[str, str] = {}
        for name, value in raw.items():
            key = f"prompts.{name}"
            if name not in PROMPT_NAMES:
                raise self.fail(key, f"unknown prompt (known: {', '.join(sorted(PROMPT_NAMES))})")
            if not isinstance(value, str) or not value:
                raise self.fail(key, "must be the path of a text file")
            path = Path(value) if Path(value).is_absolute() else base / value
            if not path.is_file():
                raise self.fail(key, f"no file {str(path)!r}")
            paths[name] = str(path)
        return paths

    def upstreams(self, raw: Any, bearer: bool = False) -> tuple[UpstreamConfig, ...]:
        if not isinstance(raw, list):
            raise self.fail("upstreams", "must be an array of tables ([[upstreams]])")
        result: list[UpstreamConfig] = []
        names: set[str] = set()
        for i, item in enumerate(raw):
            prefix = f"upstreams[{i}]."
            if not isinstance(item, dict):
                raise self.fail(f"upstreams[{i}]", "must be a table")
            for required in ("name", "target"):
                if not isinstance(item.get(required), str) or not item[required]:
                    raise self.fail(prefix + required, "is required (a non-empty string)")
            values = self.fill(UpstreamConfig, item, prefix, {"name", "target", "methods"})
            methods = item.get("methods", {})
            if not isinstance(methods, dict):
                raise self.fail(prefix + "methods", "must be a table of method = policy")
            for method, policy in methods.items():
                if policy not in POLICIES:
                    raise self.fail(f"{prefix}methods.{method}", "must be allow, approve or deny")
            up = UpstreamConfig(name=item["name"], target=item["target"], methods=methods, **values)
            if up.side_effects not in POLICIES:
                raise self.fail(prefix + "side_effects", "must be allow, approve or deny")
            if not up.allow:
                raise self.fail(prefix + "allow", "is required: list the methods agents may call")
            if up.name in names:
                raise self.fail(prefix + "name", f"duplicate upstream name {up.name!r}")
            if bearer:
                up = self.inbound_credential(up, "forward_metadata" in item, prefix)
            names.add(up.name)
            result.append(up)
        return tuple(result)

    def inbound_credential(self, up: UpstreamConfig, explicit: bool, prefix: str) -> UpstreamConfig:
        """With bearer auth on, the caller's `authorization` is agentd's own token: an upstream
        gets it only when its config says so (``forward_inbound_credential``), never by default,
        because an upstream holding it could call agentd as that caller."""
        if not explicit:
            return dataclasses.replace(up, forward_metadata=())
        sources = {name.lower().partition("=")[0].strip() for name in up.forward_metadata}
        if "authorization" in sources and not up.forward_inbound_credential:
            raise self.fail(
                prefix + "forward_metadata",
                "with server.auth bearer tokens on, 'authorization' is agentd's own token and"
                " this upstream could replay it against agentd; forward the upstream's credential"
                ' under another header and rename it (["x-upstream-authorization=authorization"]),'
                f" or set {prefix}forward_inbound_credential = true to send agentd's token to it",
            )
        return up

    def models(self, raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, ModelConfig]:
        defaults = {k: v for k, v in raw.items() if k not in ROLES}
        for key in defaults:
            if key not in _LLM_KEYS:
                raise self.fail(
                    f"llm.{key}", f"unknown key (known: {', '.join(sorted(_LLM_KEYS))})"
                )
        if "base_url" not in defaults and env.get("OPENAI_BASE_URL"):
            defaults["base_url"] = env["OPENAI_BASE_URL"]
        models: dict[str, ModelConfig] = {}
        for role in ROLES:
            role_raw = raw.get(role, {})
            if not isinstance(role_raw, dict):
                raise self.fail(f"llm.{role}", "must be a table")
            merged = {**defaults, **role_raw}
            for key in merged:
                if key not in _LLM_KEYS:
                    raise self.fail(f"llm.{role}.{key}", "unknown key")
            models[role] = self.model(role, merged)
        return models

    def model(self, role: str, merged: dict[str, Any]) -> ModelConfig:
        prefix = f"llm.{role}." if role else "llm."
        reference = ModelConfig(base_url=None, model="")
        values: dict[str, Any] = {}
        for key, value in merged.items():
            expected = getattr(reference, key)
            if key == "base_url":
                if value is not None and not isinstance(value, str):
                    raise self.fail(prefix + key, "must be a URL string")
                values[key] = value or None
                continue
            values[key] = self.check(prefix + key, value, expected)
        base_url = values.get("base_url")
        if base_url is None:
            # llama.cpp has no tool calling here: the embedded model decodes under a grammar.
            values["model"] = DEFAULT_EMBEDDED_MODEL
            values["tool_call_mode"] = "structured"
        elif not values.get("model"):
            raise self.fail(prefix + "model", "is required when base_url is set")
        if values.get("tool_call_mode", "native") not in ("native", "structured"):
            raise self.fail(prefix + "tool_call_mode", "must be native or structured")
        if values.get("http_client", "auto") not in ("auto", "httpx", "aiohttp"):
            raise self.fail(prefix + "http_client", "must be auto, httpx or aiohttp")
        return ModelConfig(**{"base_url": base_url, "model": values.pop("model", ""), **values})


def _default(f: dataclasses.Field[Any]) -> Any:
    """A field's default, whose type a configured value must have (None: unchecked)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _check_listen(reader: _Reader, listen: str, key: str = "server.listen") -> None:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise reader.fail(key, f"must be host:port, got {listen!r}")


def describe(config: Config, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The resolved config as plain data with secrets masked (for ``agentd config check``)."""
    env = os.environ if env is None else env
    data = dataclasses.asdict(config)
    for role, model in config.models.items():
        key = env.get(model.api_key_env)
        data["models"][role]["api_key"] = _mask(key) if key else f"(unset: ${model.api_key_env})"
        if model.base_url is None:
            data["models"][role]["base_url"] = "(embedded llama.cpp)"
    auth = config.server.auth
    if auth.bearer_tokens_env:
        raw = env.get(auth.bearer_tokens_env, "").replace("\n", ";")
        count = len([t for t in raw.split(";") if t.strip()])
        data["server"]["auth"]["bearer_tokens"] = f"{count} token(s) from ${auth.bearer_tokens_env}"
    return data


def _mask(secret: str) -> str:
    return "****" if len(secret) < 12 else f"{secret[:3]}…{secret[-2:]} ({len(secret)} chars)"
