"""Streaming to the caller: the run id before any model reply, the answer as it is decoded.

Over the real stack (daemon, example upstreams, the scripted OpenAI-protocol model speaking
server-sent events to the SDK's stream mode). The embedded model's case is in
tests/test_embedded_run.py.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from agentd.api.service import RUN_ID_KEY, TRACE_ID_KEY
from agentd.loop.answer import AnswerStream, FieldText
from agentd.loop.state import Event
from agentd.v1 import agent_pb2
from tests.support.scripted_llm import Reply, schema_name
from tests.test_agent import SECRET, Stack, answer, plan, stack, start_stack
from tests.test_guardrails import RULES_GUARD

__all__ = ["stack"]

GET_VENDOR = {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_001"}}
# Escapes, quotes, a surrogate pair and non-ASCII text: each may be cut between two chunks.
ANSWER = 'Vendor "ven_001" is Acme\\Co — café ☕ 😀\nPhone: +1 555 0100.'


def deltas(events: list[agent_pb2.RunEvent]) -> list[str]:
    return [e.answer_delta for e in events if e.WhichOneof("event") == "answer_delta"]


def answer_so_far(events: list[agent_pb2.RunEvent]) -> str:
    """What a client shows: the deltas since the last empty one, concatenated."""
    text: list[str] = []
    for piece in deltas(events):
        text = [*text, piece] if piece else []
    return "".join(text)


def decoding(s: Stack) -> None:
    """The model decodes at a pace (about 4 characters every 10 ms): the answer comes in
    several deltas, each what came in 50 ms."""
    s.llm.chunk_delay_s = 0.01


def streamed(s: Stack) -> list[dict[str, Any]]:
    """The model requests that asked for a streamed reply."""
    return [r for r in s.llm.requests if r.get("stream")]


# --- 1. the run id before any model reply ------------------------------------------------


@pytest.mark.parametrize("rpc", ["Run", "RunStream"])
async def test_the_run_id_arrives_before_the_first_model_reply(stack: Stack, rpc: str) -> None:
    s = stack
    release = asyncio.Event()

    async def slow_planner(body: dict[str, Any]) -> Reply:
        await release.wait()  # the model has not replied until the test says so
        return Reply(content=plan(answer="Hello.") if schema_name(body) == "plan" else None)

    s.llm.responder(slow_planner)
    request = agent_pb2.RunRequest(task="Say hello.")
    channel = grpc.aio.insecure_channel(s.daemon.address)
    # Python's unary stub hands headers over only with the response; read Run's bytes as a
    # stream of one message to see when its headers really arrive (as grpc-java's onHeaders).
    method = channel.unary_stream(
        f"/agentd.v1.AgentService/{rpc}",
        request_serializer=agent_pb2.RunRequest.SerializeToString,
        response_deserializer=(
            agent_pb2.RunResponse if rpc == "Run" else agent_pb2.RunEvent
        ).FromString,
    )
    call = method(request, metadata=(("authorization", SECRET),), timeout=30)
    headers = dict(await call.initial_metadata())

    run_id, trace_id = headers[RUN_ID_KEY], headers[TRACE_ID_KEY]
    assert not release.is_set() and len(run_id) == 32 and len(trace_id) == 32
    # The caller can follow the run already: it is stored, running.
    running = await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=run_id), timeout=10)
    assert running.status == agent_pb2.RUN_STATUS_RUNNING
    assert running.trace_id == trace_id
    release.set()
    replies = [reply async for reply in call]
    await channel.close()
    final = replies[-1] if rpc == "Run" else replies[-1].final
    assert (final.run_id, final.trace_id) == (run_id, trace_id)
    assert final.status == agent_pb2.RUN_STATUS_SUCCEEDED, final.error


async def test_a_refused_run_sends_no_run_id(stack: Stack) -> None:
    # Refused before it started (no such tool): no run to follow, no id promised.
    call = stack.stub.Run(agent_pb2.RunRequest(task="x", tools=["NoSuchTool"]), timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert RUN_ID_KEY not in dict(await call.initial_metadata())


# --- 2. the answer as it is decoded ------------------------------------------------------


async def test_answer_deltas_add_up_to_the_final_answer(stack: Stack) -> None:
    s = stack
    decoding(s)
    s.llm.reply(when="plan", content=plan(GET_VENDOR))
    s.llm.reply(when="answer", content=answer(ANSWER))
    events = await s.stream("Who is ven_001 and what is their phone?")

    final = events[-1].final
    assert final.status == agent_pb2.RUN_STATUS_SUCCEEDED, final.error
    assert final.output == ANSWER
    pieces = deltas(events)
    assert len(pieces) > 1 and "" not in pieces  # as decoded, never started over
    assert "".join(pieces) == final.output
    # The answer comes after the step it is written from, and before the final event.
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds.index("answer_delta") > kinds.index("step_finished")
    assert kinds[-1] == "final" and kinds[-2] == "answer_delta"
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    # The SDK's stream mode, asking for usage in the last chunk: the planner's reply (its
    # answer streams when it has no steps) and the responder's.
    assert [schema_name(r) for r in streamed(s)] == ["plan", "answer"]
    assert streamed(s)[1]["stream_options"] == {"include_usage": True}
    usage = {u.role: u for u in final.usage}
    assert usage["responder"].output_tokens > 0  # from the stream's usage chunk
    # Deltas are never journaled: the stored record is the final one.
    stored = await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=final.run_id), timeout=10)
    assert stored.output == ANSWER


async def test_run_does_not_stream_the_model(stack: Stack) -> None:
    s = stack
    s.llm.reply(when="plan", content=plan(GET_VENDOR))
    s.llm.reply(when="answer", content=answer(ANSWER))
    response = await s.run("Who is ven_001?")
    assert response.output == ANSWER
    assert streamed(s) == []  # nobody follows the events: one JSON reply per call


async def test_with_stream_answer_off_runstream_carries_steps_and_the_final_only(
    tmp_path: Path,
) -> None:
    """agent.stream_answer = false: RunStream still numbers and sends the step events and the
    final record, but the model's replies are not streamed and no answer_delta is sent."""
    async for s in start_stack(tmp_path, env={"AGENTD_AGENT_STREAM_ANSWER": "false"}):
        s.llm.reply(when="plan", content=plan(GET_VENDOR))
        s.llm.reply(when="answer", content=answer(ANSWER))
        events = await s.stream("Who is ven_001 and what is their phone?")
        assert events[-1].final.output == ANSWER
        assert deltas(events) == [] and streamed(s) == []
        kinds = [e.WhichOneof("event") for e in events]
        assert kinds[:3] == ["plan", "step_started", "step_finished"] and kinds[-1] == "final"
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))


