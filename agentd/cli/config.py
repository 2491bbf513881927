"""``agentd config check FILE``: validate a config and print it resolved, secrets masked."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from agentd.cli.common import Exit, add_command, fail


def add_commands(commands: Any) -> None:
    config = add_command(
        commands,
        "config",
        "check a config file",
        "Work with agentd's TOML config.",
        "  agentd config check examples/agentd.toml",
    )
    actions = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = add_command(
        actions,
        "check",
        "validate FILE and print the resolved config, secrets masked",
        "Validate FILE with the environment's AGENTD_* overrides, the bearer "
        "tokens it names and the embedded model; print the resolved config as JSON on stdout "
        "(secrets masked) and the auth mode on stderr. Exit 2 with one line naming the key "
        "when it is not valid.",
        "  agentd config check examples/agentd.toml\n"
        "  AGENTD_LLM_MODEL=gpt-4o agentd config check agentd.toml | jq .llm",
    )
    check.add_argument("file", metavar="FILE", help="the TOML config to check")
    check.set_defaults(func=lambda args: config_check(args.file))


def config_check(path: str) -> int:
    from agentd.api.identity import auth_mode, load_tokens
    from agentd.cli.serve import check_examples
    from agentd.config import ConfigError, describe, load_config
    from agentd.llm.bundled import ModelFileError, model_alias

    try:
        config = load_config(path)
        load_tokens(config.server.auth, os.environ)  # a malformed entry names its line
        check_examples(config)
        if config.uses_embedded_model:
            model_alias(config.embedded.model)  # a bundled model's name or a .gguf path
    except (ConfigError, ModelFileError) as exc:
        return fail(str(exc), Exit.USAGE)
    print(json.dumps(describe(config), indent=2, default=str))
    # How callers are identified, in one line (stderr: stdout stays JSON for scripts).
    print(f"agentd: {path} is valid; {auth_mode(config.server.auth)}", file=sys.stderr)
    return 0
