"""The OpenAI implementation of ``ChatModel``: one per role over any OpenAI-compatible endpoint.

Transport concerns (retries with ``Retry-After``, timeouts, connection pooling) belong to the
openai SDK, the request's JSON to ``agentd.llm.request``; this module sends it, decodes the reply
and turns every failure into one ``ModelError`` whose ``kind`` tells the loop whether to feed it
back to the model or give up.
Telemetry is not in here: ``build_models`` wraps each model in a ``TracedChatModel``.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx2  # the openai SDK's HTTP client
import openai

from agentd.config import ModelConfig, ToolCallMode
from agentd.llm import sse
from agentd.llm.model import (
    ChatModel,
    ErrorKind,
    ModelError,
    ModelReply,
    ToolChoice,
    ToolSpec,
    decode_json,
    schema_problem,
)
from agentd.llm.request import (
    function_tool,
    payload,
    response_format,
    tool_choice_schema,
    with_tool_guide,
)
from agentd.llm.sse import loads as _loads
from agentd.llm.traced import TracedChatModel

if TYPE_CHECKING:
    from agentd.llm.embedded import EmbeddedModel

__all__ = [
    "ChatModel",
    "ErrorKind",
    "ModelConfig",
    "ModelError",
    "ModelReply",
    "OpenAIChatModel",
    "ToolChoice",
    "ToolSpec",
    "build_models",
    "close_models",
]

# Sent when no key is configured: local servers (llama.cpp, vLLM, Ollama) ignore it, and the SDK
# refuses to build a client without one.
_NO_KEY = "no-key-configured"
_ERROR_TEXT_LIMIT = 300


class OpenAIChatModel:
    """One role's model. Cheap to create; shares its AsyncOpenAI client with same-endpoint roles."""

    def __init__(
        self, role: str, config: ModelConfig, client: openai.AsyncOpenAI, *, embedded: bool = False
    ) -> None:
        self.role = role
        self.embedded = embedded  # llama.cpp inside this process
        self.config = config
        self.model = config.model
        self.tool_call_mode: ToolCallMode = config.tool_call_mode
        self.endpoint = str(client.base_url).rstrip("/")
        self._shared = client
        # A configured secret: runs redact it wherever it might be echoed.
        key = client.api_key
        self.api_key = key if isinstance(key, str) and key != _NO_KEY else ""
        # with_options shares the connection pool; timeouts and retries stay per role.
        self._client = client.with_options(timeout=config.timeout_s, max_retries=config.max_retries)

    def __repr__(self) -> str:
        return (
            f"OpenAIChatModel(role={self.role!r}, model={self.model!r}, endpoint={self.endpoint!r})"
        )

    # -- public calls ----------------------------------------------------------------------

    async def complete_text(self, messages: list[dict[str, Any]]) -> ModelReply:
        """Free text. ``length`` is still an error: a truncated answer is not an answer."""
        reply, message = await self._create(messages)
        text = _text(message.get("content"))
        if not text.strip():
            raise self._error("empty", "the reply had no content", reply=reply)
        return dataclasses.replace(reply, value=text, text=text)

    async def complete_json(
        self,
        messages: list[dict[str, Any]],
        schema: dict[str, Any],
        *,
        name: str,
        strict: bool = False,
        on_delta: Callable[[str], None] | None = None,
    ) -> ModelReply:
        """Structured output constrained by ``schema``; the decoded value is validated again.

        Pass ``strict=True`` only for schemas meeting OpenAI strict mode (every property
        required, ``additionalProperties: false``, object root). ``on_delta``: the reply's
        text is streamed (the SDK's stream mode, server-sent events) and each piece passed to
        it as it is decoded; the whole is decoded and validated at the end as without it.
        """
        reply, message = await self._create(
            messages, on_delta, response_format=response_format(name, schema, strict)
        )
        value = self._decode(reply, _text(message.get("content")))
        self._validate(value, schema, reply, what=f"the {name!r} reply")
        return dataclasses.replace(reply, value=value)

    async def choose_tool(
        self,
        messages: list[dict[str, Any]],
        tools: Sequence[ToolSpec],
        *,
        name: str = "tool_call",
        strict: bool = False,
    ) -> ToolChoice:
        """Ask for exactly one call of one of ``tools``, natively or as structured output.

        The arguments are validated against the tool's parameters. If a native reply holds
        several calls, the first is used: the executor, not the model, decides parallelism.
        """
        if not tools:
            raise ValueError("choose_tool needs at least one tool")
        if self.tool_call_mode == "structured":
            return await self._choose_structured(messages, tools, name=name, strict=strict)
        return await self._choose_native(messages, tools, strict=strict)

    async def aclose(self) -> None:
        """Close the shared HTTP client (closes it for every role sharing the endpoint)."""
        await self._shared.close()

    # -- tool calls ------------------------------------------------------------------------

    async def _choose_native(
        self, messages: list[dict[str, Any]], tools: Sequence[ToolSpec], *, strict: bool
    ) -> ToolChoice:
        specs = [function_tool(t, strict) for t in tools]
        # A single tool is forced by name; several use "required" so the model cannot answer.
        tool_choice: Any = (
            {"type": "function", "function": {"name": tools[0].name}}
            if len(tools) == 1
            else "required"
        )
        reply, message = await self._create(messages, tools=specs, tool_choice=tool_choice)
        calls = message.get("tool_calls") or []
        if not isinstance(calls, list) or not calls:
            raise self._error(
                "no_tool_call",
                f"expected a call to one of {[t.name for t in tools]}, got text instead",
                reply=reply,
            )
        call = calls[0] if isinstance(calls[0], dict) else {}
        function = call.get("function")
        if not isinstance(function, dict):
            raise self._error("no_tool_call", "the tool call was not a function call", reply=reply)
        called, text = function.get("name"), _text(function.get("arguments"))
        by_name = {t.name: t for t in tools}
        if called not in by_name:
            raise self._error(
                "no_tool_call",
                f"called unknown tool {called!r}; offered {sorted(by_name)}",
                reply=dataclasses.replace(reply, text=text),
            )
        reply = dataclasses.replace(reply, text=text)
        arguments = self._decode(reply, text or "{}")
        if not isinstance(arguments, dict):
            raise self._error("schema", "tool arguments must be a JSON object", reply=reply)
        self._validate(
            arguments, by_name[called].parameters, reply, what=f"arguments of {called!r}"
        )
        reply = dataclasses.replace(reply, value={"tool": called, "arguments": arguments})
        return ToolChoice(called, arguments, reply, str(call.get("id") or "") or _call_id())

    async def _choose_structured(
        self,
        messages: list[dict[str, Any]],
        tools: Sequence[ToolSpec],
        *,
        name: str,
        strict: bool,
    ) -> ToolChoice:
        schema = tool_choice_schema(tools)
        reply = await self.complete_json(
            with_tool_guide(messages, tools), schema, name=name, strict=strict
        )
        value = reply.value["call"] if len(tools) > 1 else reply.value
        tool, arguments = value["tool"], value["arguments"]
        return ToolChoice(tool, arguments, dataclasses.replace(reply, value=value), _call_id())

    # -- plumbing --------------------------------------------------------------------------

    async def _create(
        self,
        messages: list[dict[str, Any]],
        on_delta: Callable[[str], None] | None = None,
        **extra: Any,
    ) -> tuple[ModelReply, dict[str, Any]]:
        """One Chat Completions call; returns the reply skeleton and the first choice's message
        (the JSON object of the reply's ``choices[0].message``). With ``on_delta`` the call
        streams, and the chunks are put back together into the same shape."""
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            **extra,
        }
        start = time.perf_counter()
        try:
            # The SDK's own POST (its retries, Retry-After and time-outs) without
            # ``chat.completions.create``'s recursive transform of typed parameters, which
            # cost over 1 ms a call on plan schemas; the body here is plain JSON already.
            # The body goes as bytes when orjson made them (the SDK sends bytes as they
            # are), and the reply comes back as bytes, decoded here: the SDK's json.dumps
            # and its typed ChatCompletion objects cost more than the few fields read.
            if on_delta is None:
                raw = await self._client.post("/chat/completions", cast_to=bytes, **payload(body))
            else:
                raw = await self._streamed(body, on_delta)
        except openai.APITimeoutError as exc:
            raise self._error(
                "transport",
                f"timed out after {self.config.timeout_s:g}s "
                f"({self.config.max_retries} retries); raise llm.timeout_s or check the endpoint",
            ) from exc
        except openai.APIConnectionError as exc:
            raise self._error("transport", f"cannot reach the endpoint: {_clip(str(exc))}") from exc
        except openai.APIStatusError as exc:
            raise self._error("http", self._status_message(exc), status=exc.status_code) from exc
        except openai.OpenAIError as exc:
            raise self._error("transport", _clip(str(exc))) from exc
        latency = time.perf_counter() - start
        try:
            completion = raw if isinstance(raw, dict) else _loads(raw)
        except ValueError:
            completion = None
        if not isinstance(completion, dict):
            text = bytes(raw).decode(errors="replace")
            raise self._error("transport", f"the reply is not a JSON object: {_clip(text)}")

        usage = completion.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        choices = completion.get("choices")
        reply = ModelReply(
            value=None,
            text="",
            finish_reason="",
            input_tokens=_count(usage.get("prompt_tokens")),
            output_tokens=_count(usage.get("completion_tokens")),
            model=str(completion.get("model") or self.model),
            latency_s=latency,
            cached_tokens=_cached(usage),
        )
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self._error("empty", "the reply had no choices", reply=reply)
        choice = choices[0]
        message = choice.get("message")
        message = message if isinstance(message, dict) else {}
        finish_reason = str(choice.get("finish_reason") or "")
        content = _text(message.get("content"))
        response_id = completion.get("id")
        reply = dataclasses.replace(
            reply,
            text=content,
            finish_reason=finish_reason,
            response_id=response_id if isinstance(response_id, str) else "",
        )
        refusal = message.get("refusal")
        if refusal and not content and not message.get("tool_calls"):
            raise self._error("empty", f"the model refused: {_clip(str(refusal))}", reply=reply)
        if finish_reason == "length":
            raise self._error(
                "length",
                f"the reply hit max_tokens ({self.config.max_tokens}) and was cut off; "
                "bound the schema (maxLength, maxItems) or raise llm.max_tokens",
                reply=reply,
            )
        return reply, message

    async def _streamed(
        self, body: dict[str, Any], on_delta: Callable[[str], None]
    ) -> dict[str, Any] | bytes:
        """A streamed completion, each content piece passed to ``on_delta`` as it comes;
        returned as the JSON object of a whole completion. The SDK sends the request (its
        retries, time-outs, status errors) and hands back the raw response, whose
        server-sent events agentd/llm/sse.py reads: the SDK's own stream decoding costs
        more per token than the rest of the run's work per token. A server that answers
        with one JSON body instead is read as the unstreamed reply it is (bytes)."""
        response = await self._client.post(
            "/chat/completions",
            cast_to=httpx2.Response,
            stream=True,
            stream_cls=openai.AsyncStream[object],
            **payload({**body, "stream": True, "stream_options": {"include_usage": True}}),
        )
        try:
            if response.headers.get("content-type", "").startswith("application/json"):
                return await response.aread()  # its answer comes whole (AnswerStream.settle)
            return await sse.completion(response.aiter_bytes(), on_delta)
        except httpx2.TimeoutException as exc:
            raise openai.APITimeoutError(request=response.request) from exc
        except httpx2.RequestError as exc:
            raise openai.APIConnectionError(request=response.request) from exc
        except sse.StreamError as exc:
            raise openai.APIError(str(exc), response.request, body=None) from exc
        finally:
            await response.aclose()

    def _decode(self, reply: ModelReply, text: str | None) -> Any:
        try:
            return decode_json(text)
        except ModelError as exc:
            raise self._error(exc.kind, exc.detail, reply=reply) from exc.__cause__

    def _validate(
        self, value: Any, schema: dict[str, Any], reply: ModelReply, *, what: str
    ) -> None:
        problem = schema_problem(value, schema, what=what)
        if problem:
            raise self._error("schema", problem, reply=reply)

    def _status_message(self, exc: openai.APIStatusError) -> str:
        message = f"HTTP {exc.status_code}: {_clip(_error_text(exc))}"
        if exc.status_code in (401, 403):
            message += f" (check the key in env var {self.config.api_key_env})"
        elif exc.status_code == 429 or exc.status_code >= 500:
            message += f" (after {self.config.max_retries} retries)"
        return message

    def _error(
        self,
        kind: ErrorKind,
        message: str,
        *,
        reply: ModelReply | None = None,
        status: int | None = None,
    ) -> ModelError:
        return ModelError(
            kind,
            _redact(message, self._shared.api_key),
            role=self.role,
            model=self.model,
            endpoint=self.endpoint,
            text=reply.text if reply else "",
            status=status,
            reply=reply,
        )


