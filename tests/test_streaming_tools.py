"""Streaming upstream methods as tools (issue 27 item 4): a real streams server on 127.0.0.1
(tests/protos/streams) sending more, larger and slower than the bounds allow; each bound cuts
the list and says so; a client stream sends every request and refuses more than its bound;
bidirectional streaming stays out with its reason; the side-effect policy is the unary one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf import json_format

import toolgen
from agentd.config import ConfigError, UpstreamConfig, load_config
from agentd.tools.upstream import ToolCatalog
from agentd.v1 import agent_pb2
from tests.support.plans import answer, plan
from tests.support.scripted_llm import schema_name
from tests.support.streams import Streams, serve_streams
from tests.test_agent import start_stack
from tests.test_cli import toolgen as toolgen_cli
from toolgen.validation import validator

SERVICE = "tests.streams.v1.StreamService"
LIMITS = toolgen.StreamLimits(max_messages=5, max_bytes=400, timeout_s=2.0)


@pytest.fixture
async def streams() -> AsyncIterator[Streams]:
    server = await serve_streams()
    yield server
    await server.stop()


@pytest.fixture
async def catalog(streams: Streams) -> AsyncIterator[toolgen.Catalog]:
    async with await toolgen.discover(
        streams.address, [f"{SERVICE}/*"], stream_limits=LIMITS
    ) as found:
        yield found


async def count(catalog: toolgen.Catalog, **arguments: int) -> dict:
    result = await catalog["StreamService_Count"].invoke(arguments, timeout=30)
    # Every result, cut or not, is what the output schema promises the model.
    assert validator(catalog["StreamService_Count"].output_schema).is_valid(result), result
    return result


async def ended(streams: Streams) -> tuple[str, int, bool]:
    """How the last server stream ended: (method, items sent, cancelled by the client)."""
    await streams.ended.wait()
    streams.ended.clear()
    return streams.sent[-1]


# --- server streaming ---------------------------------------------------------------------


async def test_a_stream_within_the_bounds_is_whole(
    catalog: toolgen.Catalog, streams: Streams
) -> None:
    result = await count(catalog, count=5, size=3)
    assert result == {
        "messages": [{"index": i, "text": "xxx"} for i in range(5)],
        "truncated": False,
        "cutBy": "",
        "limits": {"maxMessages": 5, "maxBytes": 400, "timeoutS": 2.0},
    }
    assert await ended(streams) == ("Count", 5, False)


async def test_count_bound_cuts_and_says_so(catalog: toolgen.Catalog, streams: Streams) -> None:
    result = await count(catalog, count=1000, size=1)
    assert [m["index"] for m in result["messages"]] == [0, 1, 2, 3, 4]
    assert (result["truncated"], result["cutBy"]) == (True, "count")
    _, sent, cancelled = await ended(streams)
    assert cancelled and sent < 1000  # the call was cancelled: the server stopped sending


async def test_bytes_bound_cuts_and_says_so(catalog: toolgen.Catalog, streams: Streams) -> None:
    result = await count(catalog, count=1000, size=150)  # each message ~170 bytes of JSON
    assert [m["index"] for m in result["messages"]] == [0, 1]
    assert (result["truncated"], result["cutBy"]) == (True, "bytes")
    assert toolgen.streaming.json_size(result["messages"]) <= LIMITS.max_bytes
    assert (await ended(streams))[2]


async def test_time_bound_cuts_a_slow_stream_and_says_so(
    streams: Streams,
) -> None:
    limits = toolgen.StreamLimits(max_messages=100, max_bytes=10_000, timeout_s=0.5)
    async with await toolgen.discover(
        streams.address, [f"{SERVICE}/Count"], stream_limits=limits
    ) as catalog:
        # One item at once, then one every 200 ms: a few arrive before the half second ends.
        result = await catalog["StreamService_Count"].invoke(
            {"count": 50, "size": 1, "delayMs": 200}, timeout=30
        )
    assert (result["truncated"], result["cutBy"]) == (True, "time")
    assert 1 <= len(result["messages"]) < 50
    assert result["limits"]["timeoutS"] == 0.5
    assert (await ended(streams))[2]


async def test_the_calls_deadline_cuts_by_time_when_sooner(
    catalog: toolgen.Catalog, streams: Streams
) -> None:
    """A deadline shorter than the stream's time bound: what arrived is kept, cut by time."""
    result = await catalog["StreamService_Count"].invoke(
        {"count": 50, "size": 1, "delayMs": 100}, timeout=0.4
    )
    assert (result["truncated"], result["cutBy"]) == (True, "time")
    assert 1 <= len(result["messages"]) < 50


