"""``agentd eval``: run a task suite against configs or daemons (``run``), or compare stored
evaluations (``compare``). The work is in agentd/evals/cli.py.

The spelling from before the sub-commands, ``agentd eval SUITE ...``, is ``run``.
"""

from __future__ import annotations

import argparse
from typing import Any

from agentd.cli.channel import add_connection_options
from agentd.cli.common import add_command


def add_commands(commands: Any) -> None:
    evaluate = add_command(
        commands,
        "eval",
        "run a task suite against configs or daemons and compare them "
        "(eval run SUITE --config A.toml --config B.toml; eval compare A.json B.json)",
        "Evaluations: run a task suite against one or more configs (each started "
        "in-process) or running daemons and show them side by side, or compare stored "
        "results. `agentd eval SUITE ...` is `eval run SUITE ...`.",
        "  agentd eval run evals/ledger.yaml --config A.toml --config B.toml --json out.json\n"
        "  agentd eval run evals/ledger.yaml --target 127.0.0.1:50051\n"
        "  agentd eval compare before.json after.json",
    )
    actions = evaluate.add_subparsers(dest="eval_command", required=True, metavar="ACTION")
    run = add_command(
        actions,
        "run",
        "run SUITE against each --config (in-process) and --target (a running daemon)",
        "Run every (selected) case of SUITE against each deployment, --repeat times, and "
        "print the table: pass rate, pass^k, tokens, cost and latency per deployment. "
        "Exit 2: a bad suite, config or option (nothing runs).",
        "  agentd eval run evals/ledger.yaml -c examples/agentd.toml -j 1\n"
        "  agentd eval run evals/ledger.yaml -c A.toml -c B.toml --cases 'vendor-*' --limit 5\n"
        "  agentd eval run evals/ledger.yaml -c A.toml --examples-from before.json --json after.json\n"
        "  agentd eval evals/ledger.yaml -c A.toml   # the same as `eval run`, older spelling",
    )
    run.add_argument("suite", metavar="SUITE", help="suite file (.yaml or .jsonl)")
    run.add_argument(
        "--config",
        "-c",
        action="append",
        default=[],
        help="config to start in-process (repeatable)",
    )
    run.add_argument("--repeat", "-k", type=int, default=1, help="runs per case (pass^k)")
    run.add_argument("--concurrency", "-j", type=int, default=4, help="cases at once")
    run.add_argument("--cases", action="append", default=[], help="case ids, globs or tags")
    run.add_argument("--limit", type=int, help="only the first N (selected) cases")
    run.add_argument("--timeout", type=float, default=300.0, help="deadline per run (s)")
    run.add_argument("--json", metavar="FILE", help="write the results as JSON")
    run.add_argument(
        "--keep-runs", metavar="DIR", help="in-process: keep each config's run store in DIR"
    )
    run.add_argument(
        "--examples-from",
        metavar="PRIOR.json",
        help="the plan library, measured leave-one-out: the plans of the passing runs of an"
        " earlier `eval run --json` of this suite are the examples; each --config runs without"
        " them and with them (label +examples), and no case is shown its own plan",
    )
    run.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    add_connection_options(run, many_targets=True)  # for --target daemons
    run.set_defaults(func=run_suite)

    compare = add_command(
        actions,
        "compare",
        "the table of two or more stored evaluations (eval run --json FILE)",
        "Compare evaluations written by `agentd eval run --json FILE`: one table, one "
        "column per file (named by its stem).",
        "  agentd eval compare before.json after.json",
    )
    compare.add_argument("files", nargs="+", metavar="FILE", help="evaluation JSON files")
    compare.set_defaults(func=compare_results)


def run_suite(args: argparse.Namespace) -> int:
    from agentd.evals.cli import run_eval

    return run_eval(args)


def compare_results(args: argparse.Namespace) -> int:
    from agentd.evals.cli import compare_files

    return compare_files(args.files)
