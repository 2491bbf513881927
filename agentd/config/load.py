"""Reading a config: TOML file, ``AGENTD_*`` overrides, the models' validation, then the checks
that span fields or look at files. Every error is one line, ``file: key: what to fix``."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from agentd.config.models import (
    EMBEDDED_LIMITS,
    EMBEDDED_LLM,
    PROMPT_NAMES,
    ROLES,
    AuthConfig,
    Config,
    ExamplesConfig,
    ModelConfig,
    UpstreamConfig,
    embedded_alias,
)


class ConfigError(ValueError):
    """A config file or environment value that agentd cannot use; the message names the key."""


# The file's top-level tables: Config's fields, with [llm] read into `models`.
SECTIONS = sorted({f.name for f in dataclasses.fields(Config)} - {"models", "source"} | {"llm"})
# Tables AGENTD_<SECTION>_<KEY> reaches: the sections that are one table (not upstreams,
# pricing or prompts).
ENV_SECTIONS = {
    name for name, hint in typing.get_type_hints(Config).items() if dataclasses.is_dataclass(hint)
} | {"llm"}
# Tables inside sections that AGENTD_ variables may reach even when the file does not have them.
_NESTED: dict[str, tuple[str, ...]] = {
    "llm": ROLES,
    "server": ("auth",),
    "server.auth": ("cert_roles",),
}
_LLM_KEYS = sorted(f.name for f in dataclasses.fields(ModelConfig))
_ADAPTER = TypeAdapter(Config)


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
    for name, value in env.items():
        if not name.startswith("AGENTD_"):
            continue
        parts = name[len("AGENTD_") :].lower().split("_")
        section = parts[0]
        if section not in ENV_SECTIONS or len(parts) < 2:
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


def _parse_env_value(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value  # a bare string


class _Reader:
    """Raw dict -> validated Config -> checked Config, naming ``file: key`` in every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {message}")

    def config(self, raw: dict[str, Any], env: Mapping[str, str]) -> Config:
        for key in raw:
            if key not in SECTIONS:
                raise self.fail(key, f"unknown section (known: {', '.join(SECTIONS)})")
        data = {k: v for k, v in raw.items() if k != "llm"}
        data["models"] = self.llm(raw.get("llm", {}), env)
        limits = data.get("limits", {})
        if not data["models"]["planner"].get("base_url") and isinstance(limits, dict):
            # The embedded model plans: the limits it was measured with, unless set.
            data["limits"] = {**EMBEDDED_LIMITS, **limits}
        telemetry = data.get("telemetry", {})
        if isinstance(telemetry, dict) and "capture_content" not in telemetry:
            # The GenAI instrumentations' standard switch, honoured as the default.
            flag = env.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
            data["telemetry"] = {**telemetry, "capture_content": flag.lower() in ("true", "1")}
        data["source"] = self.source
        try:
            config = _ADAPTER.validate_python(data)
        except ValidationError as exc:
            raise self.error(exc.errors()[0], data) from None
        ups = data.get("upstreams", [])
        return self.checked(config, [isinstance(u, dict) and "forward_metadata" in u for u in ups])

    def llm(self, raw: Any, env: Mapping[str, str]) -> dict[str, Any]:
        """[llm] and [llm.ROLE] -> one ModelConfig table per role (the role's keys win)."""
        if not isinstance(raw, dict):
            raise self.fail("llm", f"must be a table, got {type(raw).__name__}")
        defaults = {k: v for k, v in raw.items() if k not in ROLES}
        for key in defaults:
            if key not in _LLM_KEYS:
                raise self.fail(f"llm.{key}", f"unknown key (known: {', '.join(_LLM_KEYS)})")
        if "base_url" not in defaults and env.get("OPENAI_BASE_URL"):
            defaults["base_url"] = env["OPENAI_BASE_URL"]
        models: dict[str, Any] = {}
        for role in ROLES:
            role_raw = raw.get(role, {})
            if not isinstance(role_raw, dict):
                raise self.fail(f"llm.{role}", "must be a table")
            models[role] = {**defaults, **role_raw}
            if not models[role].get("base_url"):  # the embedded model (as in `model`): its defaults
                models[role] = {**EMBEDDED_LLM, **models[role]}
        return models

    def error(self, error: Mapping[str, Any], data: Mapping[str, Any]) -> ConfigError:
        """pydantic's first error as ``file: key: what to fix``."""
        loc = tuple(error["loc"])
        kind, value = error["type"], error.get("input")
        ctx = error.get("ctx") or {}
        if kind in ("unexpected_keyword_argument", "extra_forbidden"):
            known = ", ".join(sorted(f.name for f in dataclasses.fields(_class_at(loc[:-1]))))
            return self.fail(_key(loc), f"unknown key (known: {known})")
        if kind == "string_type" and loc and isinstance(loc[-1], int):
            # An item of a list of strings: the list is what to fix.
            loc, kind, value = loc[:-1], "tuple_type", _value_at(data, loc[:-1])
        if kind == "literal_error":
            options = str(ctx.get("expected")).replace("'", "")
            if loc and isinstance(loc[-1], int):
                options = "one of " + options.replace(" or ", ", ")
            return self.fail(_key(loc), f"must be {options}")
        if kind in ("dict_type", "dataclass_type"):
            hint = _TABLES.get(str(loc[-2] if loc[0] == "pricing" else loc[-1]))
            return self.fail(_key(loc), hint or f"must be a table, got {type(value).__name__}")
        if kind == "greater_than_equal" and ctx.get("ge"):
            return self.fail(_key(loc), f"must be at least {ctx['ge']}")
        if kind == "value_error":
            return self.fail(_key(loc), str(ctx.get("error", error["msg"])))
        if loc == ("upstreams",) and kind == "tuple_type":
            return self.fail("upstreams", "must be an array of tables ([[upstreams]])")
        messages = {
            "missing": "is required (a non-empty string)",
            "bool_type": f"must be true or false, got {value!r}",
            "int_type": f"must be an integer, got {value!r}",
            "float_type": f"must be a number, got {value!r}",
            "string_type": f"must be a string, got {value!r}",
            "greater_than_equal": f"must not be negative, got {value!r}",
            "greater_than": "must be positive",
            "tuple_type": f"must be a list of strings, got {value!r}",
        }
        return self.fail(_key(loc), messages.get(kind, str(error["msg"])))

    def checked(self, config: Config, explicit_forward: list[bool]) -> Config:
        """What one field's type cannot say: pairs of keys, files, the embedded model's names."""
        auth = self.auth(config.server.auth)
        alias = embedded_alias(config.embedded.model)
        guard = config.guardrails
        if guard.output_schema and not Path(guard.output_schema).is_file():
            raise self.fail("guardrails.output_schema", f"no file {guard.output_schema!r}")
        return dataclasses.replace(
            config,
            upstreams=self.upstreams(
                config.upstreams,
                bool(auth.bearer_tokens_env or auth.bearer_tokens_file),
                explicit_forward,
            ),
            models={role: self.model(role, m, alias) for role, m in config.models.items()},
            prompts=self.prompts(config.prompts),
            examples=self.examples(config.examples),
        )

    def examples(self, examples: ExamplesConfig) -> ExamplesConfig:
        """[examples] file: relative to the config file. Its examples are checked when the daemon
        starts and by `agentd config check` (agentd.library.file)."""
        if not examples.file:
            return examples
        path = Path(examples.file)
        if not path.is_absolute() and self.source != "<defaults>":
            path = Path(self.source).parent / path
        if not path.is_file():
            raise self.fail("examples.file", f"no file {str(path)!r}")
        return dataclasses.replace(examples, file=str(path))

    def auth(self, auth: AuthConfig) -> AuthConfig:
        """[server.auth], complete or an error naming the missing key (never silent plaintext)."""
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

    def prompts(self, raw: Mapping[str, str]) -> dict[str, str]:
        """[prompts] name = "file.txt": relative paths are relative to the config file."""
        base = Path(self.source).parent if self.source != "<defaults>" else Path()
        paths: dict[str, str] = {}
        for name, value in raw.items():
            key = f"prompts.{name}"
            if name not in PROMPT_NAMES:
                raise self.fail(key, f"unknown prompt (known: {', '.join(sorted(PROMPT_NAMES))})")
            if not value:
                raise self.fail(key, "must be the path of a text file")
            path = Path(value) if Path(value).is_absolute() else base / value
            if not path.is_file():
                raise self.fail(key, f"no file {str(path)!r}")
            paths[name] = str(path)
        return paths

    def upstreams(
        self, ups: tuple[UpstreamConfig, ...], bearer: bool, explicit_forward: list[bool]
    ) -> tuple[UpstreamConfig, ...]:
        result: list[UpstreamConfig] = []
        names: set[str] = set()
        for i, up in enumerate(ups):
            prefix = f"upstreams[{i}]."
            if not up.allow:
                raise self.fail(prefix + "allow", "is required: list the methods agents may call")
            if up.name in names:
                raise self.fail(prefix + "name", f"duplicate upstream name {up.name!r}")
            if bearer:
                up = self.inbound_credential(up, explicit_forward[i], prefix)
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

    def model(self, role: str, model: ModelConfig, alias: str) -> ModelConfig:
        if not model.base_url:
            # llama.cpp has no tool calling here: the embedded model decodes under a grammar.
            return dataclasses.replace(
                model, base_url=None, model=alias, tool_call_mode="structured"
            )
        if not model.model:
            raise self.fail(f"llm.{role}.model", "is required when base_url is set")
        return model