async def test_bad_arguments_name_the_field(catalog: toolgen.Catalog) -> None:
    with pytest.raises(toolgen.ArgumentsError) as bad:
        await catalog["StreamService_Count"].invoke({"count": "many"})
    assert "/count" in str(bad.value)


async def test_the_result_schema_names_messages_and_bounds(catalog: toolgen.Catalog) -> None:
    tool = catalog["StreamService_Count"]
    assert tool.kind == "server_streaming"
    schema = tool.output_schema
    assert schema["required"] == ["messages", "truncated", "cutBy", "limits"]
    assert schema["properties"]["messages"]["maxItems"] == 5
    assert schema["properties"]["cutBy"]["enum"] == ["", "count", "bytes", "time"]
    assert schema["properties"]["messages"]["items"]["properties"].keys() == {"index", "text"}
    # The arguments are the one request message, as for a unary method.
    assert tool.input_schema["properties"].keys() == {"count", "size", "delayMs"}


# --- client streaming ---------------------------------------------------------------------


async def test_client_stream_sends_every_request_in_order(
    catalog: toolgen.Catalog, streams: Streams
) -> None:
    tool = catalog["StreamService_Upload"]
    assert tool.kind == "client_streaming"
    requests = [{"index": i, "text": f"r{i}"} for i in (3, 1, 4, 1, 5)]
    result = await tool.invoke({"requests": requests})
    assert result == {"received": 5, "indexes": [3, 1, 4, 1, 5]}
    assert streams.uploads == [("Upload", [3, 1, 4, 1, 5])]
    assert (await tool.invoke({"requests": []})) == {"received": 0, "indexes": []}


async def test_client_stream_refuses_more_requests_than_its_bound(
    catalog: toolgen.Catalog, streams: Streams
) -> None:
    tool = catalog["StreamService_Upload"]
    assert tool.input_schema["properties"]["requests"]["maxItems"] == 5
    with pytest.raises(toolgen.ArgumentsError) as many:
        await tool.invoke({"requests": [{"index": i} for i in range(6)]})
    assert many.value.violations[0].pointer == "/requests"
    with pytest.raises(toolgen.ArgumentsError) as large:
        await tool.invoke({"requests": [{"text": "y" * 300}, {"text": "y" * 300}]})
    assert large.value.violations[0].pointer == "/requests"
    assert "400" in str(large.value)
    with pytest.raises(toolgen.ArgumentsError) as wrong:
        await tool.invoke({"requests": [{"index": 1}, {"index": "two"}]})
    assert wrong.value.violations[0].pointer == "/requests/1/index"
    with pytest.raises(toolgen.ArgumentsError):
        await tool.invoke({"index": 1})  # one request, not a list
    assert streams.uploads == []  # nothing was sent


async def test_client_stream_in_openai_strict_mode(
    catalog: toolgen.Catalog, streams: Streams
) -> None:
    tool = catalog["StreamService_Total"]
    parameters = tool.openai_tool()["function"]["parameters"]
    assert parameters["required"] == ["requests"]
    assert parameters["additionalProperties"] is False
    assert parameters["properties"]["requests"]["items"]["required"] == ["index", "text"]
    result = await tool.invoke(
        {"requests": [{"index": 7, "text": None}, {"index": 8, "text": "b"}]}, strict=True
    )
    assert result == {"received": 2, "indexes": [7, 8]}


# --- bidirectional, side effects, preview ---------------------------------------------------


async def test_bidirectional_stays_out_with_its_reason(catalog: toolgen.Catalog) -> None:
    assert "StreamService_Echo" not in catalog
    (skipped,) = catalog.skipped
    assert skipped.method == f"{SERVICE}/Echo"
    assert "bidirectional streaming" in skipped.reason and "not a tool" in skipped.reason
    assert {t.name for t in catalog} == {
        "StreamService_Count",
        "StreamService_Drain",
        "StreamService_Total",
        "StreamService_Upload",
    }


