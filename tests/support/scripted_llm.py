"""A scripted OpenAI-compatible Chat Completions server for tests and benchmarks.

It is a real HTTP/1.1 server on 127.0.0.1 (ephemeral port), written on asyncio streams, so the
openai SDK's transport, retries and timeouts are exercised exactly as in production. Replies come
from ordered rules (``reply``) or a dynamic ``responder``; an unmatched request gets HTTP 500 with
a body saying so, so a test that forgot a rule fails loudly instead of hanging. A request with
``"stream": true`` gets the same reply as server-sent events (``chat.completion.chunk`` objects
over chunked transfer encoding, the content a few characters per chunk, usage last when
``stream_options.include_usage`` asks, then ``data: [DONE]``), as OpenAI and llama.cpp send it.

Usage::

    async with ScriptedLLM(latency_s=0.2) as llm:
        llm.reply(when="plan", content={"steps": []})
        client = AsyncOpenAI(base_url=llm.base_url, api_key="test")
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

__all__ = ["Reply", "ScriptedLLM", "schema_name"]

Predicate = Callable[[dict[str, Any]], bool]
Responder = Callable[[dict[str, Any]], "Reply | Awaitable[Reply | None] | None"]

# Big enough that 1,000+ concurrent SDK connections are accepted without SYN retries.
_BACKLOG = 4096
_MAX_BODY = 64 * 1024 * 1024


@dataclass
class Reply:
    """One scripted answer. ``content`` dicts are JSON-dumped; ``raw_body`` replaces the body."""

    content: str | dict[str, Any] | list[Any] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str = "stop"
    status: int = 200
    headers: dict[str, str] | None = None
    delay_s: float = 0.0
    usage: tuple[int, int] | tuple[int, int, int] | None = None  # prompt, completion[, cached]
    raw_body: str | None = None


@dataclass
class _Rule:
    when: Predicate | None
    reply: Reply
    times: int | None  # None: forever
    label: str = ""


def schema_name(body: dict[str, Any]) -> str | None:
    """The structured-output schema name of a request (``response_format.json_schema.name``)."""
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and isinstance(fmt.get("json_schema"), dict):
        name = fmt["json_schema"].get("name")
        return name if isinstance(name, str) else None
    return None


@dataclass
class ScriptedLLM:
    """A loopback Chat Completions server answering from scripted rules.

    ``requests`` holds every chat-completions body received, ``headers`` the matching request
    headers (lower-cased names), so tests can assert on prompts and on what never leaked.
    """

    latency_s: float = 0.0
    model: str = "scripted"
    host: str = "127.0.0.1"
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    _rules: list[_Rule] = field(default_factory=list, repr=False)
    _responder: Responder | None = field(default=None, repr=False)
    _server: asyncio.Server | None = field(default=None, repr=False)
    _port: int = 0
    _ids: itertools.count[int] = field(default_factory=itertools.count, repr=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)
    # Most connections open at once, to check a client's pool from the server's side.
    peak_connections: int = 0
    # Between two server-sent events of a streamed reply: a model decoding tokens.
    chunk_delay_s: float = 0.0
    _arrived: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind an ephemeral port on loopback; returns once the socket accepts connections."""
        self._server = await asyncio.start_server(
            self._serve_connection, self.host, 0, backlog=_BACKLOG, limit=_MAX_BODY
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and every open keep-alive connection."""
        if self._server is None:
            return
        self._server.close()
        # Handlers may sit in a scripted delay; cancel them so nothing outlives the server.
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> ScriptedLLM:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def open_connections(self) -> int:
        """Client connections open now (keep-alive ones included)."""
        return len(self._tasks)

    @property
    def port(self) -> int:
        """The bound port (0 before ``start``)."""
        return self._port

    @property
    def base_url(self) -> str:
        """What to give an OpenAI client: ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self._port}/v1"

    # -- scripting -------------------------------------------------------------------------

    def reply(
        self,
        *,
        when: Predicate | str | None = None,
        content: str | dict[str, Any] | list[Any] | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        finish_reason: str = "stop",
        status: int = 200,
        headers: dict[str, str] | None = None,
        delay_s: float = 0.0,
        times: int | None = 1,
        usage: tuple[int, int] | tuple[int, int, int] | None = None,
        raw_body: str | None = None,
    ) -> None:
        """Append a rule. ``when`` is a predicate on the request body, or a schema name.

        Rules are tried in order; a rule is used ``times`` times (``None``: forever).
        ``tool_calls`` items are either ``{"name": ..., "arguments": dict | str}`` or the full
        OpenAI shape ``{"id", "type": "function", "function": {...}}``.
        """
        predicate: Predicate | None
        if isinstance(when, str):
            wanted = when
            predicate = lambda body: schema_name(body) == wanted  # noqa: E731
        else:
            predicate = when
        reply = Reply(
            content=content,
            tool_calls=tool_calls,
            finish_reason=finish_reason,
            status=status,
            headers=headers,
            delay_s=delay_s,
            usage=usage,
            raw_body=raw_body,
        )
        label = when if isinstance(when, str) else getattr(when, "__name__", "predicate")
        self._rules.append(_Rule(predicate, reply, times, label or "any"))

    def responder(self, fn: Responder) -> None:
        """Compute replies from the request when no rule matches (sync or async; None: no match)."""
        self._responder = fn

    def clear(self) -> None:
        """Forget rules, the responder and recorded requests."""
        self._rules.clear()
        self._responder = None
        self.requests.clear()
        self.headers.clear()

    async def wait_for_requests(self, count: int, timeout_s: float = 30.0) -> None:
        """Wait until ``count`` chat requests have arrived (readiness, not a sleep)."""
        async with asyncio.timeout(timeout_s):
            while len(self.requests) < count:
                self._arrived.clear()
                await self._arrived.wait()

    def saw(self, text: str) -> bool:
        """True if ``text`` appears in any recorded body or header (e.g. a caller's token)."""
        return any(text in json.dumps(body) for body in self.requests) or any(
            text in value for headers in self.headers for value in headers.values()
        )

    def pending(self) -> list[str]:
        """Labels of rules with uses left (finite ``times`` only), to assert a script ran out."""
        return [r.label for r in self._rules if r.times is not None and r.times > 0]

    # -- HTTP ------------------------------------------------------------------------------

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.peak_connections = max(self.peak_connections, len(self._tasks))
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
                    return
                method, path, req_headers = _parse_head(head)
                length = int(req_headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                status, resp_headers, payload = await self._dispatch(
                    method, path, req_headers, body
                )
                keep_alive = req_headers.get("connection", "").lower() != "close"
                if isinstance(payload, list):
                    await self._send_events(writer, resp_headers, payload, keep_alive)
                else:
                    writer.write(_render(status, resp_headers, payload, keep_alive))
                    await writer.drain()
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _send_events(
        self,
        writer: asyncio.StreamWriter,
        headers: dict[str, str],
        events: list[bytes],
        keep_alive: bool,
    ) -> None:
        """A 200 of server-sent events, each in its own HTTP chunk, written as it is made."""
        lines = ["HTTP/1.1 200 OK", "content-type: text/event-stream", "cache-control: no-cache"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append("transfer-encoding: chunked")
        lines.append("connection: keep-alive" if keep_alive else "connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        for event in events:
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            if self.chunk_delay_s > 0:
                await asyncio.sleep(self.chunk_delay_s)  # simulated decoding, not a readiness wait
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _dispatch(
        self, method: str, path: str, req_headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes | list[bytes]]:
        path = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and path in ("/health", "/v1/health"):
            return 200, {}, b'{"status":"ok"}'
        if method == "GET" and path == "/v1/models":
            models = {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "owned_by": "scripted"}],
            }
            return 200, {}, json.dumps(models).encode()
        if method != "POST" or path != "/v1/chat/completions":
            return 404, {}, _error_body(f"ScriptedLLM serves no {method} {path}", "not_found")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return 400, {}, _error_body("request body is not JSON", "invalid_request_error")
        self.requests.append(body)
        self.headers.append(req_headers)

        self._arrived.set()
        try:
            reply = await self._match(body)
        except Exception as exc:  # a broken predicate or responder must fail the test, not hang it
            message = f"ScriptedLLM: a rule or responder raised {exc!r}"
            return 500, {}, _error_body(message, "script_error")
        if reply is None:
            return 500, {}, _error_body(self._unmatched_message(body), "no_rule_matched")
        delay = self.latency_s + reply.delay_s
        if delay > 0:
            await asyncio.sleep(delay)  # simulated model latency, not a readiness wait
        payload = self._render_reply(body, reply)
        if body.get("stream") and reply.status < 400 and reply.raw_body is None:
            return 200, dict(reply.headers or {}), _events(json.loads(payload), body)
        return reply.status, dict(reply.headers or {}), payload

    async def _match(self, body: dict[str, Any]) -> Reply | None:
        for rule in self._rules:
            if rule.times is not None and rule.times <= 0:
                continue
            if rule.when is None or rule.when(body):
                if rule.times is not None:
                    rule.times -= 1
                return rule.reply
        if self._responder is not None:
            result = self._responder(body)
            if inspect.isawaitable(result):
                result = await result
            return result
        return None

    def _unmatched_message(self, body: dict[str, Any]) -> str:
        live = [r.label for r in self._rules if r.times is None or r.times > 0]
        last = body.get("messages", [{}])[-1] if body.get("messages") else {}
        return (
            "ScriptedLLM: no rule matched this request "
            f"(schema name {schema_name(body)!r}, tools "
            f"{[t.get('function', {}).get('name') for t in body.get('tools') or []]}, "
            f"last message {str(last.get('content'))[:200]!r}); rules with uses left: {live}"
        )

    def _render_reply(self, body: dict[str, Any], reply: Reply) -> bytes:
        if reply.raw_body is not None:
            return reply.raw_body.encode()
        content = reply.content
        strict = _strict_format(body)
        if strict is not None and isinstance(content, dict):
            # A strict-mode endpoint writes every property; unset ones as null.
            content = with_nulls(content, strict, strict)
        text = json.dumps(content) if isinstance(content, dict | list) else content
        if reply.status >= 400:
            return _error_body(text or HTTPStatus(reply.status).phrase, "scripted_error")
        n = next(self._ids)
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if reply.tool_calls:
            message["tool_calls"] = [
                _tool_call(call, f"call_{n}_{i}") for i, call in enumerate(reply.tool_calls)
            ]
        cached_tokens = 0
        if reply.usage is not None:
            prompt_tokens, completion_tokens, *cached = reply.usage
            cached_tokens = cached[0] if cached else 0
        else:
            # Roughly four characters a token: enough for usage accounting tests.
            prompt_tokens = max(1, len(json.dumps(body.get("messages", []))) // 4)
            completion_tokens = max(1, len(json.dumps(message)) // 4)
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if cached_tokens:  # as OpenAI and llama.cpp report a prompt-cache hit
            usage["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
        payload = {
            "id": f"chatcmpl-scripted-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
            "usage": usage,
        }
        return json.dumps(payload).encode()


def _events(completion: dict[str, Any], body: dict[str, Any]) -> list[bytes]:
    """``completion`` as a stream of ``chat.completion.chunk`` server-sent events."""
    choice = completion["choices"][0]
    message = choice["message"]
    head = {k: completion[k] for k in ("id", "created", "model")}
    head["object"] = "chat.completion.chunk"

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    # A few characters a chunk, as a tokenizer cuts text (escapes may be split: JSON text).
    for piece in re.findall(r"\s*\S{1,4}|\s+", message.get("content") or ""):
        chunks.append(chunk({"content": piece}))
    if message.get("tool_calls"):
        calls = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        chunks.append(chunk({"tool_calls": calls}))
    chunks.append(chunk({}, choice["finish_reason"]))
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        chunks.append({**head, "choices": [], "usage": completion["usage"]})
    return [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]


def _tool_call(call: dict[str, Any], default_id: str) -> dict[str, Any]:
    if "function" in call:
        return {"id": default_id, "type": "function", **call}
    arguments = call.get("arguments", {})
    return {
        "id": call.get("id", default_id),
        "type": "function",
        "function": {
            "name": call["name"],
            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
        },
    }


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = ([*lines[0].split(" ", 2), "", ""])[:3]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return method, path, headers


def _error_body(message: str, kind: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": kind}}).encode()


def _render(status: int, headers: dict[str, str], payload: bytes, keep_alive: bool) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Status"
    lines = [f"HTTP/1.1 {status} {phrase}"]
    if not any(name.lower() == "content-type" for name in headers):  # a raw_body may set its own
        lines.append("content-type: application/json")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"content-length: {len(payload)}")
    lines.append("connection: keep-alive" if keep_alive else "connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


# A pytest fixture for suites that register this module as a plugin
# (``pytest_plugins = ["tests.support.scripted_llm"]``); benchmarks import the class only.
try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - benchmarks without the dev extra
    pass
else:

    @pytest_asyncio.fixture
    async def scripted_llm() -> AsyncIterator[ScriptedLLM]:
        """A started ScriptedLLM, stopped after the test."""
        async with ScriptedLLM() as llm:
            yield llm


def _strict_format(body: dict[str, Any]) -> dict[str, Any] | None:
    """The schema of a ``strict: true`` structured-output request, else None."""
    fmt = body.get("response_format")
    spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
    if isinstance(spec, dict) and spec.get("strict") and isinstance(spec.get("schema"), dict):
        return spec["schema"]
    return None


def with_nulls(value: Any, schema: Any, root: dict[str, Any]) -> Any:
    """``value`` with every property ``schema`` names but ``value`` lacks written as null."""
    while isinstance(schema, dict) and "$ref" in schema:
        schema = root.get("$defs", {}).get(schema["$ref"].rpartition("/")[2], {})
    if not isinstance(schema, dict):
        return value
    if isinstance(value, list):
        return [with_nulls(v, schema.get("items"), root) for v in value]
    if not isinstance(value, dict):
        return value
    for branch in schema.get("anyOf", ()):
        if _fits(value, branch, root):
            return with_nulls(value, branch, root)
    properties = schema.get("properties", {})
    filled = {
        k: with_nulls(value[k], p, root) if k in value else None for k, p in properties.items()
    }
    return {**value, **filled}


def _fits(value: dict[str, Any], branch: Any, root: dict[str, Any]) -> bool:
    """An object branch with every key of ``value``, whose enums allow its values."""
    while isinstance(branch, dict) and "$ref" in branch:
        branch = root.get("$defs", {}).get(branch["$ref"].rpartition("/")[2], {})
    properties = branch.get("properties") if isinstance(branch, dict) else None
    if not isinstance(properties, dict) or not set(value) <= set(properties):
        return False
    return all(
        value[k] in properties[k]["enum"]
        for k in value
        if isinstance(properties[k], dict) and "enum" in properties[k]
    )