async def test_a_plans_direct_answer_streams(stack: Stack) -> None:
    s = stack
    decoding(s)
    s.llm.reply(when="plan", content=plan(answer=ANSWER))
    events = await s.stream("Write a note about ven_001 without tools.")
    final = events[-1].final
    assert final.output == ANSWER and not final.steps
    assert len(deltas(events)) > 1 and "".join(deltas(events)) == ANSWER
    assert [schema_name(r) for r in streamed(s)] == ["plan"]


async def test_a_json_answer_streams_as_its_json_text(stack: Stack) -> None:
    s = stack
    decoding(s)
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "ids": {"type": "array"}},
        "required": ["name", "ids"],
    }
    value = {"name": 'Acme "Co" ☕', "ids": ["ven_001", 2]}
    s.llm.reply(when="plan", content=plan(GET_VENDOR))
    s.llm.reply(when="answer", content=answer(value))
    events = await s.stream("Who is ven_001?", response_schema=json.dumps(schema))
    final = events[-1].final
    assert final.status == agent_pb2.RUN_STATUS_SUCCEEDED, final.error
    assert len(deltas(events)) > 1
    assert json.loads("".join(deltas(events))) == value == json.loads(final.output)


async def test_an_answer_asked_again_starts_over(stack: Stack) -> None:
    s = stack
    s.llm.reply(when="plan", content=plan(GET_VENDOR))
    s.llm.reply(when="answer", content=answer("answer"))  # a placeholder: rejected, re-asked
    s.llm.reply(when="answer", content=answer(ANSWER))
    events = await s.stream("Who is ven_001?")
    final = events[-1].final
    assert final.output == ANSWER
    pieces = deltas(events)
    assert pieces.count("") == 1 and "".join(pieces[: pieces.index("")]) == "answer"
    assert answer_so_far(events) == final.output


