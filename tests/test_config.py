"""Config loading: defaults, env overrides, and errors that name the key and the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agentd.config import (
    DEFAULT_EMBEDDED_MODEL,
    EMBEDDED_LIMITS,
    EMBEDDED_LLM,
    ConfigError,
    LimitsConfig,
    ModelConfig,
    describe,
    load_config,
)

ROOT = Path(__file__).resolve().parent.parent
GOOD = """
[server]
listen = "127.0.0.1:6000"

[[upstreams]]
name = "ledger"
target = "127.0.0.1:50061"
allow = ["examples.ledger.v1.LedgerService/*"]
methods = { "examples.ledger.v1.LedgerService/UpdateVendor" = "deny" }

[llm]
base_url = "http://127.0.0.1:8000/v1"
model = "m-default"
api_key_env = "MY_KEY"

[llm.planner]
model = "m-planner"
tool_call_mode = "structured"

[limits]
max_steps = 5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agentd.toml"
    path.write_text(text)
    return path


def test_roles_inherit_llm_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env={})
    assert config.models["planner"].model == "m-planner"
    assert config.models["planner"].tool_call_mode == "structured"
    assert config.models["executor"].model == "m-default"
    assert config.models["guard"].base_url == "http://127.0.0.1:8000/v1"
    assert config.limits.max_steps == 5 and config.limits.max_replans == 2
    assert config.upstreams[0].methods == {"examples.ledger.v1.LedgerService/UpdateVendor": "deny"}
    assert config.upstreams[0].forward_metadata == ("authorization",)


def test_env_overrides(tmp_path: Path) -> None:
    env = {
        "AGENTD_LIMITS_MAX_STEPS": "3",
        "AGENTD_LLM_EXECUTOR_MODEL": "m-exec",
        "AGENTD_SERVER_LISTEN": "0.0.0.0:7000",
    }
    config = load_config(write(tmp_path, GOOD), env=env)
    assert config.limits.max_steps == 3
    assert config.models["executor"].model == "m-exec"
    assert config.server.listen == "0.0.0.0:7000"


def test_no_endpoint_means_the_embedded_model(tmp_path: Path) -> None:
    config = load_config(None, env={})
    assert config.uses_embedded_model
    assert all(
        m.model == DEFAULT_EMBEDDED_MODEL and m.tool_call_mode == "structured"
        for m in config.models.values()
    )
    with_env = load_config(
        None, env={"OPENAI_BASE_URL": "http://127.0.0.1:1/v1", "AGENTD_LLM_MODEL": "x"}
    )
    assert not with_env.uses_embedded_model


def test_the_embedded_model_plans_within_the_limits_it_was_measured_with(tmp_path: Path) -> None:
    measured = {k: getattr(load_config(None, env={}).limits, k) for k in EMBEDDED_LIMITS}
    assert measured == EMBEDDED_LIMITS  # nothing configured: what the suites ran with
    # A key the file or the environment sets wins; the others keep the measured values.
    path = write(tmp_path, "[limits]\nmax_result_chars = 6000\n")
    config = load_config(path, env={"AGENTD_LIMITS_MAX_STEPS": "9"})
    assert (config.limits.max_result_chars, config.limits.max_steps) == (6000, 9)
    assert config.limits.max_replans == EMBEDDED_LIMITS["max_replans"]
    assert {k: getattr(config.models["planner"], k) for k in EMBEDDED_LLM} == EMBEDDED_LLM
    # An empty base_url is the embedded model too (the loader's rule), so it gets them as well.
    empty = load_config(None, env={"AGENTD_LLM_BASE_URL": '""'})
    assert empty.uses_embedded_model and empty.limits.max_result_chars == 2500
    # A hosted planner keeps the general defaults.
    hosted = load_config(
        None, env={"OPENAI_BASE_URL": "http://127.0.0.1:1/v1", "AGENTD_LLM_MODEL": "x"}
    )
    assert hosted.limits == LimitsConfig()
    assert hosted.models["planner"].max_tokens == ModelConfig(base_url="x", model="x").max_tokens


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[server]\nlisten = 5", "server.listen"),
        ('[server]\nlisten = "nohost"', "server.listen"),
        ('[server]\nhealth_listen = "8081"', "server.health_listen"),
        ('[limits]\nmax_steps = "many"', "limits.max_steps"),
        ("[limits]\nmax_stepz = 3", "limits.max_stepz"),
        ("[bogus]\nx = 1", "bogus"),
        ('[[upstreams]]\nname = "a"\ntarget = "t"', "upstreams[0].allow"),
        (
            '[[upstreams]]\nname = "a"\ntarget = "t"\nallow = ["x"]\nside_effects = "maybe"',
            "upstreams[0].side_effects",
        ),
        ('[llm]\nbase_url = "http://x/v1"', "llm.planner.model"),
        (
            '[llm.planner]\ntool_call_mode = "psychic"\nbase_url = "http://x"\nmodel = "m"',
            "llm.planner.tool_call_mode",
        ),
        ('[server]\nevent_loop = "tokio"', "server.event_loop"),
        (
            '[llm]\nbase_url = "http://x"\nmodel = "m"\nhttp_client = "curl"',
            "llm.planner.http_client",
        ),
        ("not toml ===", "invalid TOML"),
        ("[storage]\npool_size = 0", "storage.pool_size"),
        ('[[upstreams]]\nname = "a"\ntarget = "t"\nallow = ["x"]\ntls = "yes"', "upstreams[0].tls"),
        ("[storage]\npool_timeout_s = -1", "storage.pool_timeout_s"),
    ],
)
def test_errors_name_the_key_and_the_file(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value).startswith(str(path))
    assert key in str(info.value)


