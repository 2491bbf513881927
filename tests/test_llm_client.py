"""ChatModel against the scripted server: decoding, validation, errors, retries, keys."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import jsonschema
import pytest
import pytest_asyncio

from agentd.llm import (
    ChatModel,
    ModelConfig,
    ModelError,
    ToolSpec,
    build_models,
    close_models,
    sse,
    tool_choice_schema,
)
from tests.support.scripted_llm import ScriptedLLM

ANSWER = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "maxLength": 50},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["answer", "confidence"],
    "additionalProperties": False,
}
ADD = ToolSpec(
    "add",
    "Add two numbers",
    {
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
        "additionalProperties": False,
    },
)
SEARCH = ToolSpec(
    "search",
    "Search documents",
    {
        "type": "object",
        "properties": {"query": {"type": "string", "maxLength": 40}},
        "required": ["query"],
        "additionalProperties": False,
    },
)
# A tool whose parameters carry $defs, to check they survive being embedded in a union.
TRANSFER = ToolSpec(
    "transfer",
    "Move money",
    {
        "type": "object",
        "properties": {"amount": {"$ref": "#/$defs/Money"}, "memo": {"type": "string"}},
        "required": ["amount"],
        "$defs": {
            "Money": {
                "type": "object",
                "properties": {"units": {"type": "string"}, "currency": {"type": "string"}},
                "required": ["units", "currency"],
            }
        },
    },
)
MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "hello"}]

ModelFactory = Callable[..., ChatModel]


@pytest_asyncio.fixture
async def llm() -> AsyncIterator[ScriptedLLM]:
    async with ScriptedLLM() as server:
        yield server


# Every ChatModel test runs on both HTTP transports of the SDK (llm.http_client).
@pytest_asyncio.fixture(params=["httpx", "aiohttp"])
async def make_model(
    llm: ScriptedLLM, request: pytest.FixtureRequest
) -> AsyncIterator[ModelFactory]:
    """Build a ChatModel on the scripted server; every client is closed after the test."""
    built: list[dict[str, ChatModel]] = []

    def factory(
        role: str = "planner", env: dict[str, str] | None = None, **overrides: Any
    ) -> ChatModel:
        settings: dict[str, Any] = {
            "max_retries": 0,
            "timeout_s": 10.0,
            "http_client": request.param,
            **overrides,
        }
        config = ModelConfig(base_url=llm.base_url, model="test-model", **settings)
        models = build_models({role: config}, env=env or {})
        built.append(models)
        return models[role]

    yield factory
    for models in built:
        await close_models(models)


# -- complete_json ---------------------------------------------------------------------------


async def test_complete_json_parses_validates_and_sends_the_schema(
    llm: ScriptedLLM, make_model: ModelFactory
) -> None:
    llm.reply(when="answer", content={"answer": "42", "confidence": 0.5}, usage=(123, 45))
    reply = await make_model().complete_json(MESSAGES, ANSWER, name="answer")

    assert reply.value == {"answer": "42", "confidence": 0.5}
    assert json.loads(reply.text) == reply.value
    assert reply.finish_reason == "stop"
    assert (reply.input_tokens, reply.output_tokens) == (123, 45)
    assert reply.model == "test-model"
    assert reply.latency_s >= 0
    sent = llm.requests[0]
    assert sent["model"] == "test-model"
    assert sent["messages"] == MESSAGES
    assert sent["temperature"] == 0.0
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": ANSWER, "strict": False},
    }


async def test_complete_json_strict_flag_is_passed_through(
    llm: ScriptedLLM, make_model: ModelFactory
) -> None:
    llm.reply(content={"answer": "a", "confidence": 1})
    await make_model().complete_json(MESSAGES, ANSWER, name="answer", strict=True)
    assert llm.requests[0]["response_format"]["json_schema"]["strict"] is True


async def test_usage_defaults_to_nonzero_counts(llm: ScriptedLLM, make_model: ModelFactory) -> None:
    llm.reply(content={"answer": "a", "confidence": 1})
    reply = await make_model().complete_json(MESSAGES, ANSWER, name="answer")
    assert reply.input_tokens > 0
    assert reply.output_tokens > 0


async def test_length_is_an_error_even_when_the_text_parses(
    llm: ScriptedLLM, make_model: ModelFactory
) -> None:
    llm.reply(content={"answer": "a", "confidence": 1}, finish_reason="length")
    with pytest.raises(ModelError) as info:
        await make_model().complete_json(MESSAGES, ANSWER, name="answer")
    err = info.value
    assert err.kind == "length"
    assert err.recoverable
    assert err.reply is not None and err.reply.value is None  # never parsed
    assert "max_tokens" in str(err)
    assert "planner" in str(err) and "test-model" in str(err) and llm.base_url in str(err)


async def test_invalid_json_keeps_the_text_for_feedback(
    llm: ScriptedLLM, make_model: ModelFactory
) -> None:
    llm.reply(content='{"answer": "a", "confidence": ')
    with pytest.raises(ModelError) as info:
        await make_model().complete_json(MESSAGES, ANSWER, name="answer")
    assert info.value.kind == "invalid_json"
    assert info.value.text == '{"answer": "a", "confidence": '


async def test_schema_violation_names_the_path(llm: ScriptedLLM, make_model: ModelFactory) -> None:
    llm.reply(content={"answer": "a", "confidence": 7})
    with pytest.raises(ModelError) as info:
        await make_model().complete_json(MESSAGES, ANSWER, name="answer")
    assert info.value.kind == "schema"
    assert "confidence" in str(info.value)
    assert info.value.recoverable


async def test_empty_choices(llm: ScriptedLLM, make_model: ModelFactory) -> None:
    llm.reply(raw_body=json.dumps({"id": "x", "object": "chat.completion", "created": 0,
                                   "model": "m", "choices": []}))  # fmt: skip
    with pytest.raises(ModelError) as info:
        await make_model().complete_json(MESSAGES, ANSWER, name="answer")
    assert info.value.kind == "empty"


async def test_empty_content(llm: ScriptedLLM, make_model: ModelFactory) -> None:
    llm.reply(content="")
    with pytest.raises(ModelError) as info:
        await make_model().complete_json(MESSAGES, ANSWER, name="answer")
    assert info.value.kind == "empty"


async def test_complete_text(llm: ScriptedLLM, make_model: ModelFactory) -> None:
    llm.reply(content="Paris")
    reply = await make_model().complete_text(MESSAGES)
    assert reply.value == reply.text == "Paris"
    assert "response_format" not in llm.requests[0]


# -- transport: retries, statuses, time-outs -------------------------------------------------


async def test_429_with_retry_after_is_retried_by_the_sdk(
    llm: ScriptedLLM, make_model: ModelFactory
) -> None:
    llm.reply(status=429, content="slow down", headers={"Retry-After": "0.01"})
    llm.reply(content={"answer": "ok", "confidence": 1})
    reply = await make_model(max_retries=2).complete_json(MESSAGES, ANSWER, name="answer")
    assert reply.value["answer"] == "ok"
    assert len(llm.requests) == 2


async def test_500_then_success(llm: ScriptedLLM, make_model: ModelFactory) -> None:
    llm.reply(status=500, headers={"Retry-After": "0.01"})
    llm.reply(content={"answer": "ok", "confidence": 1})
    reply = await make_model(max_retries=2).complete_json(MESSAGES, ANSWER, name="answer")
    assert reply.value["answer"] == "ok"
    assert len(llm.requests) == 2


@pytest.mark.parametrize("status", [502, 503])
async def test_5xx_after_retries_is_an_http_error(
    llm: ScriptedLLM, make_model: ModelFactory, status: int
) -> None:
    llm.reply(status=status, content="upstream down", headers={"Retry-After": "0.01"}, times=None)
    with pytest.raises(ModelError) as info:
        await make_model(max_retries=1).complete_json(MESSAGES, ANSWER, name="answer")
    assert info.value.kind == "http"
    assert info.value.status == status
    assert not info.value.recoverable
    assert "upstream down" in str(info.value)
    assert len(llm.requests) == 2  # the first try and one retry


async def test_timeout_is_a_transport_error(llm: ScriptedLLM, make_model: ModelFactory) -> None:
    llm.reply(content={"answer": "late", "confidence": 1}, delay_s=30)
    with pytest.raises(ModelError) as info:
        await make_model(timeout_s=0.2).complete_json(MESSAGES, ANSWER, name="answer")
    assert info.value.kind == "transport"
    assert "timed out" in str(info.value)


async def test_unreachable_endpoint_is_a_transport_error() -> None:
    async with ScriptedLLM() as server:
        url = server.base_url  # a port that is closed once the server stops
    models = build_models({"guard": ModelConfig(base_url=url, model="m", max_retries=0)}, env={})
    try:
        with pytest.raises(ModelError) as info:
            await models["guard"].complete_text(MESSAGES)
        assert info.value.kind == "transport"
        assert "guard" in str(info.value)
    finally:
        await close_models(models)


async def test_unmatched_request_fails_loudly(llm: ScriptedLLM, make_model: ModelFactory) -> None:
    with pytest.raises(ModelError) as info:
        await make_model().complete_json(MESSAGES, ANSWER, name="answer")
    assert info.value.kind == "http"
    assert "no rule matched" in str(info.value)
    assert len(llm.requests) == 1


# -- API keys --------------------------------------------------------------------------------


async def test_api_key_is_sent_as_bearer_and_never_appears_in_errors(
    llm: ScriptedLLM, make_model: ModelFactory
) -> None:
    secret = "sk-test-5ecret-value-0123456789"
    model = make_model(env={"TEAM_LLM_KEY": secret}, api_key_env="TEAM_LLM_KEY")
    llm.reply(content="hi")
    # A server that echoes the key back in its error body must not leak it further.
    llm.reply(status=401, content=f"invalid key {secret}")

    await model.complete_text(MESSAGES)
    with pytest.raises(ModelError) as info:
        await model.complete_text(MESSAGES)

    assert llm.headers[0]["authorization"] == f"Bearer {secret}"
    assert secret not in str(info.value)
    assert secret not in repr(info.value.args)
    assert "TEAM_LLM_KEY" in str(info.value)
    assert secret not in repr(model.config) and secret not in repr(model)


async def test_roles_on_one_endpoint_share_a_client(llm: ScriptedLLM) -> None:
    async with ScriptedLLM() as other:
        configs = {
            "planner": ModelConfig(base_url=llm.base_url, model="big"),
            "executor": ModelConfig(base_url=llm.base_url, model="small", timeout_s=5),
            "guard": ModelConfig(base_url=other.base_url, model="judge"),
        }
        models = build_models(configs, env={})
        try:
            assert models["planner"]._shared is models["executor"]._shared
            assert models["planner"]._shared is not models["guard"]._shared
            assert models["executor"].model == "small"
        finally:
            await close_models(models)


async def test_idle_connections_beyond_the_limit_are_closed() -> None:
    """Calls may use up to max_connections at once; afterwards only max_idle_connections stay
    open (each idle one costs CPU on every later request)."""
    async with ScriptedLLM(latency_s=0.2) as server:
        server.reply(content={"answer": "a", "confidence": 1}, times=None)
        config = ModelConfig(
            base_url=server.base_url,
            model="m",
            max_retries=0,
            max_connections=12,
            max_idle_connections=3,
            http_client="httpx",  # the idle limit is httpx's pool's; aiohttp's has none
        )
        models = build_models({"planner": config}, env={})
        try:
            model = models["planner"]
            await asyncio.gather(
                *(model.complete_json(MESSAGES, ANSWER, name="answer") for _ in range(12))
            )
            assert server.peak_connections == 12
            async with asyncio.timeout(10):  # the server sees the surplus close
                while server.open_connections > 3:
                    await asyncio.sleep(0.01)
            await model.complete_json(MESSAGES, ANSWER, name="answer")  # a kept one still works
            assert server.open_connections <= 3
        finally:
            await close_models(models)


async def test_http_client_setting_picks_the_sdks_transport() -> None:
    import openai

    for kind, expected in (
        ("httpx", openai.DefaultAsyncHttpxClient),
        ("aiohttp", openai.DefaultAioHttpClient),
    ):
        config = ModelConfig(base_url="http://127.0.0.1:9/v1", model="m", http_client=kind)
        models = build_models({"planner": config}, env={})
        try:
            assert type(models["planner"]._shared._client) is expected
        finally:
            await close_models(models)


def test_embedded_role_without_embedded_model_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="embedded model"):
        build_models({"planner": ModelConfig(base_url=None, model="")}, env={})


# -- tool calls ------------------------------------------------------------------------------


async def test_native_tool_call_single_tool_is_forced(
    llm: ScriptedLLM, make_model: ModelFactory
) -> None:
    llm.reply(tool_calls=[{"id": "call_1", "name": "add", "arguments": {"a": 1, "b": 2}}])
    choice = await make_model().choose_tool(MESSAGES, [ADD])
    assert (choice.name, choice.arguments, choice.call_id) == ("add", {"a": 1, "b": 2}, "call_1")
    assert choice.reply.value == {"tool": "add", "arguments": {"a": 1, "b": 2}}
    sent = llm.requests[0]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert sent["tools"][0] == {
        "type": "function",
        "function": {"name": "add", "description": ADD.description, "parameters": ADD.parameters},
    }


async def test_native_tool_call_several_tools_required(
    llm: ScriptedLLM, make_model: ModelFactory
) -> None:
    llm.reply(tool_calls=[{"name": "search", "arguments": {"query": "q"}}])
    choice = await make_model().choose_tool(MESSAGES, [ADD, SEARCH])
    assert choice.name == "search" and choice.arguments == {"query": "q"}
    assert choice.call_id
    assert llm.requests[0]["tool_choice"] == "required"


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ({"content": "I think the answer is 3"}, "no_tool_call"),
        ({"tool_calls": [{"name": "delete_all", "arguments": {}}]}, "no_tool_call"),
        ({"tool_calls": [{"name": "add", "arguments": '{"a": 1,'}]}, "invalid_json"),
        ({"tool_calls": [{"name": "add", "arguments": {"a": "one", "b": 2}}]}, "schema"),
    ],
)
async def test_native_tool_call_errors(
    llm: ScriptedLLM, make_model: ModelFactory, reply: dict[str, Any], kind: str
) -> None:
    llm.reply(**reply)
    with pytest.raises(ModelError) as info:
        await make_model().choose_tool(MESSAGES, [ADD, SEARCH])
    assert info.value.kind == kind
    assert info.value.recoverable


async def test_structured_tool_choice_one_tool(llm: ScriptedLLM, make_model: ModelFactory) -> None:
    llm.reply(when="step_arguments", content={"tool": "add", "arguments": {"a": 3, "b": 4}})
    model = make_model(tool_call_mode="structured")
    choice = await model.choose_tool(MESSAGES, [ADD], name="step_arguments")
    assert (choice.name, choice.arguments) == ("add", {"a": 3, "b": 4})
    assert choice.call_id.startswith("call_")
    sent = llm.requests[0]
    assert "tools" not in sent
    schema = sent["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["tool"] == {"type": "string", "enum": ["add"]}
    assert schema["properties"]["arguments"] == ADD.parameters


async def test_structured_tool_choice_three_tools(
    llm: ScriptedLLM, make_model: ModelFactory
) -> None:
    call = {"tool": "transfer", "arguments": {"amount": {"units": "5", "currency": "EUR"}}}
    llm.reply(when="react_step", content={"call": call})
    model = make_model(tool_call_mode="structured")
    choice = await model.choose_tool(MESSAGES, [ADD, SEARCH, TRANSFER], name="react_step")
    assert choice.name == "transfer"
    assert choice.arguments == call["arguments"]
    schema = llm.requests[0]["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["call"]
    assert len(schema["properties"]["call"]["anyOf"]) == 3
    # The tool descriptions reach the model through the (prepended) system message.
    sent = llm.requests[0]["messages"]
    assert sent[0]["role"] == "system" and "Move money" in sent[0]["content"]
    assert sent[1:] == MESSAGES


async def test_structured_tool_choice_extends_an_existing_system_message(
    llm: ScriptedLLM, make_model: ModelFactory
) -> None:
    llm.reply(content={"tool": "add", "arguments": {"a": 1, "b": 1}})
    messages = [{"role": "system", "content": "You are careful."}, *MESSAGES]
    await make_model(tool_call_mode="structured").choose_tool(messages, [ADD])
    sent = llm.requests[0]["messages"]
    assert len(sent) == 2
    assert sent[0]["content"].startswith("You are careful.") and "add" in sent[0]["content"]
    assert messages[0]["content"] == "You are careful."  # the caller's list is not mutated


async def test_refusal_is_reported(llm: ScriptedLLM, make_model: ModelFactory) -> None:
    body = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": None, "refusal": "I can't."},
            }
        ],
    }
    llm.reply(raw_body=json.dumps(body))
    with pytest.raises(ModelError, match="refused: I can't") as info:
        await make_model().complete_json(MESSAGES, ANSWER, name="answer")
    assert info.value.kind == "empty"


async def test_structured_tool_choice_rejects_arguments_of_the_wrong_tool(
    llm: ScriptedLLM, make_model: ModelFactory
) -> None:
    llm.reply(content={"call": {"tool": "add", "arguments": {"query": "x"}}})
    with pytest.raises(ModelError) as info:
        await make_model(tool_call_mode="structured").choose_tool(MESSAGES, [ADD, SEARCH])
    assert info.value.kind == "schema"


def test_tool_choice_schema_hoists_defs_and_validates() -> None:
    schema = tool_choice_schema([ADD, TRANSFER])
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["$defs"]) == {"transfer.Money"}
    validator = jsonschema.Draft202012Validator(schema)
    good = {"call": {"tool": "transfer", "arguments": {"amount": {"units": "1", "currency": "X"}}}}
    bad = {"call": {"tool": "transfer", "arguments": {"amount": {"units": "1"}}}}
    assert validator.is_valid(good)
    assert not validator.is_valid(bad)
    assert not validator.is_valid({"tool": "add", "arguments": {"a": 1, "b": 2}})  # root union


def test_tool_choice_schema_rebases_root_self_references() -> None:
    tree = ToolSpec(
        "tree",
        "A recursive tool",
        {
            "type": "object",
            "properties": {"name": {"type": "string"}, "child": {"$ref": "#"}},
            "required": ["name"],
        },
    )
    schema = tool_choice_schema([tree])
    validator = jsonschema.Draft202012Validator(schema)
    ok = {"tool": "tree", "arguments": {"name": "a", "child": {"name": "b"}}}
    assert validator.is_valid(ok)
    assert not validator.is_valid({"tool": "tree", "arguments": {"name": "a", "child": {}}})


# -- stream mode (on_delta): the server-sent events read by agentd/llm/sse.py ----------------

SSE = {"content-type": "text/event-stream"}


def _sse(*events: Any) -> str:
    """A streamed reply's body: each event a ``data:`` line (dicts as JSON), then [DONE]."""
    lines = [f"data: {json.dumps(e) if isinstance(e, dict) else e}\n\n" for e in events]
    return "".join(lines) + "data: [DONE]\n\n"