def build_models(
    configs: Mapping[str, ModelConfig],
    *,
    embedded: EmbeddedModel | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, ChatModel]:
    """One ``ChatModel`` per role (an ``OpenAIChatModel`` in a ``TracedChatModel``); roles with
    the same endpoint and key share one client.

    Roles with ``base_url=None`` use the started ``embedded`` model in structured mode.
    """
    env = os.environ if env is None else env
    clients: dict[tuple[str, str], openai.AsyncOpenAI] = {}
    models: dict[str, ChatModel] = {}
    for role, config in configs.items():
        if config.base_url is None:
            if embedded is None:
                raise ValueError(
                    f"role {role!r} has no llm base_url, so it needs the embedded model, "
                    "but none was started"
                )
            config = dataclasses.replace(
                config,
                base_url=embedded.base_url,
                model=embedded.model,
                tool_call_mode="structured",  # native tool calls never come back from it
            )
        assert config.base_url is not None
        is_embedded = embedded is not None and config.base_url == embedded.base_url
        key = (config.base_url.rstrip("/"), config.api_key_env)
        if key not in clients:
            clients[key] = openai.AsyncOpenAI(
                base_url=config.base_url,
                api_key=env.get(config.api_key_env) or _NO_KEY,
                max_retries=config.max_retries,
                timeout=config.timeout_s,
                http_client=_http_client(config),
            )
        model = OpenAIChatModel(role, config, clients[key], embedded=is_embedded)
        models[role] = TracedChatModel(
            model, temperature=config.temperature, max_tokens=config.max_tokens
        )
    return models


