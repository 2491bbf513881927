"""Stored runs: ``get`` one, list the ``runs`` with a status, ``approve`` or ``reject`` the
calls a run waits on, and ``trace`` one as a timed tree."""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any

from agentd.cli.channel import add_connection_options, agent_stub, listed_runs
from agentd.cli.common import Exit, add_command, fail, print_json
from agentd.cli.run import show_event, show_final, verdict_line
from agentd.v1 import agent_pb2


def add_commands(commands: Any) -> None:
    get = add_command(
        commands,
        "get",
        "show a stored run",
        "A stored run (GetRun), also one in progress: its task, steps, answer and summary, "
        "guardrail verdicts and feedback. Only its owner and admins see it; anyone else gets "
        "NOT_FOUND (exit 4).",
        "  agentd get RUN_ID\n  agentd get RUN_ID --json | jq .steps",
    )
    get.add_argument("run_id", metavar="RUN_ID", help="the run's id (agentd run prints it)")
    get.add_argument("--json", action="store_true", help="print the RunResponse as JSON")
    add_connection_options(get)
    get.set_defaults(func=get_run)

    runs = add_command(
        commands,
        "runs",
        "list stored runs with a status",
        "One line per stored run with the status (ListRuns): id, start time, task, and the "
        "call it waits on if any.",
        "  agentd runs --status needs_approval\n  agentd runs --status failed --limit 20",
    )
    runs.add_argument(
        "--status",
        required=True,
        help="running, needs_approval, succeeded, failed, ... (a RunStatus without its prefix)",
    )
    runs.add_argument("--limit", type=int, default=0, help="at most this many (0: 1000)")
    add_connection_options(runs)
    runs.set_defaults(func=list_runs)

    approve = add_command(
        commands,
        "approve",
        "approve the call(s) a run waits on and resume it (prints the run when it ends)",
        "Approve the pending calls of a run that needs approval (ApproveRun), each as planned "
        "or one with edited arguments, and resume it; prints the run when it ends.",
        "  agentd approve RUN_ID\n"
        '  agentd approve RUN_ID --call s2 --arguments \'{"vendor": {"id": "ven_001"}}\'',
    )
    reject = add_command(
        commands,
        "reject",
        "reject the call(s) a run waits on; the model sees the reason",
        "Reject the pending calls of a run that needs approval (ApproveRun) and resume it: "
        "the model sees the reason and answers without them.",
        "  agentd reject RUN_ID --reason 'the vendor asked us to keep the old number'",
    )
    for decide, approving in ((approve, True), (reject, False)):
        decide.add_argument("run_id", metavar="RUN_ID", help="the run's id (agentd run prints it)")
        decide.add_argument(
            "--call",
            metavar="STEP",
            action="append",
            default=[],
            help="the pending call's step id (repeatable; default: every pending call)",
        )
        decide.add_argument(
            "--request-id",
            default="",
            help="makes a retry safe: a repeat returns the run and decides nothing again "
            "(default: a new UUID)",
        )
        decide.add_argument("--json", action="store_true", help="print the RunResponse as JSON")
        add_connection_options(decide)
        decide.set_defaults(func=decide_run, approve=approving)
    approve.add_argument(
        "--arguments", metavar="JSON", help="run the call with these arguments instead (edit)"
    )
    reject.add_argument("--reason", required=True, help="why; the model sees it")

    watch = add_command(
        commands,
        "watch",
        "follow a run's events, also one started elsewhere or on another replica",
        "Stream a run's events (WatchRun) from any replica: the ones after --after, then the "
        "live ones, until the run ends or waits for approval; prints each event's sequence "
        "number, so a broken watch resumes with --after N. Only its owner and admins see it.",
        "  agentd watch RUN_ID\n  agentd watch RUN_ID --after 7",
    )
    watch.add_argument("run_id", metavar="RUN_ID", help="the run's id (agentd run prints it)")
    watch.add_argument(
        "--after", type=int, default=0, help="only events after this sequence number (0: all)"
    )
    watch.add_argument("--json", action="store_true", help="print each RunEvent as JSON")
    add_connection_options(watch)
    watch.set_defaults(func=watch_run)

    trace = add_command(
        commands,
        "trace",
        "show a stored run as a tree: planning, model calls and tool calls with timings",
        "A stored run as a tree in the terminal, from its record alone (no tracing backend): "
        "every planning round with its model calls, every tool call and model call, ordered "
        "by start time, with offsets, durations, tokens, cost and errors.",
        "  agentd trace RUN_ID",
    )
    trace.add_argument("run_id", metavar="RUN_ID", help="the run's id (agentd run prints it)")
    add_connection_options(trace)
    trace.set_defaults(func=trace_run)


