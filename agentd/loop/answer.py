"""The answer as it is decoded: ``answer_delta`` events read from a model's JSON reply as it
streams, so a caller sees the answer token by token instead of waiting for the whole run.

A reply is a JSON object (``{"answer": ..., "missing": ...}`` from the responder, a plan with
``steps`` and ``answer`` from the planner); ``FieldText`` reads one top-level field of it from
the text as it arrives. ``AnswerStream`` keeps what the caller was sent: each model call that
may answer starts the answer over (an empty delta), and when the run succeeds, ``settle``
makes the deltas add up to the final output (the answer of a call that streamed nothing, a
react run's ``final_answer``, a text the loop wrote itself). Deltas are events like the
others, numbered and journaled so ``WatchRun`` replays them; the final record holds the answer.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from agentd.loop.state import Event

__all__ = ["AnswerStream", "FieldText"]

# The characters of a JSON string that stand for themselves: in any string, and in a string
# whose text is decoded (surrogates are joined into pairs one at a time).
_UNQUOTED = re.compile(r'[^"\\]+')
_PLAIN = re.compile(r'[^"\\\ud800-\udfff]+')


class _Value:
    """A top-level value being read: ``kind`` is string, container or scalar; ``decode``: a
    string's characters are wanted (else the value's JSON text as written)."""

    def __init__(self, member: str, kind: str, decode: bool) -> None:
        self.member = member
        self.kind = kind
        self.decode = decode
        self.raw: list[str] = []


class FieldText:
    """Reads the top-level ``field`` of a JSON object from its text, chunk by chunk.

    ``feed`` returns the field's text decoded so far from each chunk: a string's characters
    with escapes decoded (``as_json=False``; any other value is not read), or the value's JSON
    text as the model writes it (``as_json=True``). ``after_empty``: the field is read only
    when this other field came first as an empty array (a plan's answer counts only when it
    has no steps). Only the first occurrence of the field is read.
    """

    def __init__(self, field: str, *, as_json: bool = False, after_empty: str = "") -> None:
        self.field = field
        self.as_json = as_json
        self.after_empty = after_empty
        self.empty_first = not after_empty
        self.done = False
        self.depth = 0
        self.in_string = False
        self.escaped = False
        self.expect = ""  # at depth 1: "key", "value" (after its colon), or "" (after a value)
        self.key: list[str] | None = None  # a top-level key being read
        self.member = ""  # the last top-level key read
        self.value: _Value | None = None  # a top-level value being read
        self.escape = ""  # an escape sequence of the field's string, not complete yet
        self.high = ""  # a UTF-16 high surrogate waiting for its low half

    def feed(self, chunk: str) -> str:
        out: list[str] = []
        i, end = 0, len(chunk)
        while i < end and not self.done:
            if self.in_string and (taken := self._plain(chunk, i, out)):
                i += taken
                continue
            if self.in_string:
                self._string_char(chunk[i], out)
            else:
                self._structural_char(chunk[i], out)
            i += 1
        return "".join(out)

    def _plain(self, chunk: str, i: int, out: list[str]) -> int:
        """Reads a string's characters from ``i`` up to the next quote or backslash (and,
        in a decoded field, surrogate) at once: one at a time, a 600-character answer cost
        a run about 0.1 ms. Returns how many it read."""
        value = self.value
        decode = self.key is None and value is not None and value.decode
        if decode and (self.escape or self.high):
            return 0
        match = (_PLAIN if decode else _UNQUOTED).match(chunk, i)
        if match is None:
            return 0
        text = match.group()
        self.escaped = False
        if self.key is not None:
            self.key.append(text)
        elif value is not None:
            if not decode:
                value.raw.append(text)
            if decode or value.member == self.field:
                out.append(text)
        return len(text)

    def _string_char(self, ch: str, out: list[str]) -> None:
        closing = ch == '"' and not self.escaped
        self.escaped = ch == "\\" and not self.escaped
        if closing:
            self.in_string = False
        if self.key is not None:
            if closing:
                self.member, self.key = "".join(self.key), None
            else:
                self.key.append(ch)
            return
        value = self.value
        if value is None:
            return
        if value.decode:
            if closing:
                self._end(value, out)
            else:
                out.append(self._decoded(ch))
            return
        value.raw.append(ch)
        if value.member == self.field:
            out.append(ch)
        if closing and value.kind == "string":
            self._end(value, out)

    def _structural_char(self, ch: str, out: list[str]) -> None:
        value = self.value
        if value is not None and value.kind == "scalar" and (ch in ",}" or ch.isspace()):
            self._end(value, out)  # a number, true, false or null ends before this
            value = None
        if self.depth == 1 and self.expect == "value" and not ch.isspace():
            self.expect = ""
            value = self.value = self._start(ch)
            if value is not None and value.decode:
                self.in_string = True
                return
        if ch == '"':
            self.in_string = True
            if self.depth == 1 and self.expect == "key":
                self.key = []
                return
        elif ch in "{[":
            self.depth += 1
            if self.depth == 1:
                self.expect = "key"
        elif ch in "}]":
            self.depth -= 1
        elif self.depth == 1 and ch == ":":
            self.expect = "value"
        elif self.depth == 1 and ch == ",":
            self.expect = "key"
        if value is not None:
            value.raw.append(ch)
            if value.member == self.field:
                out.append(ch)
            if value.kind == "container" and self.depth == 1:
                self._end(value, out)
            elif self.after_empty and value.member == self.after_empty and ch not in "[] \t\r\n":
                self.done = True  # not an empty array: the field will not be read

    def _start(self, ch: str) -> _Value | None:
        """The reader of a top-level value starting with ``ch``, if it is wanted."""
        kind = "string" if ch == '"' else "container" if ch in "{[" else "scalar"
        if self.member == self.after_empty:
            return _Value(self.member, kind, decode=False)
        if self.member != self.field or not self.empty_first:
            return None
        if not self.as_json and kind != "string":
            return None
        return _Value(self.member, kind, decode=not self.as_json)

    def _end(self, value: _Value, out: list[str]) -> None:
        self.value = None
        if value.member == self.after_empty:
            self.empty_first = not "".join(value.raw)[1:-1].strip() and value.kind == "container"
        elif value.member == self.field:
            self.done = True
            if self.high:
                out.append(self.high)

    def _decoded(self, ch: str) -> str:
        """The text one character of the field's string adds (escapes and surrogate pairs
        are held until complete)."""
        if self.escape or ch == "\\":
            self.escape += ch
            if len(self.escape) < (6 if self.escape[1:2] == "u" else 2):
                return ""
            try:
                text = json.loads(f'"{self.escape}"')
            except ValueError:  # not JSON: what the model wrote, as written
                text = self.escape
            self.escape = ""
        else:
            text = ch
        if self.high:
            text, self.high = self.high + text, ""
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        elif "\ud800" <= text <= "\udbff":
            self.high = text
            return ""
        return text


class AnswerStream:
    """What a caller was sent of a run's answer, as ``answer_delta`` events through ``emit``.

    A piece goes out once ``MAX_WAIT_S`` has passed since the last delta, with the pieces
    waiting before it: a model's reply comes a token (a few characters) at a time, and each
    delta is a numbered, journaled event and a message; a reader still sees the answer grow
    about twenty times a second, however fast the model decodes."""

    MAX_WAIT_S = 0.05

    def __init__(self, emit: Callable[[Event], None]) -> None:
        self.emit = emit
        self.sent: list[str] = []  # the answer so far: what was emitted, then what is pending
        self.pending = ""
        self.shown = False  # whether a delta of this answer went out
        self.last = 0.0

    def reader(
        self, field: str = "answer", *, as_json: bool = False, after_empty: str = ""
    ) -> Callable[[str], None]:
        """An ``on_delta`` for one model call whose reply's ``field`` may be the answer (see
        ``FieldText``); the answer starts over with it."""
        self.restart()
        text = FieldText(field, as_json=as_json, after_empty=after_empty)

        def on_delta(chunk: str) -> None:
            if piece := text.feed(chunk):
                self.send(piece)

        return on_delta

    def restart(self) -> None:
        """The answer starts over: when some of it went out, the rest of it, then an empty
        delta (the caller drops the answer so far); else what was pending is dropped unsent."""
        if self.shown:
            self.flush()
            self.emit(Event("answer_delta", ""))
        self.sent.clear()
        self.pending, self.shown = "", False

    def send(self, text: str) -> None:
        self.sent.append(text)
        self.pending += text
        if time.monotonic() - self.last >= self.MAX_WAIT_S:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.emit(Event("answer_delta", self.pending))
            self.pending, self.shown, self.last = "", True, time.monotonic()

    def settle(self, output: str, output_json: Any = None) -> None:
        """At the end of a run that succeeded: the deltas add up to ``output`` (or, for a
        JSON answer, parse to ``output_json``); what they lack is sent now."""
        sent = "".join(self.sent)
        if output_json is not None and _parses_to(sent, output_json):
            self.flush()
            return
        if sent and not output.startswith(sent):
            self.restart()
            sent = ""
        if output[len(sent) :]:
            self.sent.append(output[len(sent) :])
            self.pending += output[len(sent) :]
        self.flush()


def _parses_to(text: str, value: Any) -> bool:
    try:
        return bool(json.loads(text) == value) if text else False
    except ValueError:
        return False