async def close_models(models: Mapping[str, ChatModel]) -> None:
    """Close each distinct shared client once (models of one endpoint share theirs)."""
    seen: set[int] = set()
    for model in models.values():
        inner = model.inner if isinstance(model, TracedChatModel) else model
        shared = inner._shared if isinstance(inner, OpenAIChatModel) else inner
        if id(shared) not in seen:
            seen.add(id(shared))
            await model.aclose()


# -- helpers -------------------------------------------------------------------------------


def _http_client(config: ModelConfig) -> httpx2.AsyncClient:
    """The SDK's HTTP client for one endpoint (``llm.http_client``), its pool sized by
    ``llm.max_connections``: the SDK's aiohttp transport when installed (or asked for), else
    httpx's pool, which keeps at most ``llm.max_idle_connections`` idle ones."""
    limits = httpx2.Limits(
        max_connections=config.max_connections,
        max_keepalive_connections=min(config.max_idle_connections, config.max_connections),
    )
    aiohttp_client = getattr(openai, "DefaultAioHttpClient", None)
    if config.http_client != "httpx" and aiohttp_client is not None:
        try:
            return aiohttp_client(limits=limits)  # type: ignore[no-any-return]
        except RuntimeError:  # the SDK's aiohttp extra is not installed
            pass
    if config.http_client == "aiohttp":
        raise ValueError(
            "llm.http_client = 'aiohttp' needs the openai SDK's aiohttp transport;"
            " pip install 'agentd[fast]' (or 'openai[aiohttp]')"
        )
    return openai.DefaultAsyncHttpxClient(limits=limits)


def _error_text(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return exc.message


def _redact(message: str, api_key: Any) -> str:
    # Servers sometimes echo a key back in an error body; never pass one on.
    if isinstance(api_key, str) and len(api_key) >= 4 and api_key != _NO_KEY:
        message = message.replace(api_key, "[redacted]")
    return message


def _clip(text: str) -> str:
    return text if len(text) <= _ERROR_TEXT_LIMIT else text[:_ERROR_TEXT_LIMIT] + "…"


def _text(value: Any) -> str:
    """A message's text field (``content``, ``arguments``); absent or null is ""."""
    return value if isinstance(value, str) else "" if value is None else str(value)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _cached(usage: dict[str, Any]) -> int:
    """Prompt tokens served from the endpoint's cache (OpenAI and llama.cpp both report
    ``usage.prompt_tokens_details.cached_tokens``); never more than the prompt itself."""
    details = usage.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return min(cached, _count(usage.get("prompt_tokens")))


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"