def _chunk(content: str | None = None, finish_reason: str | None = None) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [choice]}


async def test_prompt_tokens_read_from_the_endpoints_cache_are_counted(
    llm: ScriptedLLM, make_model: ModelFactory
) -> None:
    value = {"answer": "42", "confidence": 0.5}
    llm.reply(when="answer", content=value, usage=(2400, 12, 2385), times=2)
    llm.reply(when="answer", content=value, usage=(100, 12, 5000))  # more than the prompt
    model = make_model()
    plain = await model.complete_json(MESSAGES, ANSWER, name="answer")
    streamed = await model.complete_json(MESSAGES, ANSWER, name="answer", on_delta=lambda _: None)
    odd = await model.complete_json(MESSAGES, ANSWER, name="answer")
    assert (plain.input_tokens, plain.cached_tokens) == (2400, 2385)
    assert (streamed.input_tokens, streamed.cached_tokens) == (2400, 2385)
    assert (odd.input_tokens, odd.cached_tokens) == (100, 100)  # never more than the prompt


async def test_stream_mode_passes_each_piece_and_returns_the_whole_reply(
    llm: ScriptedLLM, make_model: ModelFactory
) -> None:
    value = {"answer": 'Forty-two, "quoted" \\ and ünïcode ✓', "confidence": 0.5}
    llm.reply(when="answer", content=value, usage=(123, 45))
    llm.chunk_delay_s = 0.005  # decoding at a pace: the pieces come in several reads
    pieces: list[str] = []
    reply = await make_model().complete_json(
        MESSAGES, ANSWER, name="answer", on_delta=pieces.append
    )

    assert reply.value == value
    assert len(pieces) > 1 and "".join(pieces) == reply.text  # the pieces add up to the reply
    assert (reply.input_tokens, reply.output_tokens) == (123, 45)  # from the usage event
    assert reply.cached_tokens == 0  # the endpoint said nothing of a cache
    assert reply.finish_reason == "stop" and reply.model == "test-model"
    assert llm.requests[0]["stream"] is True
    assert llm.requests[0]["stream_options"] == {"include_usage": True}