async def test_side_effects_follow_idempotency_level(catalog: toolgen.Catalog) -> None:
    effects = {t.name: t.side_effects for t in catalog}
    assert effects == {
        "StreamService_Count": "none",
        "StreamService_Drain": "unknown",
        "StreamService_Total": "none",
        "StreamService_Upload": "unknown",
    }


async def test_preview_lists_streaming_tools_and_explains_the_bidi_skip(
    streams: Streams,
) -> None:
    table = await toolgen_cli(
        "preview", streams.address, "--allow", f"{SERVICE}/*", "--format", "table"
    )
    assert table.code == 0, table.err
    rows = {line.split()[0]: line for line in table.out.splitlines()[1:]}
    assert "server streaming" in rows["StreamService_Count"]
    assert "client streaming" in rows["StreamService_Upload"]
    assert "StreamService_Echo" not in table.out
    assert f"left out {SERVICE}/Echo: bidirectional streaming method" in table.err
    previewed = await toolgen_cli(
        "preview", streams.address, "--allow", f"{SERVICE}/*", "--stream-max-messages", "3"
    )
    tools = {t["name"]: t for t in json.loads(previewed.out)}
    assert tools["StreamService_Count"]["kind"] == "server_streaming"
    assert tools["StreamService_Count"]["stream_limits"]["max_messages"] == 3
    assert tools["StreamService_Upload"]["input_schema"]["properties"]["requests"]["maxItems"] == 3
    listing = await toolgen_cli("list", streams.address, "--allow", f"{SERVICE}/*")
    assert "+ Count  (server streaming)" in listing.out
    assert "+ Upload  (client streaming)" in listing.out
    assert "- Echo  (bidirectional streaming: not a tool)" in listing.out


async def test_call_streams_from_the_cli(streams: Streams) -> None:
    result = await toolgen_cli(
        "call",
        streams.address,
        f"{SERVICE}/Count",
        "--data",
        '{"count": 9}',
        "--stream-max-messages",
        "4",
    )
    assert result.code == 0, result.err
    out = json.loads(result.out)
    assert (len(out["messages"]), out["truncated"], out["cutBy"]) == (4, True, "count")


def test_limits_must_be_positive() -> None:
    for bad in ({"max_messages": 0}, {"max_bytes": -1}, {"timeout_s": 0.0}):
        with pytest.raises(ValueError, match="must be positive"):
            toolgen.StreamLimits(**bad)  # type: ignore[arg-type]


async def test_cancelled_invoke_cancels_the_stream(
    catalog: toolgen.Catalog, streams: Streams
) -> None:
    """A run cancelled mid-stream (its deadline, a shutdown) cancels the upstream call too."""
    task = asyncio.create_task(
        catalog["StreamService_Count"].invoke({"count": 50, "delayMs": 200}, timeout=30)
    )
    await streams.first_sent.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await ended(streams))[2]


# --- in agentd: per-upstream bounds, policy, a run ----------------------------------------


def upstream(streams: Streams, **keys: object) -> UpstreamConfig:
    return UpstreamConfig(name="streams", target=streams.address, allow=(f"{SERVICE}/*",), **keys)  # type: ignore[arg-type]


async def test_agentd_bounds_and_policy_per_upstream(streams: Streams) -> None:
    config = upstream(streams, stream_max_messages=3, stream_max_bytes=1000, stream_timeout_s=1.5)
    catalog = ToolCatalog([config])
    await catalog.start()
    try:
        tools = catalog.tools
        assert set(tools) == {
            "StreamService_Count",
            "StreamService_Drain",
            "StreamService_Total",
            "StreamService_Upload",
        }
        # As for unary methods: no side effects are allowed, the rest follow the upstream.
        policies = {name: tool.policy for name, tool in tools.items()}
        assert policies == {
            "StreamService_Count": "allow",
            "StreamService_Drain": "approve",
            "StreamService_Total": "allow",
            "StreamService_Upload": "approve",
        }
        result = await tools["StreamService_Count"].invoke({"count": 10}, metadata=(), timeout=10)
        assert result["limits"] == {"maxMessages": 3, "maxBytes": 1000, "timeoutS": 1.5}
        assert (len(result["messages"]), result["cutBy"]) == (3, "count")
        # What a model writes for a client stream: the bounded list of requests.
        requests = tools["StreamService_Upload"].model_schema["properties"]["requests"]
        assert requests["maxItems"] == 3
        assert requests["items"]["properties"]["text"]["maxLength"] == 200  # MODEL_BOUNDS
        await tools["StreamService_Upload"].invoke(
            {"requests": [{"index": 1}, {"index": 2}]}, metadata=(), timeout=10
        )
        assert streams.uploads == [("Upload", [1, 2])]
    finally:
        await catalog.close()


