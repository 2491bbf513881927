"""``agentd trace``: a stored run as a tree in the terminal, from its RunResponse alone.

The view to reach for first when an answer looks wrong: every planning round with its model
calls, every tool call and every other model call, ordered by start time with offsets from the
run's start, with tokens, cost, durations and errors. It needs no tracing backend: the run
record carries start times and durations of model calls and steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentd.v1 import agent_pb2

_PLANNER_PROMPTS = {"planner", "replan"}


@dataclass
class _Node:
    start_ns: int
    text: str
    children: list[_Node] = field(default_factory=list)


def _ms(duration_ns: int) -> str:
    ms = duration_ns / 1e6
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def _offset(start_ns: int, run_start_ns: int) -> str:
    return f"+{(start_ns - run_start_ns) / 1e9:.3f}s"


def _enum(value: int, enum: type, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower()  # type: ignore[attr-defined]


def model_call_line(call: agent_pb2.ModelCall) -> str:
    parts = [
        f"chat {call.role} {call.model}",
        f"prompt {call.prompt}@{call.prompt_version}",
        f"{call.input_tokens}→{call.output_tokens} tok",
    ]
    if call.cached_input_tokens:
        parts[-1] += f" ({call.cached_input_tokens} cached)"
    if call.cost_usd:
        parts.append(f"${call.cost_usd:.6f}")
    parts.append(_ms(call.duration.ToNanoseconds()))
    if call.error:
        parts.append(f"✗ {call.error}")
    elif call.finish_reason:
        parts.append(call.finish_reason)
    return " · ".join(parts)


def step_line(step: agent_pb2.Step) -> str:
    status = _enum(step.status, agent_pb2.StepStatus, "STEP_STATUS_")
    parts = [f"tool {step.id} {step.tool}", status]
    if step.status == agent_pb2.STEP_STATUS_SUCCEEDED or step.duration.ToNanoseconds():
        parts.append(_ms(step.duration.ToNanoseconds()))
    if step.error.code or step.error.message:
        parts.append(f"✗ {step.error.code}: {step.error.message}".rstrip(": "))
    if step.result_truncated:
        parts.append("result truncated")
    for flag in step.flags:
        parts.append(f"⚑ {flag}")
    return " · ".join(parts)


def _timeline(run: agent_pb2.RunResponse) -> list[_Node]:
    """Top-level nodes by start time; consecutive planner calls form one planning round."""
    items: list[tuple[int, int, object]] = [
        (c.start_time.ToNanoseconds(), 0, c) for c in run.model_calls
    ] + [(s.start_time.ToNanoseconds(), 1, s) for s in run.steps]
    items.sort(key=lambda item: (item[0], item[1]))
    nodes: list[_Node] = []
    round_node: _Node | None = None
    rounds = 0
    for start, _, item in items:
        if isinstance(item, agent_pb2.ModelCall) and item.prompt in _PLANNER_PROMPTS:
            if round_node is None:
                kind = "replanning" if item.prompt == "replan" else "planning"
                round_node = _Node(start, f"{kind} (round {rounds})")
                rounds += 1
                nodes.append(round_node)
            round_node.children.append(_Node(start, model_call_line(item)))
            continue
        round_node = None
        text = model_call_line(item) if isinstance(item, agent_pb2.ModelCall) else step_line(item)  # type: ignore[arg-type]
        nodes.append(_Node(start, text))
    return nodes


def render(run: agent_pb2.RunResponse) -> str:
    """The run as text: a header, the tree, then the answer or the error."""
    status = _enum(run.status, agent_pb2.RunStatus, "RUN_STATUS_")
    run_start = run.start_time.ToNanoseconds()
    tokens_in = sum(u.input_tokens for u in run.usage)
    tokens_out = sum(u.output_tokens for u in run.usage)
    lines = [
        f"run {run.run_id} · {status} · {_ms(run.duration.ToNanoseconds())} · trace {run.trace_id}",
        f"task: {run.task}",
        f"{len(run.model_calls)} model calls · {len(run.steps)} tool calls · "
        f"{tokens_in}→{tokens_out} tokens · ${run.cost_usd:.6f}",
        "",
    ]
    nodes = _timeline(run)
    for i, node in enumerate(nodes):
        last = i == len(nodes) - 1
        lines.append(
            f"{_offset(node.start_ns, run_start):>9}  {'└─' if last else '├─'} {node.text}"
        )
        for j, child in enumerate(node.children):
            branch = "└─" if j == len(node.children) - 1 else "├─"
            lines.append(
                f"{_offset(child.start_ns, run_start):>9}  {'   ' if last else '│  '}{branch} "
                f"{child.text}"
            )
    if not nodes:
        lines.append("(no model or tool calls)")
    lines.append("")
    for verdict in run.verdicts:
        name = _enum(verdict.verdict, agent_pb2.Verdict, "VERDICT_")
        reasons = "; ".join(verdict.reasons)
        lines.append(f"guardrail {verdict.stage}: {name} ({verdict.guard}) {reasons}".rstrip())
    if run.HasField("pending_call"):
        lines.append(f"waiting for approval: {run.pending_call.tool} ({run.pending_call.step_id})")
    if run.error:
        lines.append(f"error: {run.error}")
    if run.output:
        lines.append(f"answer: {run.output}")
    return "\n".join(lines)
