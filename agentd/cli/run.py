"""``agentd run`` runs a task on a daemon, showing the plan and steps as they happen;
``agentd tools`` lists the daemon's tools. The event and result lines are printed here."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from google.protobuf import json_format

from agentd.cli.channel import add_connection_options, agent_stub
from agentd.cli.common import Exit, add_command, fail, print_json
from agentd.v1 import agent_pb2

RUN_EXAMPLES = """\
  agentd run "What did we spend on software in March 2025?"
  agentd run "Summarize spending by category" --schema answer.schema.json --json
  agentd run "Vendor ven_001's phone?" -H 'authorization: Bearer secret'
  agentd run "Evaluate 3 4 + with the calculator" --tool 'CalculatorService_*' --mode react

exit status:
  0 the run succeeded; 2 a bad option; 3 daemon unreachable; 4 the daemon refused the
  request; 5 the run ended without succeeding (failed, needs_approval, ...)
"""


def add_commands(commands: Any) -> None:
    run_parser = add_command(
        commands,
        "run",
        "run a task on a running daemon, showing the plan and steps as they happen",
        "Run TASK on a running daemon (RunStream): the plan, each tool call and "
        "its result as they happen, then the answer and a summary line (status, duration, "
        "calls, tokens, run and trace ids). With --json: only the final RunResponse.",
        RUN_EXAMPLES,
    )
    run_parser.add_argument("task", help="what the agent should do")
    run_parser.add_argument(
        "--schema", metavar="FILE", help="JSON Schema file the answer must match"
    )
    run_parser.add_argument(
        "--context", metavar="JSON", help="a JSON object of facts for the agent"
    )
    run_parser.add_argument(
        "--tool",
        action="append",
        default=[],
        metavar="PATTERN",
        help="narrow the tools to these names or patterns (repeatable)",
    )
    run_parser.add_argument("--mode", choices=["plan_execute", "react"], help="loop to use")
    run_parser.add_argument(
        "--timeout", type=float, default=300.0, help="deadline in seconds (default 300)"
    )
    run_parser.add_argument(
        "--json", action="store_true", help="print only the final RunResponse as JSON"
    )
    add_connection_options(run_parser)
    run_parser.set_defaults(func=run)

    tools = add_command(
        commands,
        "tools",
        "list the daemon's tools",
        "The tools the daemon offers the caller (ListTools): name, side effects, "
        "policy and description, one per line; upstreams that are unavailable on stderr.",
        "  agentd tools\n  agentd tools --target agentd.internal:443 --tls --json",
    )
    tools.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_connection_options(tools)
    tools.set_defaults(func=list_tools)


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
    answer = Answer()
    async with agent_stub(args) as stub:
        async for event in stub.RunStream(request, timeout=args.timeout):
            if event.HasField("final"):
                final = event.final
            elif args.json:
                continue
            elif event.HasField("answer_delta"):
                answer.add(event.answer_delta)
            else:
                answer.end_line()
                show_event(event)
    if final is None:
        return fail("the stream ended without a final response", Exit.NOT_SUCCEEDED)
    if args.json:
        print_json(final)
    else:
        show_final(final, shown=answer.shown(final))
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
        print(f"⚑ {verdict_line(event.verdict)}")
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


def verdict_line(verdict: agent_pb2.GuardrailVerdict) -> str:
    name = agent_pb2.Verdict.Name(verdict.verdict).removeprefix("VERDICT_").lower()
    return f"guardrail {verdict.stage} {name} ({verdict.guard}): {'; '.join(verdict.reasons)}"


class Answer:
    """The answer printed as its deltas come (an empty delta: it starts over, on a new
    line), so a user reads it while the model writes it."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.open = False  # the answer's line is not ended yet
        self.restarted = False  # the next delta follows "the answer starts over" directly

    def add(self, delta: str) -> None:
        if not delta:
            if self.text:
                self.end_line()
                print("↻ the answer starts over")
                self.restarted = True
            self.text.clear()
            return
        if not self.text and not self.restarted:
            print()
        self.text.append(delta)
        self.open = True
        sys.stdout.write(delta)
        sys.stdout.flush()

    def end_line(self) -> None:
        if self.open:
            print()
            self.open = False

    def shown(self, final: agent_pb2.RunResponse) -> bool:
        """Whether what was printed is the final answer (then it is not printed again)."""
        self.end_line()
        text = "".join(self.text)
        if not text or not final.output:
            return False
        if text == final.output:
            return True
        try:  # a JSON answer as the model wrote it
            return bool(json.loads(text) == json.loads(final.output))
        except ValueError:
            return False


def show_final(final: agent_pb2.RunResponse, *, shown: bool = False) -> None:
    """The answer (unless ``shown`` already, as it streamed) and the summary lines."""
    status = agent_pb2.RunStatus.Name(final.status).removeprefix("RUN_STATUS_").lower()
    if not shown:
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
