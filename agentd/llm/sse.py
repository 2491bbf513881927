"""A streamed chat completion read from its server-sent events, put back together as one.

The openai SDK's ``AsyncStream`` decodes each event through several async generators, a
``ServerSentEvent`` object and the stdlib's ``json`` on a ``str``: about as much CPU per token
as the rest of a run's work per token put together. Here the response's bytes are split into
``data:`` fields (``Events``) and each is parsed with orjson when installed, straight from the
bytes; the request itself still goes through the SDK's ``post`` (its retries, ``Retry-After``,
time-outs and status errors are unchanged).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

_orjson: Any
try:
    import orjson as _orjson
except ImportError:
    _orjson = None

__all__ = ["Events", "StreamError", "completion", "loads"]

# An event (or one line of one) may be at most this long: a chunk carries a few tokens, so
# an event this long is a server that never ends it, not a model's reply.
MAX_LINE_BYTES = 1 << 20


class StreamError(ValueError):
    """The stream broke the protocol, or carried an error event; the message says which."""


class Events:
    """Splits server-sent events' bytes, cut anywhere, into each event's ``data`` (bytes).

    Lines end with LF, CRLF or CR; an empty line ends an event; ``data:`` fields of one event
    are joined by LF; comments and the other fields (``event``, ``id``, ``retry``) are not
    needed by a chat completion and are skipped."""

    def __init__(self) -> None:
        self.rest = b""  # what came after the last complete line (or event)
        self.data: list[bytes] = []  # the current event's data fields

    def feed(self, chunk: bytes) -> list[bytes]:
        text = self.rest + chunk if self.rest else chunk
        if b"\r" not in text and not self.data:
            # The usual form ("data: {...}" and an empty line, LF only): whole events at once.
            *blocks, self.rest = text.split(b"\n\n")
            self._bound()
            events = []
            for block in blocks:
                if block[:6] == b"data: " and b"\n" not in block:
                    events.append(block[6:])
                else:
                    events += self._lines([*block.split(b"\n"), b""])
            return events
        cut = max(text.rfind(b"\n"), text.rfind(b"\r"))
        if text.endswith(b"\r"):  # its LF may come next: the line ends with the next chunk
            cut = max(text.rfind(b"\n", 0, cut), text.rfind(b"\r", 0, cut))
        if cut < 0:
            self.rest = text
            self._bound()
            return []
        self.rest = text[cut + 1 :]
        self._bound()
        return self._lines(text[: cut + 1].splitlines())

    def finish(self) -> list[bytes]:
        """The events still open when the body ended (a server that left out the last empty
        line)."""
        lines = [*self.rest.splitlines(), b""]
        self.rest = b""
        return self._lines(lines)

    def _lines(self, lines: list[bytes]) -> list[bytes]:
        events = []
        for line in lines:
            if not line:
                if self.data:
                    events.append(b"\n".join(self.data))
                    self.data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                self.data.append(value[1:] if value[:1] == b" " else value)
        return events

    def _bound(self) -> None:
        if len(self.rest) > MAX_LINE_BYTES:
            raise StreamError(f"a server-sent event (or line) is over {MAX_LINE_BYTES} bytes")


def loads(data: bytes) -> Any:
    """JSON from bytes, with orjson when installed (agentd[fast])."""
    if _orjson is not None:
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError:
            pass  # json says the same, or reads what orjson refuses (e.g. NaN)
    return json.loads(data)


def _parsed(datas: list[bytes]) -> Iterator[Any]:
    """Each event's JSON: events read together parsed as one array (one call), else one by
    one, up to the first that is not JSON."""
    if len(datas) > 1:
        try:
            values = loads(b"[" + b",".join(datas) + b"]")
        except ValueError:
            values = None
        if isinstance(values, list) and len(values) == len(datas):
            yield from values
            return
    for data in datas:
        try:
            yield loads(data)
        except ValueError:
            raise StreamError(f"a server-sent event is not JSON: {data[:200]!r}") from None


def _error_message(error: Any) -> str:
    message = error.get("message") if isinstance(error, dict) else error
    return message if isinstance(message, str) and message else "an error event in the stream"


async def completion(
    chunks: AsyncIterator[bytes], on_delta: Callable[[str], None]
) -> dict[str, Any]:
    """The chat completion that ``chunks`` (a streamed response's body) carry, as the JSON
    object of an unstreamed one. The content is passed to ``on_delta`` as it comes: the
    pieces of all events read at once as one (a model decoding faster than agentd reads
    costs one call, not one per token). Raises ``StreamError`` for an event that is not JSON
    or carries an ``error``."""
    parts: list[str] = []
    message: dict[str, Any] = {}
    choice: dict[str, Any] = {"message": message, "finish_reason": None}
    whole: dict[str, Any] = {"choices": [choice]}
    events = Events()
    done = False  # after "data: [DONE]" the body is read to its end (the connection is reused)

    def take(chunk: Any) -> None:
        if not isinstance(chunk, dict):
            return
        if chunk.get("error"):
            raise StreamError(_error_message(chunk["error"]))
        if "id" not in whole:
            whole["id"], whole["model"] = chunk.get("id"), chunk.get("model")
        if isinstance(chunk.get("usage"), dict):  # the last chunk (include_usage)
            whole["usage"] = chunk["usage"]
        choices = chunk.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            return
        part = choices[0]
        delta = part.get("delta")
        if isinstance(delta, dict):
            content = delta.get("content")
            if content and isinstance(content, str):
                parts.append(content)
            if delta.get("refusal"):
                message["refusal"] = delta["refusal"]
        if part.get("finish_reason"):
            choice["finish_reason"] = part["finish_reason"]

    def take_all(datas: list[bytes]) -> None:
        nonlocal done
        if done:
            return
        if b"[DONE]" in datas:
            datas, done = datas[: datas.index(b"[DONE]")], True
        passed = len(parts)
        try:
            for chunk in _parsed(datas):
                take(chunk)
        finally:  # what came before an error event too
            if len(parts) > passed:
                on_delta("".join(parts[passed:]))

    async for chunk in chunks:
        take_all(events.feed(chunk))
    take_all(events.finish())
    message["content"] = "".join(parts)
    return whole
