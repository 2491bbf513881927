"""The ``agentd`` command: one module per command group, each adding its sub-commands.

serve.py (serve, health), config.py (config check), models.py (models list/install), run.py
(run, tools), runs.py (get, runs, approve, reject, trace), feedback.py (feedback rate/export),
examples.py (examples add/list/remove/export: the plan library),
evals.py (eval run/compare). channel.py declares the connection options once; common.py has
the exit codes (``Exit``) and the one-line failure.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import sys
from collections.abc import Sequence

from agentd.cli import config, evals, examples, feedback, models, run, runs, serve
from agentd.cli.common import CommandFailed, Exit, HelpFormatter

__all__ = ["build_parser", "main"]

EPILOG = """examples:
  agentd serve --config examples/agentd.toml
  agentd run "What did we spend on software in March 2025?"
  agentd run "Summarize spending by category" --schema answer.schema.json --json
  agentd run "Vendor ven_001's phone?" -H 'authorization: Bearer secret'
  agentd tools
  agentd config check examples/agentd.toml
  agentd trace RUN_ID               # the stored run as a tree, with timings, tokens and cost
  agentd COMMAND --help             # a command's options and examples

exit status:
  0 ok; 2 usage or config error; 3 daemon unreachable; 4 the daemon refused the request;
  5 the run (or health check) ended without succeeding; 130 interrupted.

environment:
  AGENTD_<SECTION>_<KEY> overrides a config key (AGENTD_LLM_MODEL, AGENTD_SERVER_LISTEN, ...);
  OPENAI_BASE_URL and OPENAI_API_KEY are the default model endpoint and key;
  AGENTD_TARGET is the default --target of the client commands; AGENTD_TOKEN, when set, is
  sent as 'authorization: Bearer $AGENTD_TOKEN' (unless -H gives an authorization).
"""

# Spellings from before these groups had sub-commands: `feedback RUN_ID --rating N` is
# `feedback rate RUN_ID ...` and `eval SUITE ...` is `eval run SUITE ...`.
IMPLIED_ACTION = {"feedback": "rate", "eval": "run"}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for documentation (``python -m agentd.cli --reference``)
    and tests."""
    parser = argparse.ArgumentParser(
        prog="agentd",
        description="LLM agents over the gRPC services you already run.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_commands(commands)  # serve, health
    run.add_commands(commands)  # run, tools
    config.add_commands(commands)
    models.add_commands(commands)
    runs.add_commands(commands)  # get, runs, approve, reject, trace
    feedback.add_commands(commands)
    examples.add_commands(commands)
    evals.add_commands(commands)
    return parser


def sub_commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """``parser``'s sub-commands by name (none when it has no sub-commands)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def with_implied_action(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """``argv`` with the action of an older spelling written out (see ``IMPLIED_ACTION``).

    The first positional argument after the group names the action when it is one (it is
    moved first: `feedback --db F export` is `feedback export --db F`); otherwise the implied
    action is inserted. Options that take a value are skipped with it."""
    argv = list(argv)
    if not argv or argv[0] not in IMPLIED_ACTION:
        return argv
    group, rest = argv[0], argv[1:]
    actions = sub_commands(sub_commands(parser)[group])
    takes_value = {
        flag
        for action_parser in actions.values()
        for option in action_parser._actions
        if option.nargs != 0
        for flag in option.option_strings
    }
    i = 0
    while i < len(rest):
        token = rest[i]
        if token in ("-h", "--help"):
            return argv  # the group's own help
        if token.startswith("-") and token != "-":
            i += 2 if token in takes_value else 1
            continue
        if token in actions:
            return [group, token, *rest[:i], *rest[i + 1 :]]
        return [group, IMPLIED_ACTION[group], *rest]
    return argv  # no action and no positional: the group's usage error names ACTION


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(with_implied_action(sys.argv[1:] if argv is None else argv, parser))
    try:
        result = args.func(args)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        return int(result)
    except CommandFailed as exc:
        return exc.code
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`agentd tools | head`): stop quietly, as cat and grep do.
        # Python would report the pipe again when it flushes stdout at exit; point it at null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit.OK
