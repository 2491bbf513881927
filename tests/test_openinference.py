"""OpenInference attributes beside the GenAI ones: span kinds Phoenix groups by, messages,
tool input/output, model and token counts; content only with capture on, never a credential."""

from __future__ import annotations

import json
from pathlib import Path

from openinference.semconv.trace import SpanAttributes
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentd import telemetry
from agentd.runs import feedback
from agentd.v1 import agent_pb2
from tests import test_telemetry
from tests.test_agent import SECRET, Stack, answer, plan, start_stack
from tests.test_telemetry import (
    attrs,
    named,
    of_trace,
    one,
    parallel_plan,
    parent_of,
    span_id,
)

# The fixtures of the telemetry tests, used here by name.
priced_stack = test_telemetry.priced_stack
spans = test_telemetry.spans

KIND = SpanAttributes.OPENINFERENCE_SPAN_KIND
CONTENT_KEYS = (
    SpanAttributes.INPUT_VALUE,
    SpanAttributes.OUTPUT_VALUE,
    SpanAttributes.LLM_INPUT_MESSAGES,
    SpanAttributes.LLM_OUTPUT_MESSAGES,
)


async def test_kinds_messages_tools_and_tokens(
    priced_stack: Stack, spans: InMemorySpanExporter
) -> None:
    s = priced_stack
    s.llm.reply(when="plan", content=parallel_plan())
    s.llm.reply(when="answer", content=answer("ven_001, coffee vendors, 7"))
    response = await s.run(f"Who is ven_001, who sells coffee, and what is 3+4? {SECRET}")
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    await s.daemon.stop(grace=0)
    tree = of_trace(spans, response.trace_id)

    agent = one(tree, "invoke_agent agentd")
    a = attrs(agent)
    assert a[KIND] == "AGENT"
    assert a[SpanAttributes.AGENT_NAME] == "agentd"
    assert "Who is ven_001" in a[SpanAttributes.INPUT_VALUE]
    assert a[SpanAttributes.OUTPUT_VALUE] == response.output
    in_total = sum(c.input_tokens for c in response.model_calls)
    out_total = sum(c.output_tokens for c in response.model_calls)
    assert a[SpanAttributes.LLM_TOKEN_COUNT_PROMPT] == in_total
    assert a[SpanAttributes.LLM_TOKEN_COUNT_COMPLETION] == out_total
    assert a[SpanAttributes.LLM_COST_TOTAL] == response.cost_usd > 0

    # The SERVER span is the trace's root, the row Phoenix lists: a CHAIN with the run's input
    # and output, not a span of unknown kind with nothing in it.
    entry = one(tree, "/agentd.v1.AgentService/Run")
    e = attrs(entry)
    assert e[KIND] == "CHAIN" and parent_of(agent) == span_id(entry)
    assert e[SpanAttributes.INPUT_VALUE] == a[SpanAttributes.INPUT_VALUE]
    assert e[SpanAttributes.OUTPUT_VALUE] == response.output

    planning = one(tree, "plan")
    p = attrs(planning)
    assert p[KIND] == "CHAIN" and parent_of(planning) == span_id(agent)
    assert [x["tool"] for x in json.loads(p[SpanAttributes.OUTPUT_VALUE])["steps"]] == [
        "LedgerService_GetVendor",
        "LedgerService_SearchVendors",
        "CalculatorService_Evaluate",
    ]

    chats = named(tree, "chat scripted-model")
    assert chats and all(attrs(x)[KIND] == "LLM" for x in chats)
    planner = next(x for x in chats if x.parent == planning.context)
    c = attrs(planner)
    assert c[SpanAttributes.LLM_MODEL_NAME] == "scripted-model"
    assert c[SpanAttributes.LLM_PROVIDER] == "openai"
    assert json.loads(c[SpanAttributes.LLM_INVOCATION_PARAMETERS]).keys() == {
        "temperature",
        "max_tokens",
    }
    record = next(m for m in response.model_calls if m.span_id == format(span_id(planner), "016x"))
    assert c[SpanAttributes.LLM_TOKEN_COUNT_PROMPT] == record.input_tokens > 0
    assert c[SpanAttributes.LLM_TOKEN_COUNT_COMPLETION] == record.output_tokens > 0
    assert c[SpanAttributes.LLM_TOKEN_COUNT_TOTAL] == record.input_tokens + record.output_tokens
    # The flattened message list, system prompt first, the task next, the plan as the answer.
    inputs = f"{SpanAttributes.LLM_INPUT_MESSAGES}"
    assert c[f"{inputs}.0.message.role"] == "system"
    roles = [c[k] for k in sorted(c) if k.startswith(inputs) and k.endswith(".message.role")]
    assert "user" in roles
    user_index = roles.index("user")
    assert "Who is ven_001" in c[f"{inputs}.{user_index}.message.content"]
    outputs = SpanAttributes.LLM_OUTPUT_MESSAGES
    assert c[f"{outputs}.0.message.role"] == "assistant"
    assert "LedgerService_GetVendor" in c[f"{outputs}.0.message.content"]
    # input.value/output.value of a model call: the turn that prompted it and the completion.
    assert c[SpanAttributes.INPUT_VALUE] == c[f"{inputs}.{len(roles) - 1}.message.content"]
    assert c[SpanAttributes.OUTPUT_VALUE] == c[f"{outputs}.0.message.content"]

    get = one(tree, "execute_tool LedgerService_GetVendor")
    g = attrs(get)
    assert g[KIND] == "TOOL" and parent_of(get) == span_id(agent)
    assert g[SpanAttributes.TOOL_NAME] == "LedgerService_GetVendor"
    assert g[SpanAttributes.TOOL_ID] == "s1"
    assert json.loads(g[SpanAttributes.INPUT_VALUE]) == {"vendorId": "ven_001"}
    assert g[SpanAttributes.INPUT_MIME_TYPE] == "application/json"
    assert "ven_001" in g[SpanAttributes.OUTPUT_VALUE]
    assert g[SpanAttributes.OUTPUT_MIME_TYPE] == "application/json"

    # Captured and scrubbed: the caller's token (pasted into the task) appears nowhere.
    dumped = json.dumps([attrs(x) for x in tree], default=str)
    assert "[REDACTED]" in a[SpanAttributes.INPUT_VALUE]
    assert "s3cr3t" not in dumped