_MIXED = (
    b": a comment\r\n"
    b'data: {"a": 1}\r\n\r\n'
    b"event: message\rid: 7\rdata: first line\rdata:second line\r\r"
    b'data: {"b": "\xc3\xbc"}\n\n'
    b"retry: 10\n\n"  # an event without data is none
    b"data: [DONE]\n\n"
    b"data: unterminated"  # the body ends without the empty line
)
_MIXED_EVENTS = [
    b'{"a": 1}',
    b"first line\nsecond line",
    b'{"b": "\xc3\xbc"}',
    b"[DONE]",
    b"unterminated",
]
_LF = (  # the usual form, LF only
    b'data: {"a": 1}\n\n'
    b": keep-alive\n\n"
    b"\n\n"
    b"data: one\ndata: two\n\n\n"
    b"data:no space\n\n"
    b"data: [DONE]\n\n"
)
_LF_EVENTS = [b'{"a": 1}', b"one\ntwo", b"no space", b"[DONE]"]


@pytest.mark.parametrize(("body", "expected"), [(_MIXED, _MIXED_EVENTS), (_LF, _LF_EVENTS)])
def test_events_are_read_from_bytes_cut_anywhere(body: bytes, expected: list[bytes]) -> None:
    for cut in range(len(body) + 1):
        for cuts in ((cut,), (cut, min(cut + 1, len(body)))):  # and a one-byte piece after it
            reader = sse.Events()
            events = []
            start = 0
            for end in (*cuts, len(body)):
                events += reader.feed(body[start:end])
                start = end
            events += reader.finish()
            assert events == expected, (cuts, events)