async def test_a_replan_after_an_answer_starts_it_over(stack: Stack) -> None:
    s = stack
    s.llm.reply(when="plan", content=plan(GET_VENDOR))
    s.llm.reply(when="answer", content=answer("Acme, phone unknown", missing="the phone"))
    s.llm.reply(when="plan", content=plan({**GET_VENDOR, "id": "s2"}))
    s.llm.reply(when="answer", content=answer(ANSWER))
    events = await s.stream("Who is ven_001 and what is their phone?")
    final = events[-1].final
    assert final.status == agent_pb2.RUN_STATUS_SUCCEEDED, final.error
    assert "" in deltas(events) and answer_so_far(events) == final.output == ANSWER


async def test_with_output_guards_the_answer_comes_whole_after_they_pass(
    tmp_path: Path,
) -> None:

    async for s in start_stack(tmp_path, extra=RULES_GUARD):
        s.llm.reply(when="plan", content=plan(GET_VENDOR))
        s.llm.reply(when="answer", content=answer(ANSWER))
        events = await s.stream("Who is ven_001?")
        kinds = [e.WhichOneof("event") for e in events]
        assert kinds[-3:] == ["verdict", "answer_delta", "final"]
        assert deltas(events) == [ANSWER] == [events[-1].final.output]
        assert streamed(s) == []  # the model was not streamed: nothing to show before the guard

        # A blocked answer was never sent, not a piece of it.
        s.llm.reply(when="plan", content=plan(GET_VENDOR))
        s.llm.reply(when="answer", content=answer("This is confidential: ven_001."))
        events = await s.stream("Who is ven_001?")
        assert events[-1].final.status == agent_pb2.RUN_STATUS_BLOCKED_BY_GUARDRAIL
        assert deltas(events) == []


async def test_a_react_runs_final_answer_comes_as_one_delta(stack: Stack) -> None:
    s = stack
    s.llm.reply(
        when="react_step",
        content={"call": {"tool": "final_answer", "arguments": {"answer": ANSWER}}},
    )
    events = await s.stream("Say something.", mode=agent_pb2.LOOP_MODE_REACT)
    assert deltas(events) == [ANSWER] == [events[-1].final.output]


# --- the reader of a JSON field as it streams -----------------------------------------------


