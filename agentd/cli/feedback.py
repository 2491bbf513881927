"""``agentd feedback``: rate a run (``rate``), or export rated runs as JSONL (``export``).

The spelling from before the sub-commands, ``agentd feedback RUN_ID --rating N``, is ``rate``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from agentd.cli.channel import add_connection_options, agent_stub, listed_runs
from agentd.cli.common import Exit, add_command, fail
from agentd.v1 import agent_pb2


def add_commands(commands: Any) -> None:
    feedback = add_command(
        commands,
        "feedback",
        "rate a run (feedback rate RUN_ID --rating N), or export rated runs (feedback export)",
        "Feedback on stored runs: rate one (SubmitFeedback), or export the rated runs as JSONL "
        "for training or review. `agentd feedback RUN_ID --rating N` is `feedback rate`.",
        "  agentd feedback rate RUN_ID --rating -1 --comment 'wrong vendor' --label wrong_tool\n"
        "  agentd feedback export --db agentd.db > feedback.jsonl\n"
        "  agentd feedback export --db agentd.db --with-reward --weight cost=10 > train.jsonl",
    )
    actions = feedback.add_subparsers(dest="feedback_command", required=True, metavar="ACTION")
    rate = add_command(
        actions,
        "rate",
        "rate a run: -1/+1 (thumbs) or 1 to 5 (stars), with a comment and labels",
        "Store a rating of a run (SubmitFeedback), with an optional comment and labels; "
        "`agentd get RUN_ID` shows it. Only the run's owner and admins can rate it.",
        "  agentd feedback rate RUN_ID --rating 1\n"
        "  agentd feedback RUN_ID --rating -1 --label wrong_tool   # the same, older spelling",
    )
    rate.add_argument("run_id", metavar="RUN_ID", help="the run to rate")
    rate.add_argument(
        "--rating", type=int, required=True, help="-1 or +1 (thumbs), or 1 to 5 (stars)"
    )
    rate.add_argument("--comment", default="", help="free text")
    rate.add_argument("--label", action="append", default=[], help="a label (repeatable)")
    add_connection_options(rate)
    rate.set_defaults(func=submit_feedback)

    export = add_command(
        actions,
        "export",
        "print the rated runs as JSONL, from a run store file (--db) or a daemon",
        "JSON lines on stdout: each rated run as chat messages (task, tool calls and "
        "results, answer) with its feedback, then a preference pair (best and worst answer) "
        "per task rated both ways; with --with-reward each run's reward and its terms (see "
        "agentd eval). Read from the SQLite run store file (--db) or from a daemon (ListRuns, "
        "the connection options).",
        "  agentd feedback export --format jsonl --db agentd.db > feedback.jsonl\n"
        "  agentd feedback export --target 127.0.0.1:50051 > feedback.jsonl",
    )
    export.add_argument("--format", choices=["jsonl"], default="jsonl", help="export format")
    export.add_argument("--db", metavar="PATH", help="read this SQLite run store")
    export.add_argument(
        "--with-reward",
        action="store_true",
        help="add each run's reward and its terms (see agentd eval)",
    )
    export.add_argument(
        "--weight",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a reward weight (checks, feedback, guardrail, cost, latency)",
    )
    add_connection_options(export)
    export.set_defaults(func=export_feedback)


async def submit_feedback(args: argparse.Namespace) -> int:
    request = agent_pb2.SubmitFeedbackRequest(
        run_id=args.run_id, rating=args.rating, comment=args.comment, labels=args.label
    )
    async with agent_stub(args) as stub:
        await stub.SubmitFeedback(request, timeout=30)
    print(f"feedback stored for run {args.run_id}", file=sys.stderr)
    return 0


async def export_feedback(args: argparse.Namespace) -> int:
    """Rated runs as JSONL, read from the store file (--db) or from a daemon (--target)."""
    from agentd.api.feedback import export_jsonl

    if args.db:
        from agentd.store.sqlite import SqliteRunStore

        if not os.path.exists(args.db):
            return fail(f"--db {args.db}: no such file", Exit.USAGE)
        store = SqliteRunStore(args.db)
        try:
            runs = await store.runs_with_feedback()
        finally:
            await store.close()
    else:
        async with agent_stub(args) as stub:
            runs = await listed_runs(stub, agent_pb2.ListRunsRequest(with_feedback=True), 100_000)
    if args.with_reward:
        from agentd.evals.reward import with_rewards

        try:
            lines = list(with_rewards(export_jsonl(runs), runs, args.weight))
        except ValueError as exc:
            return fail(f"--weight: {exc}", Exit.USAGE)
    else:
        lines = list(export_jsonl(runs))
    for line in lines:
        print(line)
    return 0
