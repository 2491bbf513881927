"""Feedback end to end: checks, persistence across a restart, the trace event, webhook
alerts with retries, the CLI and the JSONL export."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentd import cli
from agentd.api.server import Daemon
from agentd.v1 import agent_pb2, agent_pb2_grpc
from tests.test_agent import Stack, plan, start_stack


@dataclass
class Webhook:
    """A loopback HTTP receiver answering with ``statuses`` in turn (then 200)."""

    statuses: list[int] = field(default_factory=list)
    received: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    attempts: int = 0
    server: asyncio.Server | None = None
    heads: list[bytes] = field(default_factory=list)

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = json.loads(await reader.readexactly(length))
        self.attempts += 1
        status = self.statuses.pop(0) if self.statuses else 200
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()
        if status == 200:
            self.received.put_nowait(body)

    async def next(self) -> dict[str, Any]:
        async with asyncio.timeout(20):  # readiness wait with a generous bound, not a timing
            return await self.received.get()

    async def stop(self) -> None:
        if self.server:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook(statuses=[500])
    yield hook
    await hook.stop()


@pytest.fixture
async def stack(tmp_path: Path, webhook: Webhook) -> AsyncIterator[Stack]:
    url = await webhook.start()
    extra = f'\n[alerts]\nwebhooks = ["{url}"]\nbackoff_s = 0.01\nretries = 3\n'
    async for s in start_stack(tmp_path, extra=extra):
        yield s


async def answered(s: Stack, task: str, text: str) -> agent_pb2.RunResponse:
    s.llm.reply(when="plan", content=plan(answer=text))
    response = await s.run(task)
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    return response


async def test_feedback_checks_the_rating_and_the_run(stack: Stack) -> None:
    run = await answered(stack, "What is 2+2?", "4")
    for rating in (0, 6, -2):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stack.stub.SubmitFeedback(
                agent_pb2.SubmitFeedbackRequest(run_id=run.run_id, rating=rating)
            )
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "rating" in (bad.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stack.stub.SubmitFeedback(agent_pb2.SubmitFeedbackRequest(run_id="nope", rating=1))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_feedback_survives_a_restart(stack: Stack) -> None:
    s = stack
    run = await answered(s, "What is 2+2?", "4")
    reply = await s.stub.SubmitFeedback(
        agent_pb2.SubmitFeedbackRequest(run_id=run.run_id, rating=5, comment="great", labels=["x"])
    )
    assert reply.feedback.rating == 5 and reply.feedback.time.seconds > 0

    config = s.daemon.config
    await s.daemon.stop(grace=0)
    again = Daemon(config, env={"OPENAI_API_KEY": "sk-test-key"})
    await again.start()
    try:
        async with grpc.aio.insecure_channel(again.address) as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            stored = await stub.GetRun(agent_pb2.GetRunRequest(run_id=run.run_id))
    finally:
        await again.stop(grace=0)
    assert stored.output == "4" and stored.task == "What is 2+2?"
    assert [(f.rating, f.comment, list(f.labels)) for f in stored.feedback] == [(5, "great", ["x"])]


async def test_negative_feedback_alert_is_retried_after_a_500(
    stack: Stack, webhook: Webhook
) -> None:
    run = await answered(stack, "What is 2+2?", "5")
    await stack.stub.SubmitFeedback(
        agent_pb2.SubmitFeedbackRequest(run_id=run.run_id, rating=-1, comment="wrong")
    )
    alert = await webhook.next()
    assert webhook.attempts == 2  # the first delivery got HTTP 500
    assert alert["run_id"] == run.run_id and alert["trace_id"] == run.trace_id
    assert (alert["reason"], alert["rating"]) == ("negative_feedback", -1)


async def test_failed_run_alerts_and_a_dead_sink_fails_nothing(
    tmp_path: Path, webhook: Webhook
) -> None:
    url = await webhook.start()
    extra = (
        f'\n[alerts]\nwebhooks = ["{url}", "http://127.0.0.1:1/dead"]\n'
        "backoff_s = 0.01\nretries = 1\n"
    )
    async for s in start_stack(tmp_path, extra=extra):
        s.llm.reply(when="plan", content={"steps": "not a plan"}, times=3)
        response = await s.run("fail please")
        assert response.status == agent_pb2.RUN_STATUS_FAILED
        alert = await webhook.next()
        assert (alert["reason"], alert["run_id"]) == ("failed_run", response.run_id)


async def test_feedback_is_an_evaluation_event_in_the_runs_trace(stack: Stack) -> None:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        pytest.skip("no SDK tracer provider installed (OTEL_SDK_DISABLED?)")
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    run = await answered(stack, "What is 2+2?", "4")
    await stack.stub.SubmitFeedback(agent_pb2.SubmitFeedbackRequest(run_id=run.run_id, rating=4))
    spans = [s for s in exporter.get_finished_spans() if s.name == "evaluation user_feedback"]
    exporter.shutdown()
    assert len(spans) == 1
    span = spans[0]
    assert format(span.context.trace_id, "032x") == run.trace_id
    assert span.attributes is not None
    assert span.attributes["gen_ai.evaluation.name"] == "user_feedback"
    assert span.attributes["gen_ai.evaluation.score.value"] == 0.5
    assert span.attributes["gen_ai.evaluation.score.label"] == "good"
    assert [e.name for e in span.events] == ["gen_ai.evaluation.result"]


async def test_cli_feedback_get_and_export(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    s = stack
    good = await answered(s, "What is 2+2?", "4")
    bad = await answered(s, "what is 2+2?", "5")
    unrated = await answered(s, "Hello", "hi")
    target = ["--target", s.daemon.address]

    assert (
        await asyncio.to_thread(cli.main, ["feedback", good.run_id, "--rating", "1", *target]) == 0
    )
    code = await asyncio.to_thread(
        cli.main,
        ["feedback", bad.run_id, "--rating", "-1", "--label", "wrong", "--comment", "no", *target],
    )
    assert code == 0
    assert (
        await asyncio.to_thread(cli.main, ["feedback", bad.run_id, "--rating", "9", *target]) == 4
    )
    capsys.readouterr()

    assert await asyncio.to_thread(cli.main, ["get", bad.run_id, "--json", *target]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["feedback"][0]["labels"] == ["wrong"]

    db = str(s.daemon.config.storage.path)
    outputs = []
    for source in (["--db", db], target):
        args = ["feedback", "export", "--format", "jsonl", *source]
        assert await asyncio.to_thread(cli.main, args) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    lines = [json.loads(line) for line in outputs[0].splitlines()]  # valid JSONL
    chats = [x for x in lines if x["kind"] == "chat"]
    assert {x["run_id"] for x in chats} == {good.run_id, bad.run_id}
    assert unrated.run_id not in outputs[0]
    first = next(x for x in chats if x["run_id"] == bad.run_id)
    assert first["messages"][0] == {"role": "user", "content": "what is 2+2?"}
    assert first["messages"][-1] == {"role": "assistant", "content": "5"}
    assert (first["rating"], first["label"], first["labels"]) == (-1, "bad", ["wrong"])
    pairs = [x for x in lines if x["kind"] == "preference"]
    assert len(pairs) == 1
    assert pairs[0]["preferred_output"][0]["content"] == "4"
    assert pairs[0]["non_preferred_output"][0]["content"] == "5"


async def test_webhook_url_credentials_go_in_authorization_not_the_host_header() -> None:
    from agentd.runs.alerts import post_json

    hook = Webhook()
    url = await hook.start()
    try:
        with_credentials = url.replace("http://", "http://alerts:s3cret@")
        assert await post_json(with_credentials, {"reason": "test"}, timeout_s=10) == 200
    finally:
        await hook.stop()
    head = hook.heads[0].decode().lower()
    host = next(line for line in head.split("\r\n") if line.startswith("host:"))
    assert "s3cret" not in host
    assert f"authorization: basic {_basic('alerts:s3cret')}" in head


def _basic(credentials: str) -> str:
    import base64

    return base64.b64encode(credentials.encode()).decode().lower()


async def test_webhook_goes_through_the_proxy_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agentd.runs.alerts import post_json

    proxy = Webhook()  # a real loopback HTTP proxy: it answers absolute-form requests itself
    address = (await proxy.start()).removesuffix("/hook")
    monkeypatch.setenv("HTTP_PROXY", address)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        # The host does not resolve: only the proxy can deliver it.
        url = "http://us%40er:p%3Ass@alerts.invalid/hook"
        assert await post_json(url, {"reason": "test"}, timeout_s=10) == 200
    finally:
        await proxy.stop()
    head = proxy.heads[0].decode()
    assert head.startswith("POST http://alerts.invalid/hook HTTP/1.1\r\n")
    lines = head.lower().split("\r\n")
    assert "host: alerts.invalid" in lines
    # The URL's credentials (percent-decoded) are for the webhook, not the proxy.
    assert f"authorization: basic {_basic('us@er:p:ss')}" in lines
    assert not any(line.startswith("proxy-authorization") for line in lines)