async def test_a_line_that_never_ends_is_refused(
    llm: ScriptedLLM, make_model: ModelFactory
) -> None:
    llm.reply(raw_body="data: " + "x" * (sse.MAX_LINE_BYTES + 10), headers=SSE)
    with pytest.raises(ModelError, match="is over") as info:
        await make_model().complete_json(MESSAGES, ANSWER, name="answer", on_delta=print)
    assert info.value.kind == "transport"


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"error": {"message": "the model is overloaded", "type": "server_error"}}, "overloaded"),
        ("{not json", "not JSON"),
        ("1, 2", "not JSON"),  # JSON only when read together with the others as one array
    ],
)
async def test_a_broken_or_error_event_is_a_model_error(
    llm: ScriptedLLM, make_model: ModelFactory, event: Any, message: str
) -> None:
    llm.reply(raw_body=_sse(_chunk('{"answer": "4'), event), headers=SSE)
    pieces: list[str] = []
    with pytest.raises(ModelError, match=message) as info:
        await make_model().complete_json(MESSAGES, ANSWER, name="answer", on_delta=pieces.append)
    assert info.value.kind == "transport"
    assert pieces == ['{"answer": "4']  # what came before the error was passed on


async def test_a_streamed_reply_cut_by_max_tokens_is_an_error(
    llm: ScriptedLLM, make_model: ModelFactory
) -> None:
    llm.reply(raw_body=_sse(_chunk('{"answer": "4'), _chunk(finish_reason="length")), headers=SSE)
    with pytest.raises(ModelError) as info:
        await make_model().complete_json(MESSAGES, ANSWER, name="answer", on_delta=print)
    assert info.value.kind == "length"


