"""Traces, metrics and logs of real runs: span tree and attributes, trace context into upstream
calls, cost, no credentials anywhere, and OTLP export from a real `agentd serve` process."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from opentelemetry import metrics as otel_metrics
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from agentd import telemetry
from agentd.loop import prompts
from agentd.telemetry import logs
from agentd.v1 import agent_pb2, agent_pb2_grpc
from examples.calculator.server import serve as serve_calculator
from examples.ledger.server import serve as serve_ledger
from tests.support.scripted_llm import ScriptedLLM
from tests.test_agent import SECRET, Stack, answer, plan, start_stack, step, write_config

ROOT = Path(__file__).resolve().parents[1]
PRICING = """
[telemetry]
capture_content = true
max_content_chars = 2000

[pricing."scripted-model"]
input_per_mtok = 0.4
output_per_mtok = 1.6
"""

# The global providers can be set once per process: install ours, or join whichever SDK provider
# an earlier test's Daemon installed, so the suite passes in any order.
_SPANS = InMemorySpanExporter()
_READER = InMemoryMetricReader()
_installed: dict[str, bool] = {}


def _span_exporter() -> InMemorySpanExporter:
    if not _installed.get("traces"):
        assert telemetry.setup_tracing({}, processors=[SimpleSpanProcessor(_SPANS)]) is not None
        _installed["traces"] = True
    return _SPANS


def _metric_reader() -> InMemoryMetricReader | None:
    if "metrics" not in _installed:
        current = otel_metrics.get_meter_provider()
        mine = not isinstance(current, MeterProvider)
        if mine:
            otel_metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
        _installed["metrics"] = mine
    return _READER if _installed["metrics"] else None


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = _span_exporter()
    exporter.clear()
    yield exporter
    exporter.clear()


@pytest.fixture
async def priced_stack(tmp_path: Path, spans: InMemorySpanExporter) -> AsyncIterator[Stack]:
    """Upstream calls take 300 ms so parallel steps overlap; content capture and prices on."""
    async for s in start_stack(tmp_path, latency_s=0.3, extra=PRICING):
        yield s


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """structlog's JSON output of the test, restored afterwards."""
    saved = structlog.get_config()
    buffer = io.StringIO()
    logs.configure("debug", "json", stream=buffer)
    yield buffer
    structlog.configure(**saved)