async def test_replan_is_a_chain(priced_stack: Stack, spans: InMemorySpanExporter) -> None:
    s = priced_stack
    s.llm.reply(
        when="plan",
        content=plan(
            {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_999"}}
        ),
    )
    s.llm.reply(when="plan", content=plan(answer="no such vendor"))
    s.llm.reply(when="answer", content=answer("no such vendor"))
    response = await s.run("Look up ven_999.")
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    tree = of_trace(spans, response.trace_id)
    replan = one(tree, "replan")
    assert attrs(replan)[KIND] == "CHAIN"
    assert attrs(replan)[SpanAttributes.INPUT_VALUE]  # why it replanned, captured
    assert attrs(one(tree, "execute_tool LedgerService_GetVendor"))[KIND] == "TOOL"


async def test_no_content_when_capture_is_off(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    async for s in start_stack(tmp_path):
        s.llm.reply(
            when="plan",
            content=plan(
                {
                    "id": "s1",
                    "tool": "CalculatorService_Evaluate",
                    "arguments": {"expression": "1 2 +"},
                }
            ),
        )
        s.llm.reply(when="answer", content=answer("3"))
        response = await s.run("What is 1+2?")
        assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
        tree = of_trace(spans, response.trace_id)
        keys = {k for x in tree for k in attrs(x)}
        assert not [k for k in keys if k.startswith(CONTENT_KEYS)]
        # Structure, model and counts are not content: they stay.
        kinds = {attrs(x).get(KIND) for x in tree}
        assert {"AGENT", "CHAIN", "LLM", "TOOL"} <= kinds
        chat = named(tree, "chat scripted-model")[0]
        assert attrs(chat)[SpanAttributes.LLM_MODEL_NAME] == "scripted-model"
        assert attrs(chat)[SpanAttributes.LLM_TOKEN_COUNT_PROMPT] > 0


def test_guardrail_and_feedback_kinds(spans: InMemorySpanExporter) -> None:
    with telemetry.guardrail_span("rules", "input") as guard:
        guard.verdict("pass")
    (guardrail,) = named(spans.get_finished_spans(), "apply_guardrail rules")
    assert attrs(guardrail)[KIND] == "GUARDRAIL"

    trace_id = "0af7651916cd43dd8448eb211c80319c"
    feedback.record_span("run_1", trace_id, 5, [])
    (evaluation,) = named(spans.get_finished_spans(), "evaluation user_feedback")
    assert attrs(evaluation)[KIND] == "EVALUATOR"
    assert evaluation.context is not None
    assert format(evaluation.context.trace_id, "032x") == trace_id


async def test_a_streamed_run_starts_in_a_chain_too(
    priced_stack: Stack, spans: InMemorySpanExporter
) -> None:
    s = priced_stack
    s.llm.reply(when="plan", content=plan(answer="3"))
    s.llm.reply(when="answer", content=answer("3"))
    events = await s.stream("What is 1+2?")
    final = events[-1].final
    assert final.status == agent_pb2.RUN_STATUS_SUCCEEDED, final.error
    tree = of_trace(spans, final.trace_id)
    entry = one(tree, "/agentd.v1.AgentService/RunStream")
    assert attrs(entry)[KIND] == "CHAIN"
    assert attrs(entry)[SpanAttributes.INPUT_VALUE] == "What is 1+2?"
    assert attrs(entry)[SpanAttributes.OUTPUT_VALUE] == final.output
    assert parent_of(one(tree, "invoke_agent agentd")) == span_id(entry)
