"""agentd's configuration: one TOML file plus environment overrides, declared once as models.

Every error names the key and the file, so a user knows what to fix. Environment
variables override the file: ``AGENTD_<SECTION>_<KEY>`` (e.g. ``AGENTD_SERVER_LISTEN``,
``AGENTD_LLM_MODEL``, ``AGENTD_LLM_PLANNER_MODEL``, ``AGENTD_LIMITS_MAX_STEPS``), and the
openai SDK's ``OPENAI_BASE_URL`` is the default endpoint. With no endpoint anywhere,
agentd runs the embedded model. ``models`` declares the keys (types, defaults, descriptions:
docs/config.md is generated from them, ``python -m agentd.config --reference``); ``load``
reads a file into them.
"""

from agentd.config.load import ConfigError, describe, load_config
from agentd.config.models import (
    CRITERIA,
    DEFAULT_EMBEDDED_MODEL,
    EMBEDDED_LIMITS,
    EMBEDDED_LLM,
    GUARDS,
    POLICIES,
    PROMPT_NAMES,
    ROLES,
    AgentConfig,
    AlertsConfig,
    ApprovalsConfig,
    AuthConfig,
    Config,
    EmbeddedConfig,
    ExamplesConfig,
    GuardrailsConfig,
    LimitsConfig,
    LoggingConfig,
    MemoryConfig,
    ModelConfig,
    Policy,
    PriceConfig,
    ServerConfig,
    StorageConfig,
    TelemetryConfig,
    ToolCallMode,
    UpstreamConfig,
    embedded_alias,
)

__all__ = [
    "CRITERIA",
    "DEFAULT_EMBEDDED_MODEL",
    "EMBEDDED_LIMITS",
    "EMBEDDED_LLM",
    "GUARDS",
    "POLICIES",
    "PROMPT_NAMES",
    "ROLES",
    "AgentConfig",
    "AlertsConfig",
    "ApprovalsConfig",
    "AuthConfig",
    "Config",
    "ConfigError",
    "EmbeddedConfig",
    "ExamplesConfig",
    "GuardrailsConfig",
    "LimitsConfig",
    "LoggingConfig",
    "MemoryConfig",
    "ModelConfig",
    "Policy",
    "PriceConfig",
    "ServerConfig",
    "StorageConfig",
    "TelemetryConfig",
    "ToolCallMode",
    "UpstreamConfig",
    "describe",
    "embedded_alias",
    "load_config",
]