def _chunked(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, len(text) // 3)))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


@pytest.mark.parametrize("ensure_ascii", [True, False])
@pytest.mark.parametrize("indent", [None, 2])
def test_field_text_reads_a_string_field_cut_anywhere(
    ensure_ascii: bool, indent: int | None
) -> None:
    rng = random.Random(27)
    for text in [ANSWER, "", "\\u0041 is not an escape here", '"', "\\", "\u2028 😀😀"]:
        for before in ({}, {"x": {"answer": "nested, not it"}, "n": [1, "]"]}):
            reply = json.dumps(
                {**before, "answer": text, "missing": "m"}, ensure_ascii=ensure_ascii, indent=indent
            )
            for _ in range(10):
                reader = FieldText("answer")
                assert "".join(reader.feed(c) for c in _chunked(reply, rng)) == text


@pytest.mark.parametrize(
    "value", [{"a": [1, {"b": '}]\\"'}]}, [], "text", 3.25, True, None, {"answer": 1}]
)
def test_field_text_reads_a_json_field_as_written(value: Any) -> None:
    rng = random.Random(27)
    for indent in (None, 2):
        reply = json.dumps({"answer": value, "missing": None}, indent=indent)
        for _ in range(10):
            reader = FieldText("answer", as_json=True)
            text = "".join(reader.feed(c) for c in _chunked(reply, rng))
            assert json.loads(text) == value


def test_field_text_joins_a_surrogate_pair_split_between_chunks() -> None:
    # A stream whose events escape UTF-16 halves separately decodes each to a lone surrogate.
    reader = FieldText("answer")
    chunks = ['{"answer": "caf\u00e9 \ud83d', "\ude00 ok", '", "missing": null}']
    assert "".join(reader.feed(c) for c in chunks) == "café 😀 ok"


def test_field_text_reads_a_plans_answer_only_after_empty_steps() -> None:
    rng = random.Random(27)
    cases = [
        ({"steps": [], "answer": "direct", "rationale": "r"}, "direct"),
        ({"steps": [], "answer": "direct"}, "direct"),
        ({"rationale": 'a "quoted" \\ one', "steps": [], "answer": "after"}, "after"),
        ({"steps": "[]", "answer": "a string is no empty array"}, ""),
        ({"steps": [{"answer": "x"}], "answer": "not this", "rationale": "r"}, ""),
        ({"answer": "steps unknown yet", "steps": []}, ""),
        ({"steps": None, "answer": "no"}, ""),
        ({"steps": [], "answer": None}, ""),
    ]
    for reply, expected in cases:
        texts = [json.dumps(reply, separators=(",", ":"))]  # compact, as many models write it
        # An empty array with whitespace inside is still empty.
        texts += [json.dumps(reply, indent=i).replace("[]", "[ \n ]") for i in (None, 2)]
        for text in texts:
            for _ in range(10):
                reader = FieldText("answer", after_empty="steps")
                assert "".join(reader.feed(c) for c in _chunked(text, rng)) == expected


def test_deltas_come_at_most_twenty_times_a_second_however_fast_the_model() -> None:
    emitted: list[Event] = []
    stream = AnswerStream(emitted.append)
    on_delta = stream.reader()
    text = "x" * 4000
    reply = json.dumps({"answer": text, "missing": None})
    start = time.monotonic()
    for i in range(0, len(reply), 4):  # a token at a time, as fast as it can
        on_delta(reply[i : i + 4])
    stream.settle(text)
    elapsed = time.monotonic() - start
    pieces = [e.payload for e in emitted]
    assert "".join(pieces) == text and "" not in pieces
    # The first piece at once, then one a MAX_WAIT_S at most, the rest when the run ends.
    assert 0 < len(pieces[0]) <= 4  # the first token's text, sent as it came
    assert len(pieces) <= 2 + elapsed / AnswerStream.MAX_WAIT_S


# --- agentd run ------------------------------------------------------------------------------


async def test_agentd_run_prints_the_answer_as_it_comes_and_once(stack: Stack) -> None:
    from tests.test_identity import agentd_cli

    s = stack
    target = ["--target", s.daemon.address]
    for _ in range(2):
        s.llm.reply(when="plan", content=plan(GET_VENDOR))
        s.llm.reply(when="answer", content=answer("answer"))  # rejected: the answer starts over
        s.llm.reply(when="answer", content=answer(ANSWER))
    code, out, err = await agentd_cli("run", "Who is ven_001?", *target)
    assert code == 0, err
    lines = out.splitlines()
    assert "↻ the answer starts over" in lines
    assert out.count(ANSWER) == 1  # printed as it came, not again at the end
    shown = out.split("↻ the answer starts over\n", 1)[1]
    assert shown.startswith(ANSWER + "\n\nstatus succeeded")

    code, out, err = await agentd_cli("run", "Who is ven_001?", *target, "--json")
    assert code == 0, err
    assert json.loads(out)["output"] == ANSWER  # --json: only the final RunResponse, as before