@pytest.mark.parametrize("key", ["stream_max_messages", "stream_max_bytes", "stream_timeout_s"])
def test_config_bounds_must_be_positive(tmp_path: Path, key: str) -> None:
    path = tmp_path / "agentd.toml"
    path.write_text(
        f'[[upstreams]]\nname = "s"\ntarget = "127.0.0.1:1"\nallow = ["a.B/*"]\n{key} = 0\n'
    )
    with pytest.raises(ConfigError, match=rf"upstreams\[0\]\.{key}: must be positive"):
        load_config(path, env={})


async def test_a_run_reads_a_cut_stream_and_knows_it(tmp_path: Path) -> None:
    """Through the daemon: the planner calls ExportTransactions (more transactions than the
    default bound of 100); the step's result and the responder's prompt say it was cut."""
    async for s in start_stack(tmp_path):
        s.llm.reply(
            when="plan",
            content=plan({"id": "s1", "tool": "LedgerService_ExportTransactions", "arguments": {}}),
        )
        s.llm.reply(when="answer", content=answer("at least 100 transactions"))
        response = await s.run("Export every transaction")
        assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
        (step,) = response.steps
        result = json_format.MessageToDict(step.result)
        assert (result["truncated"], result["cutBy"]) == (True, "count")
        assert result["limits"]["maxMessages"] == 100
        prompt = json.dumps(next(r for r in s.llm.requests if schema_name(r) == "answer"))
        assert "cutBy" in prompt and "count" in prompt
        tools = await s.stub.ListTools(agent_pb2.ListToolsRequest())
        export = next(t for t in tools.tools if t.name == "LedgerService_ExportTransactions")
        assert (export.side_effects, export.policy) == ("none", "allow")
        assert json.loads(export.output_schema)["required"][:2] == ["messages", "truncated"]


async def test_a_run_sends_a_client_stream_through_the_plan(
    tmp_path: Path, streams: Streams
) -> None:
    """The planner writes a client-streaming tool's list of requests (the plan schema embeds
    it); the daemon sends every one; the upstream's own bound applies to its server stream."""
    extra = (
        f'\n[[upstreams]]\nname = "streams"\ntarget = "{streams.address}"\n'
        f'allow = ["{SERVICE}/*"]\nstream_max_messages = 4\n'
    )
    async for s in start_stack(tmp_path, extra=extra):
        requests = [{"index": i, "text": f"r{i}"} for i in (5, 6, 7)]
        s.llm.reply(
            when="plan",
            content=plan(
                {"id": "s1", "tool": "StreamService_Total", "arguments": {"requests": requests}},
                {"id": "s2", "tool": "StreamService_Count", "arguments": {"count": 9}},
            ),
        )
        s.llm.reply(when="answer", content=answer("3 received; 4 of 9 counted"))
        response = await s.run("Total three items and count to nine")
        assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
        assert streams.uploads == [("Total", [5, 6, 7])]
        results = {step.id: json_format.MessageToDict(step.result) for step in response.steps}
        assert results["s1"] == {"received": 3, "indexes": [5, 6, 7]}
        assert (len(results["s2"]["messages"]), results["s2"]["cutBy"]) == (4, "count")
        planned = next(r for r in s.llm.requests if schema_name(r) == "plan")
        bounds = bounds_of_requests(planned)  # in the plan's schema (and the tool's listing)
        assert bounds and set(bounds) == {4}  # the upstream's bound


def bounds_of_requests(node: object) -> list[int]:
    """``maxItems`` of every ``requests`` property in a JSON document."""
    found = []
    if isinstance(node, dict):
        requests = node.get("properties", {}).get("requests")
        if isinstance(requests, dict) and "maxItems" in requests:
            found.append(requests["maxItems"])
        for value in node.values():
            found.extend(bounds_of_requests(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(bounds_of_requests(value))
    return found