async def test_a_server_that_ignores_stream_mode_is_read_whole(
    llm: ScriptedLLM, make_model: ModelFactory
) -> None:
    body = {
        "id": "x",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": '{"answer": "4", "confidence": 1}'},
            }
        ],
    }
    llm.reply(raw_body=json.dumps(body))  # application/json, not server-sent events
    pieces: list[str] = []
    reply = await make_model().complete_json(
        MESSAGES, ANSWER, name="answer", on_delta=pieces.append
    )
    assert reply.value == {"answer": "4", "confidence": 1}
    assert pieces == []  # no piece: the run settles its answer whole (AnswerStream.settle)


async def test_pieces_read_at_once_are_passed_as_one(
    llm: ScriptedLLM, make_model: ModelFactory
) -> None:
    events = [
        _chunk('{"answer"'),
        _chunk(': "4", "conf'),
        _chunk('idence": 1}'),
        _chunk(None, "stop"),
    ]
    llm.reply(raw_body=_sse(*events), headers=SSE)  # one small body: one read
    pieces: list[str] = []
    reply = await make_model().complete_json(
        MESSAGES, ANSWER, name="answer", on_delta=pieces.append
    )
    assert reply.value == {"answer": "4", "confidence": 1}
    assert pieces == ['{"answer": "4", "confidence": 1}']