def test_describe_masks_secrets(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env={})
    data = describe(config, env={"MY_KEY": "sk-very-secret-value-123"})
    text = str(data)
    assert "sk-very-secret-value-123" not in text
    assert data["models"]["planner"]["api_key"].startswith("sk-…")


def test_config_check_cli(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "agentd", "config", "check", str(write(tmp_path, GOOD))],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and '"m-planner"' in ok.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentd",
            "config",
            "check",
            str(write(tmp_path, "[limits]\nmax_steps = -1")),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "limits.max_steps" in bad.stderr
    usage = subprocess.run([sys.executable, "-m", "agentd", "run"], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr


def test_config_check_names_an_unknown_embedded_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """config itself does not know the bundled models (it imports nothing of agentd); the
    check command asks the model registry, so a typo still gets one line naming the key."""
    from agentd.cli import main

    assert main(["config", "check", str(write(tmp_path, '[embedded]\nmodel = "qwen9"'))]) == 2
    error = capsys.readouterr().err
    assert (
        error.startswith("agentd: embedded.model: unknown model 'qwen9'") and error.count("\n") == 1
    )


def test_example_config_is_valid() -> None:
    config = load_config(ROOT / "examples" / "agentd.toml", env={})
    assert [u.name for u in config.upstreams] == ["ledger", "calculator"]


UPSTREAM = '[[upstreams]]\nname = "a"\ntarget = "t"\nallow = ["x"]\n'


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (UPSTREAM + 'timeout_s = "ten"', "upstreams[0].timeout_s"),
        (UPSTREAM + "timeout_s = true", "upstreams[0].timeout_s"),
        (UPSTREAM + "timeout_s = -1", "upstreams[0].timeout_s"),
        (UPSTREAM + "ca_file = 5", "upstreams[0].ca_file"),
        (UPSTREAM + 'descriptor_set = ["a.binpb"]', "upstreams[0].descriptor_set"),
        (UPSTREAM + "methods = { m = 3 }", "upstreams[0].methods"),
        (UPSTREAM + 'deny = "x"', "upstreams[0].deny"),
        ('[server.auth]\nbearer_tokens_env = ["T"]', "server.auth.bearer_tokens_env"),
        ('[server.auth]\ncert_roles = { ops = "admin" }', "server.auth.cert_roles.ops"),
        ('[llm]\nbase_url = 5\nmodel = "m"', "llm.planner.base_url"),
        ('[pricing."gpt-4.1"]\ninput_per_mtok = "cheap"', 'pricing."gpt-4.1".input_per_mtok'),
        ('[pricing."gpt-4.1"]\ninput_per_mtok = 1\nper_call = 2', 'pricing."gpt-4.1".per_call'),
        ("[prompts]\nplanner = 3", "prompts.planner"),
    ],
)
def test_every_field_is_type_checked(tmp_path: Path, text: str, key: str) -> None:
    """Fields whose default is None (or whose values are tables and lists) are checked like
    the others: the error names the key and the file, one line."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert message.startswith(f"{path}: {key}"), message
    assert "\n" not in message


def test_env_values_are_type_checked(tmp_path: Path) -> None:
    """An environment override is checked like the file's value it replaces."""
    path = write(tmp_path, UPSTREAM)
    with pytest.raises(ConfigError, match=r": limits\.run_timeout_s: must be a number"):
        load_config(path, env={"AGENTD_LIMITS_RUN_TIMEOUT_S": "soon"})
    with pytest.raises(ConfigError, match=r": server\.auth\.tls_cert: must be a"):
        load_config(path, env={"AGENTD_SERVER_AUTH_TLS_CERT": "5"})


def test_reference_is_generated_from_the_models() -> None:
    """docs/config.md is what `make config-docs` writes, and names every key of every model
    (a new field without a description fails here)."""
    import dataclasses

    from agentd.config import Config
    from agentd.config.reference import reference

    text = reference()
    assert (ROOT / "docs" / "config.md").read_text() == text, "run `make config-docs`"

    def keys(cls: type, prefix: str) -> list[tuple[str, str]]:
        found = []
        for f in dataclasses.fields(cls):
            hint = cls.__pydantic_fields__[f.name].annotation
            if dataclasses.is_dataclass(hint):
                found += keys(hint, f"{prefix}{f.name}.")
            else:
                found.append((f"`{prefix}{f.name}`", f.default.description))
        return found

    from agentd.config import ModelConfig, PriceConfig, UpstreamConfig

    expected = keys(ModelConfig, "llm.") + keys(UpstreamConfig, "upstreams[].")
    expected += keys(PriceConfig, 'pricing."MODEL".')
    for f in dataclasses.fields(Config):
        hint = Config.__pydantic_fields__[f.name].annotation
        if dataclasses.is_dataclass(hint):
            expected += keys(hint, f"{f.name}.")
    for key, description in expected:
        assert description, f"{key} has no description"
        assert f"| {key} |" in text, key


def test_reference_check_command(tmp_path: Path) -> None:
    stale = tmp_path / "config.md"
    stale.write_text("old\n")
    run = [sys.executable, "-m", "agentd.config", "--check"]
    bad = subprocess.run([*run, str(stale)], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 1 and "make config-docs" in bad.stderr
    good = subprocess.run([*run, "docs/config.md"], capture_output=True, text=True, cwd=ROOT)
    assert good.returncode == 0, good.stderr