async def get_run(args: argparse.Namespace) -> int:
    async with agent_stub(args) as stub:
        run = await stub.GetRun(agent_pb2.GetRunRequest(run_id=args.run_id), timeout=30)
    if args.json:
        print_json(run)
        return 0
    print(f"task: {run.task}")
    for step in run.steps:
        status = agent_pb2.StepStatus.Name(step.status).removeprefix("STEP_STATUS_").lower()
        flags = f"  flags: {'; '.join(step.flags)}" if step.flags else ""
        print(f"  {step.id} {step.tool} {status}{flags}")
    show_final(run)
    for verdict in run.verdicts:
        print(verdict_line(verdict))
    for item in run.feedback:
        print(f"feedback {item.rating:+d} {list(item.labels) or ''} {item.comment}".rstrip())
    return 0


async def list_runs(args: argparse.Namespace) -> int:
    """One line per run with the status: id, start time, task, and the pending call if any."""
    name = "RUN_STATUS_" + args.status.upper()
    names = [agent_pb2.RunStatus.Name(v) for v in agent_pb2.RunStatus.values()][1:]
    if name not in names:
        known = ", ".join(k.removeprefix("RUN_STATUS_").lower() for k in names)
        return fail(f"--status {args.status}: unknown; use one of {known}", Exit.USAGE)
    request = agent_pb2.ListRunsRequest(status=name)  # the enum value by name, checked above
    async with agent_stub(args) as stub:
        runs = await listed_runs(stub, request, args.limit if args.limit > 0 else 1000)
    for run in runs:
        started = run.start_time.ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ")
        pending = ""
        if run.HasField("pending_call"):
            pending = f"  pending {run.pending_call.step_id} {run.pending_call.tool}"
        print(f"{run.run_id}  {started}  {run.task[:60]!r}{pending}")
    return 0


async def decide_run(args: argparse.Namespace) -> int:
    """approve / reject: one decision per pending call (the named ones, else all of them)."""
    edit = None
    if getattr(args, "arguments", None):
        try:
            edit = json.loads(args.arguments)
        except json.JSONDecodeError as exc:
            return fail(f"--arguments: not valid JSON ({exc})", Exit.USAGE)
        if not isinstance(edit, dict):
            return fail("--arguments: must be a JSON object", Exit.USAGE)
    approve = args.approve
    async with agent_stub(args) as stub:
        calls = list(args.call)
        if not calls:
            waiting = await stub.GetRun(agent_pb2.GetRunRequest(run_id=args.run_id), timeout=30)
            calls = [p.step_id for p in waiting.pending_calls]
        if edit is not None and len(calls) != 1:
            return fail("--arguments: edits one call; name it with --call STEP", Exit.USAGE)
        decisions = []
        for step_id in calls:
            decision = agent_pb2.CallDecision(step_id=step_id, approve=approve)
            if approve and edit is not None:
                decision.arguments.update(edit)
            if not approve:
                decision.reason = args.reason
            decisions.append(decision)
        request = agent_pb2.ApproveRunRequest(
            run_id=args.run_id,
            request_id=args.request_id or str(uuid.uuid4()),
            decisions=decisions,
        )
        final = await stub.ApproveRun(request, timeout=600)
    if args.json:
        print_json(final)
    else:
        show_final(final)
    return 0


async def watch_run(args: argparse.Namespace) -> int:
    """The events after --after, each with its sequence number; the final record last."""
    request = agent_pb2.WatchRunRequest(run_id=args.run_id, after=args.after)
    final: agent_pb2.RunResponse | None = None
    async with agent_stub(args) as stub:
        async for event in stub.WatchRun(request):
            if args.json:
                print_json(event)
            elif event.HasField("final"):
                print(f"#{event.sequence}")
            else:
                print(f"#{event.sequence} ", end="")
                show_event(event)
            if event.HasField("final"):
                final = event.final
    if final is None:  # nothing after --after: the run's end was seen already
        return Exit.OK
    if not args.json:
        show_final(final)
    return Exit.OK if final.status == agent_pb2.RUN_STATUS_SUCCEEDED else Exit.NOT_SUCCEEDED


async def trace_run(args: argparse.Namespace) -> int:
    from agentd.cli.trace_view import render

    async with agent_stub(args) as stub:
        run = await stub.GetRun(agent_pb2.GetRunRequest(run_id=args.run_id), timeout=30)
    print(render(run))
    return 0