def of_trace(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.context is not None and format(s.context.trace_id, "032x") == trace_id
    ]


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = named(spans, name)
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def parallel_plan() -> dict[str, Any]:
    return plan(
        {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_001"}},
        {"id": "s2", "tool": "LedgerService_SearchVendors", "arguments": {"query": "coffee"}},
        {"id": "s3", "tool": "CalculatorService_Evaluate", "arguments": {"expression": "3 4 +"}},
    )


# --- the span tree ------------------------------------------------------------------------------


async def test_span_tree_of_a_parallel_run(
    priced_stack: Stack, spans: InMemorySpanExporter
) -> None:
    s = priced_stack
    # The planner's prompt mostly came from the endpoint's prompt cache (its static prefix).
    s.llm.reply(when="plan", content=parallel_plan(), usage=(2400, 90, 2385))
    s.llm.reply(when="answer", content=answer("ven_001, coffee vendors, 7"))
    response = await s.run("Who is ven_001, who sells coffee, and what is 3+4?")
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    cached = [(c.role, c.input_tokens, c.cached_input_tokens) for c in response.model_calls]
    assert cached[0] == ("planner", 2400, 2385) and cached[1][2] == 0
    await s.daemon.stop(grace=0)  # the server span ends after the response is sent
    tree = of_trace(spans, response.trace_id)

    rpc = one(tree, "/agentd.v1.AgentService/Run")  # instrumentation-grpc keeps the slash
    # Discovery (reflection) and health checks are served too, but make no spans.
    probes = [x.name for x in spans.get_finished_spans() if ".health." in x.name]
    probes += [x.name for x in spans.get_finished_spans() if ".reflection." in x.name]
    assert probes == []
    assert rpc.kind == SpanKind.SERVER and rpc.parent is None
    assert attrs(rpc)["rpc.service"] == "agentd.v1.AgentService"
    assert attrs(rpc)["rpc.grpc.status_code"] == 0

    agent = one(tree, "invoke_agent agentd")
    assert parent_of(agent) == span_id(rpc)
    assert attrs(agent)["gen_ai.operation.name"] == "invoke_agent"
    assert attrs(agent)["gen_ai.agent.name"] == "agentd"
    assert attrs(agent)["agentd.run.id"] == response.run_id
    assert attrs(agent)["agentd.run.status"] == "succeeded"

    planning = one(tree, "plan")
    assert parent_of(planning) == span_id(agent)
    assert attrs(planning)["agentd.plan.steps"] == 3
    planner = next(
        x for x in tree if x.name == "chat scripted-model" and x.parent == planning.context
    )
    a = attrs(planner)
    assert planner.kind == SpanKind.CLIENT
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "scripted-model"
    assert a["gen_ai.response.model"] == "scripted-model"
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (2400, 90)
    assert a["gen_ai.usage.cache_read.input_tokens"] == 2385  # included in input_tokens
    assert a["llm.token_count.prompt_details.cache_read"] == 2385  # OpenInference's name
    assert a["agentd.role"] == "planner"
    assert (a["agentd.prompt.name"], a["agentd.prompt.version"]) == (
        "planner",
        prompts.PLANNER.version,
    )
    assert "Who is ven_001" in a["gen_ai.input.messages"]  # capture_content is on here
    assert "s3" in a["gen_ai.output.messages"]

    tools = [x for x in tree if x.name.startswith("execute_tool ")]
    assert sorted(x.name for x in tools) == [
        "execute_tool CalculatorService_Evaluate",
        "execute_tool LedgerService_GetVendor",
        "execute_tool LedgerService_SearchVendors",
    ]
    assert {parent_of(x) for x in tools} == {span_id(agent)}
    get = one(tree, "execute_tool LedgerService_GetVendor")
    search = one(tree, "execute_tool LedgerService_SearchVendors")
    g = attrs(get)
    assert g["gen_ai.operation.name"] == "execute_tool"
    assert g["gen_ai.tool.name"] == "LedgerService_GetVendor"
    assert g["gen_ai.tool.call.id"] == "s1"
    assert (g["rpc.system"], g["rpc.service"], g["rpc.method"]) == (
        "grpc",
        "examples.ledger.v1.LedgerService",
        "GetVendor",
    )
    assert g["rpc.grpc.status_code"] == 0
    assert json.loads(g["gen_ai.tool.call.arguments"]) == {"vendorId": "ven_001"}
    # Parallel steps are overlapping siblings.
    assert get.start_time is not None and search.start_time is not None
    assert get.end_time is not None and search.end_time is not None
    assert get.start_time < search.end_time and search.start_time < get.end_time

    # The upstream's own span joined the trace under the tool call.
    upstream = one(tree, "/examples.ledger.v1.LedgerService/GetVendor")
    assert upstream.kind == SpanKind.SERVER and parent_of(upstream) == span_id(get)

    responder = next(x for x in tree if attrs(x).get("agentd.role") == "responder")
    assert parent_of(responder) == span_id(agent)
    # Each model call in the record points at its span.
    chat_ids = {format(span_id(x), "016x") for x in named(tree, "chat scripted-model")}
    assert {c.span_id for c in response.model_calls} == chat_ids


async def test_cost_from_the_price_table(priced_stack: Stack) -> None:
    s = priced_stack
    s.llm.reply(when="plan", content=plan(answer="42"))
    s.llm.reply(when="answer", content=answer("42"))
    response = await s.run("What is six times seven?")
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    for call in response.model_calls:
        expected = (call.input_tokens * 0.4 + call.output_tokens * 1.6) / 1e6
        assert call.cost_usd == pytest.approx(expected) and call.cost_usd > 0
    by_role = {u.role: u for u in response.usage}
    assert by_role["planner"].cost_usd == pytest.approx(
        sum(c.cost_usd for c in response.model_calls if c.role == "planner")
    )
    assert response.cost_usd == pytest.approx(sum(c.cost_usd for c in response.model_calls))
    stored = await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=response.run_id))
    assert stored.cost_usd == response.cost_usd