# What a table that is not one should be, by key.
_TABLES = {
    "cert_roles": "must be a table of name = [roles]",
    "methods": "must be a table of method = policy",
    "pricing": "must be a table: input_per_mtok = ..., output_per_mtok = ...",
}


def _value_at(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        data = data[part]
    return data


def _key(loc: tuple[Any, ...]) -> str:
    """('upstreams', 0, 'timeout_s') -> upstreams[0].timeout_s; a table key that is not a bare
    TOML key is quoted: pricing."gpt-4.1".input_per_mtok."""
    if loc and loc[0] == "models":  # read from [llm] and [llm.ROLE]
        loc = ("llm", *loc[1:])
    key = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            bare = re.fullmatch(r"[A-Za-z0-9_-]+", str(part)) and (i, loc[0]) != (1, "pricing")
            name = str(part) if bare else f'"{part}"'
            key += f".{name}" if key else name
    return key


def _class_at(loc: tuple[Any, ...]) -> type:
    """The config class at ``loc`` (list indices and table keys step into their item type)."""
    cls: Any = Config
    for part in loc:
        if dataclasses.is_dataclass(cls) and isinstance(part, str):
            cls = typing.get_type_hints(cls)[part]
        else:
            args = typing.get_args(cls)
            cls = args[-1] if typing.get_origin(cls) is Mapping else args[0]
    return typing.cast(type, cls)


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
