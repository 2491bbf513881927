"""The scripted OpenAI-compatible server itself: routing, rules, responders, concurrency."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
import pytest_asyncio

from tests.support.scripted_llm import Reply, ScriptedLLM, schema_name


@pytest_asyncio.fixture
async def llm() -> AsyncIterator[ScriptedLLM]:
    async with ScriptedLLM() as server:
        yield server


@pytest_asyncio.fixture
async def client(llm: ScriptedLLM) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0)
    yield sdk
    await sdk.close()


async def _get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _ask(name: str | None = None, text: str = "hi") -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if name:
        extra["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": {"type": "object"}},
        }
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


async def test_health_and_models(llm: ScriptedLLM) -> None:
    assert await _get(llm.port, "/health") == (200, {"status": "ok"})
    status, models = await _get(llm.port, "/v1/models")
    assert status == 200 and models["data"][0]["id"] == "scripted"
    assert (await _get(llm.port, "/nope"))[0] == 404


async def test_rules_match_in_order_by_schema_name_and_run_out(
    llm: ScriptedLLM, client: openai.AsyncOpenAI
) -> None:
    llm.reply(when="plan", content={"steps": []}, times=2)
    llm.reply(when=lambda body: "answer" in body["messages"][-1]["content"], content="A")
    llm.reply(content="fallback", times=None)

    for _ in range(2):
        plan = await client.chat.completions.create(**_ask("plan"))
        assert plan.choices[0].message.content == '{"steps": []}'
    third = await client.chat.completions.create(**_ask("plan"))
    assert third.choices[0].message.content == "fallback"
    answer = await client.chat.completions.create(**_ask(text="give the answer"))
    assert answer.choices[0].message.content == "A"
    assert [schema_name(r) for r in llm.requests] == ["plan", "plan", "plan", None]
    assert llm.pending() == []


async def test_unmatched_request_is_recorded_and_explained(
    llm: ScriptedLLM, client: openai.AsyncOpenAI
) -> None:
    with pytest.raises(openai.InternalServerError, match="no rule matched"):
        await client.chat.completions.create(**_ask("guard_verdict"))
    assert schema_name(llm.requests[0]) == "guard_verdict"


async def test_async_responder_computes_replies(
    llm: ScriptedLLM, client: openai.AsyncOpenAI
) -> None:
    async def echo(body: dict[str, Any]) -> Reply:
        return Reply(content={"echo": body["messages"][-1]["content"]}, usage=(7, 3))

    llm.responder(echo)
    reply = await client.chat.completions.create(**_ask(text="ping"))
    assert json.loads(reply.choices[0].message.content or "") == {"echo": "ping"}
    assert reply.usage is not None and reply.usage.total_tokens == 10
    assert llm.saw("ping") and llm.saw("Bearer test") and not llm.saw("pong")


async def test_tool_calls_and_error_injection(llm: ScriptedLLM, client: openai.AsyncOpenAI) -> None:
    llm.reply(tool_calls=[{"name": "add", "arguments": {"a": 1}}], finish_reason="tool_calls")
    llm.reply(status=429, headers={"Retry-After": "3"})
    reply = await client.chat.completions.create(**_ask())
    call = (reply.choices[0].message.tool_calls or [])[0]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert call.type == "function"
    assert call.function.name == "add" and json.loads(call.function.arguments) == {"a": 1}
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(**_ask())
    assert info.value.response.headers["retry-after"] == "3"


async def test_a_thousand_concurrent_requests_with_latency() -> None:
    # The benchmark shape: 1,000 calls in flight at once, each held for the model latency.
    async with ScriptedLLM(latency_s=0.2) as llm:
        llm.reply(content="ok", times=None)
        sdk = openai.AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0)
        try:
            replies = await asyncio.gather(
                *(sdk.chat.completions.create(**_ask(text=str(i))) for i in range(1000))
            )
        finally:
            await sdk.close()
    assert all(r.choices[0].message.content == "ok" for r in replies)
    assert len(llm.requests) == 1000


async def test_broken_predicate_fails_loudly(llm: ScriptedLLM, client: openai.AsyncOpenAI) -> None:
    llm.reply(when=lambda body: body["no such key"], content="x")
    with pytest.raises(openai.InternalServerError, match="KeyError"):
        await client.chat.completions.create(**_ask())


async def test_wait_for_requests(llm: ScriptedLLM, client: openai.AsyncOpenAI) -> None:
    release = asyncio.Event()

    async def held(body: dict[str, Any]) -> Reply:
        await release.wait()
        return Reply(content="done")

    llm.responder(held)
    calls = [asyncio.create_task(client.chat.completions.create(**_ask())) for _ in range(3)]
    await llm.wait_for_requests(3)  # all three are in flight at once
    release.set()
    assert all(r.choices[0].message.content == "done" for r in await asyncio.gather(*calls))


async def test_stop_cancels_replies_in_flight() -> None:
    llm = ScriptedLLM()
    await llm.start()
    held = asyncio.Event()

    async def hold(body: dict[str, Any]) -> Reply | None:
        held.set()
        await asyncio.Event().wait()  # a reply that never comes
        return None

    llm.responder(hold)
    sdk = openai.AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0)
    try:
        call = asyncio.create_task(sdk.chat.completions.create(**_ask()))
        await held.wait()
        await llm.stop()
        with pytest.raises(openai.APIConnectionError):
            await call
    finally:
        await sdk.close()