async def test_failures_set_span_status(priced_stack: Stack, spans: InMemorySpanExporter) -> None:
    s = priced_stack
    s.llm.reply(
        when="plan",
        content=plan(
            {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_999"}}
        ),
    )
    s.llm.reply(when="plan", content=plan())  # no steps, no answer: the responder writes it
    s.llm.reply(when="answer", content={"answer": 12}, times=2)  # off schema: a string is due
    response = await s.run("Get vendor ven_999")
    assert response.status == agent_pb2.RUN_STATUS_FAILED
    tree = of_trace(spans, response.trace_id)

    tool = one(tree, "execute_tool LedgerService_GetVendor")
    assert tool.status.status_code == StatusCode.ERROR
    assert attrs(tool)["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert attrs(tool)["error.type"] == "NOT_FOUND"
    replan = one(tree, "replan")
    assert "s1" in attrs(replan)["agentd.plan.reason"]

    bad = [x for x in tree if attrs(x).get("agentd.role") == "responder"]
    assert len(bad) == 2
    assert all(x.status.status_code == StatusCode.ERROR for x in bad)
    assert {attrs(x)["error.type"] for x in bad} == {"schema"}
    agent = one(tree, "invoke_agent agentd")
    assert agent.status.status_code == StatusCode.ERROR
    assert attrs(agent)["error.type"] == "failed"


# --- trace context and credentials --------------------------------------------------------------


async def test_upstream_receives_traceparent_of_the_run(
    priced_stack: Stack, spans: InMemorySpanExporter
) -> None:
    s = priced_stack
    s.llm.reply(
        when="plan",
        content=plan(
            {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_003"}}
        ),
    )
    s.llm.reply(when="answer", content=answer("ok"))
    response = await s.run("Get ven_003")
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    seen = s.ledger.seen_metadata[-1]
    assert seen["authorization"] == SECRET  # still forwarded next to the trace context
    version, trace_id, parent_id, flags = seen["traceparent"].split("-")
    assert (version, trace_id) == ("00", response.trace_id)
    assert int(flags, 16) & 1  # sampled
    tool = one(of_trace(spans, response.trace_id), "execute_tool LedgerService_GetVendor")
    assert parent_id == format(span_id(tool), "016x")


async def test_no_credential_in_spans_metrics_or_logs(
    priced_stack: Stack, spans: InMemorySpanExporter, log_lines: io.StringIO
) -> None:
    s = priced_stack
    reader = _metric_reader()
    s.llm.reply(
        when="plan",
        content=plan(
            {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_001"}},
            {"id": "s2", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_999"}},
        ),
    )
    s.llm.reply(when="plan", content=plan(answer="partly"))
    s.llm.reply(when="answer", content=answer("ven_001 exists"))
    # Content capture is on and the caller even pasted the token into the task.
    response = await s.run(f"Look up ven_001 and ven_999. ({SECRET})")
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    await s.daemon.stop(grace=0)

    tree = of_trace(spans, response.trace_id)
    assert len(tree) >= 8
    dumped = json.dumps(
        [
            {
                "attributes": attrs(x),
                "events": [(e.name, dict(e.attributes or {})) for e in x.events],
                "status": x.status.description,
            }
            for x in tree
        ],
        default=str,
    )
    assert "[REDACTED]" in dumped  # captured, and scrubbed
    assert "s3cr3t" not in dumped

    lines = [json.loads(line) for line in log_lines.getvalue().splitlines() if line.strip()]
    run_lines = [x for x in lines if x.get("run_id") == response.run_id]
    events = {x["event"] for x in run_lines}
    assert {"run started", "run finished", "model call", "tool call"} <= events
    assert all(x["trace_id"] == response.trace_id and len(x["span_id"]) == 16 for x in run_lines)
    tool_lines = [x for x in run_lines if x["event"] == "tool call"]
    assert {(x["step"], x["code"]) for x in tool_lines} == {("s1", "OK"), ("s2", "NOT_FOUND")}
    assert all("duration_ms" in x for x in tool_lines)
    assert "s3cr3t" not in log_lines.getvalue()

    if reader is not None:
        data = reader.get_metrics_data()
        assert data is not None
        assert "s3cr3t" not in data.to_json()
        points = {
            m.name: [dict(p.attributes or {}) for p in m.data.data_points]
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }
        assert {"gen_ai.token.type": "input", "agentd.role": "planner"}.items() <= next(
            p.items()
            for p in points["gen_ai.client.token.usage"]
            if p.get("agentd.role") == "planner" and p["gen_ai.token.type"] == "input"
        )
        assert {
            "gen_ai.tool.name": "LedgerService_GetVendor",
            "agentd.tool.status": "NOT_FOUND",
        } in points["agentd.tool.calls"]
        assert {"agentd.run.status": "succeeded"} in points["agentd.runs"]
        assert "gen_ai.client.operation.duration" in points
        assert "agentd.run.duration" in points and "agentd.tool.duration" in points


async def test_content_is_off_by_default(tmp_path: Path, spans: InMemorySpanExporter) -> None:
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
        assert response.cost_usd == 0  # no price table
        names = {k for x in of_trace(spans, response.trace_id) for k in attrs(x)}
        assert names.isdisjoint(
            {
                "gen_ai.input.messages",
                "gen_ai.output.messages",
                "gen_ai.tool.call.arguments",
                "gen_ai.tool.call.result",
            }
        )
        assert "gen_ai.usage.input_tokens" in names


def test_guardrail_span_hook(spans: InMemorySpanExporter) -> None:
    with telemetry.guardrail_span("rules", "output") as guard:
        guard.verdict("flag", "mentions a competitor", score=0.4)
    (span,) = named(spans.get_finished_spans(), "apply_guardrail rules")
    assert attrs(span)["agentd.guardrail.verdict"] == "flag"
    (event,) = span.events
    assert event.name == "gen_ai.evaluation.result"
    assert dict(event.attributes or {})["gen_ai.evaluation.score.label"] == "flag"


# --- OTLP export from a real `agentd serve` ------------------------------------------------------


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


async def _http_collector(
    requests: list[trace_service_pb2.ExportTraceServiceRequest],
) -> asyncio.Server:
    """OTLP/HTTP on loopback: POST /v1/traces with a protobuf body, answered 200."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                headers = dict(
                    line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line
                )
                length = int({k.lower(): v for k, v in headers.items()}.get("content-length", 0))
                body = await reader.readexactly(length)
                requests.append(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
                    + f"Content-Length: {len(reply)}\r\n\r\n".encode()
                    + reply
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_otlp_export_from_agentd_serve(tmp_path: Path, protocol: str) -> None:
    received: list[trace_service_pb2.ExportTraceServiceRequest] = []
    if protocol == "grpc":
        collector = _Collector()
        received = collector.requests
        server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        stop_collector: Any = lambda: server.stop(None)  # noqa: E731
    else:
        http = await _http_collector(received)
        port = http.sockets[0].getsockname()[1]

        async def stop_collector() -> None:
            http.close()

    llm = ScriptedLLM()
    await llm.start()
    ledger = await serve_ledger(reflection="v1")
    calculator = await serve_calculator(reflection="v1alpha")
    config = write_config(tmp_path, llm, ledger.address, calculator.address)
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-test-key",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_SERVICE_NAME": "agentd-under-test",
        "AGENTD_LOGGING_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentd",
        "serve",
        "--config",
        str(config),
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert "listening on" in line, line
        address = line.rsplit(" ", 1)[1].strip()
        llm.reply(
            when="plan",
            content=plan(
                {
                    "id": "s1",
                    "tool": "LedgerService_GetVendor",
                    "arguments": {"vendorId": "ven_001"},
                }
            ),
        )
        llm.reply(when="answer", content=answer("ok"))
        async with grpc.aio.insecure_channel(address) as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            response = await stub.Run(
                agent_pb2.RunRequest(task="Get ven_001"),
                metadata=(("authorization", SECRET),),
                timeout=30,
            )
        assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
        process.send_signal(signal.SIGTERM)  # stopping flushes the batch processor
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, stderr.decode()[-2000:]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await stop_collector()
        await ledger.stop(None)
        await calculator.stop(None)
        await llm.stop()

    exported = [
        (resource_spans.resource, span)
        for request in received
        for resource_spans in request.resource_spans
        for scope in resource_spans.scope_spans
        for span in scope.spans
    ]
    of_run = [(r, x) for r, x in exported if x.trace_id.hex() == response.trace_id]
    names = {x.name for _, x in of_run}
    assert {
        "/agentd.v1.AgentService/Run",
        "invoke_agent agentd",
        "plan",
        "chat scripted-model",
        "execute_tool LedgerService_GetVendor",
    } <= names
    resource = {a.key: a.value.string_value for a in of_run[0][0].attributes}
    assert resource["service.name"] == "agentd-under-test"
    assert resource["service.version"]
    assert "s3cr3t" not in str(received) and "s3cr3t" not in stderr.decode()
    # The daemon's JSON log lines carry the run id and its trace id.
    run_lines = [
        json.loads(x)
        for x in stderr.decode().splitlines()
        if response.run_id in x and x.startswith("{")
    ]
    assert run_lines and all(x["trace_id"] == response.trace_id for x in run_lines)
    assert step(response, "s1").status == agent_pb2.STEP_STATUS_SUCCEEDED
