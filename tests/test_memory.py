"""Memory tools across runs, isolation between users, conversation history, ListTools."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from agentd.store.sqlite import SqliteRunStore
from agentd.v1 import agent_pb2
from tests.support.scripted_llm import schema_name
from tests.test_agent import SECRET, Stack, answer, plan, start_stack, user_token

USERS = ("alice", "bob", "carol", "dave", "root:admin")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    # Users are authenticated by their bearer token: memory is scoped by who they are.
    async for s in start_stack(tmp_path, users=USERS):
        yield s


async def call_tool(s: Stack, tool: str, arguments: dict[str, Any], **fields: Any) -> Any:
    """One run whose plan is a single call of ``tool``; returns that step's result."""
    s.llm.reply(when="plan", content=plan({"id": "s1", "tool": tool, "arguments": arguments}))
    s.llm.reply(when="answer", content=answer("ok"))
    response = await s.run(f"use {tool} with {json.dumps(arguments)}", **fields)
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    step = response.steps[0]
    assert step.status == agent_pb2.STEP_STATUS_SUCCEEDED, step.error.message
    assert step.method.startswith("agentd.builtin/memory.")
    return json_format.MessageToDict(step.result)


async def test_remember_then_recall_in_a_later_run(stack: Stack) -> None:
    s = stack
    saved = await call_tool(
        s, "memory_remember", {"text": "Alice prefers vendor ven_002 for coffee"}, as_user="alice"
    )
    assert saved["remembered"].startswith("Alice prefers")
    found = await call_tool(s, "memory_recall", {"query": "coffee vendor"}, as_user="alice")
    assert [m["text"] for m in found["memories"]] == ["Alice prefers vendor ven_002 for coffee"]
    assert found["memories"][0]["id"] == saved["id"]

    forgotten = await call_tool(s, "memory_forget", {"id": saved["id"]}, as_user="alice")
    assert forgotten == {"forgotten": True}
    again = await call_tool(s, "memory_recall", {"query": "coffee"}, as_user="alice")
    assert again.get("memories", []) == []


async def test_one_users_memories_are_invisible_to_another(stack: Stack) -> None:
    s = stack
    saved = await call_tool(
        s, "memory_remember", {"text": "Alice's door code is 4711"}, as_user="alice"
    )
    s.llm.requests.clear()
    for query in ("door code", ""):
        found = await call_tool(s, "memory_recall", {"query": query}, as_user="bob")
        assert found.get("memories", []) == []
    assert "4711" not in json.dumps(s.llm.requests)  # nothing of Alice's reached Bob's prompts
    # Bob cannot forget Alice's memory even with its id.
    assert await call_tool(s, "memory_forget", {"id": saved["id"]}, as_user="bob") == {
        "forgotten": False
    }
    found = await call_tool(s, "memory_recall", {"query": "door"}, as_user="alice")
    assert len(found["memories"]) == 1


async def test_the_user_header_is_honoured_only_for_an_admin(stack: Stack) -> None:
    s = stack
    as_root = (("authorization", user_token("root")), ("x-user-id", "carol"))
    await call_tool(s, "memory_remember", {"text": "Carol likes tea"}, metadata=as_root)
    found = await call_tool(s, "memory_recall", {"query": "tea"}, as_user="carol")
    assert found["memories"][0]["text"] == "Carol likes tea"
    # bob cannot name carol in the header (nor in user_id): PERMISSION_DENIED naming it.
    for fields in (
        {"metadata": (("authorization", user_token("bob")), ("x-user-id", "carol"))},
        {"as_user": "bob", "user_id": "carol"},
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await s.run("what does carol like?", **fields)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert info.value.details().startswith(("x-user-id metadata:", "user_id:"))


async def test_anonymous_gets_no_memory_tools_nor_shared_history(tmp_path: Path) -> None:
    async for s in start_stack(tmp_path):  # auth off: every caller is `anonymous`
        s.llm.reply(when="plan", content=plan(answer="the code is 4711"))
        await s.run("hello", conversation_id="c1")
        s.llm.requests.clear()
        s.llm.reply(when="plan", content=plan(answer="hi"))
        await s.run("what was the code?", conversation_id="c1")  # someone else, same id
        schema = json.dumps(next(r for r in s.llm.requests if schema_name(r) == "plan"))
        assert "memory_recall" not in schema and "LedgerService_GetVendor" in schema
        assert "4711" not in json.dumps(s.llm.requests)


async def test_anonymous_memory_only_when_the_config_allows_it(tmp_path: Path) -> None:
    env = {"AGENTD_MEMORY_ALLOW_ANONYMOUS": "true"}
    async for s in start_stack(tmp_path, env=env):
        s.llm.reply(when="plan", content=plan(answer="the code is 4711"))
        await s.run("hello", conversation_id="c1")
        s.llm.requests.clear()
        s.llm.reply(when="plan", content=plan(answer="hi"))
        response = await s.run("what was the code?", conversation_id="c1")
        assert response.user_id == "anonymous" and response.principal == "anonymous"
        schema = json.dumps(next(r for r in s.llm.requests if schema_name(r) == "plan"))
        assert "memory_recall" in schema and "4711" in json.dumps(s.llm.requests)


async def test_tool_patterns_select_builtins(stack: Stack) -> None:
    s = stack
    s.llm.reply(when="plan", content=plan(answer="hi"))
    await s.run("hello", as_user="alice", tools=["memory_*"])
    schema = json.dumps(next(r for r in s.llm.requests if schema_name(r) == "plan"))
    assert "memory_recall" in schema and "LedgerService_GetVendor" not in schema


async def test_conversation_history_reaches_planner_and_responder(stack: Stack) -> None:
    s = stack
    s.llm.reply(when="plan", content=plan(answer="Spreeblick is ven_001"))
    first = await s.run("Which id has Spreeblick?", as_user="alice", conversation_id="c1")
    assert first.status == agent_pb2.RUN_STATUS_SUCCEEDED
    s.llm.requests.clear()
    s.llm.reply(when="plan", content=plan())
    s.llm.reply(when="answer", content=answer("its id was ven_001"))
    await s.run("And what was its id again?", as_user="alice", conversation_id="c1")
    planner = json.dumps(next(r for r in s.llm.requests if schema_name(r) == "plan"))
    responder = json.dumps(next(r for r in s.llm.requests if schema_name(r) == "answer"))
    for sent in (planner, responder):
        assert "Earlier in this conversation" in sent
        assert "Which id has Spreeblick?" in sent and "Spreeblick is ven_001" in sent
    # Another user with the same conversation id sees nothing of it.
    s.llm.requests.clear()
    s.llm.reply(when="plan", content=plan(answer="?"))
    await s.run("What was the id?", as_user="bob", conversation_id="c1")
    assert "Spreeblick" not in json.dumps(s.llm.requests)


async def test_list_tools_shows_builtins(stack: Stack) -> None:
    response = await stack.stub.ListTools(
        agent_pb2.ListToolsRequest(), metadata=(("authorization", SECRET),)
    )
    builtins = {t.name: t for t in response.tools if t.upstream == "builtin"}
    assert set(builtins) == {"memory_remember", "memory_recall", "memory_forget"}
    assert builtins["memory_recall"].method == "agentd.builtin/memory.recall"
    assert json.loads(builtins["memory_remember"].input_schema)["required"] == ["text"]


@pytest.mark.parametrize("fts", [True, False])
async def test_store_recall_keywords_and_recency(tmp_path: Path, fts: bool) -> None:
    store = SqliteRunStore(tmp_path / "m.db")
    store.fts = store.fts and fts  # False exercises the LIKE fallback
    try:
        await store.remember("u", "", "the coffee vendor is Bohnen GmbH")
        await store.remember("u", "c1", "invoice 42 is disputed")
        await store.remember("u", "c2", "coffee order pending")
        newest = await store.recall("u", "c1", "", 10)
        assert [m.text for m in newest] == [
            "invoice 42 is disputed",
            "the coffee vendor is Bohnen GmbH",
        ]  # c2's memory stays in c2; most recent first
        coffee = await store.recall("u", "c2", "Coffee", 10)
        assert {m.text for m in coffee} == {
            "the coffee vendor is Bohnen GmbH",
            "coffee order pending",
        }
        assert await store.recall("someone-else", "c1", "coffee", 10) == []
        assert await store.recall("u", "", 'coffee" OR "x', 10)  # quotes are not syntax
    finally:
        await store.close()


async def test_recall_without_a_keyword_match_falls_back_to_the_newest(stack: Stack) -> None:
    s = stack
    await call_tool(s, "memory_remember", {"text": "favourite vendor: ven_001"}, as_user="carol")
    await call_tool(s, "memory_remember", {"text": "Dave's secret"}, as_user="dave")
    found = await call_tool(s, "memory_recall", {"query": "s1.vendors.0.id"}, as_user="carol")
    assert [m["text"] for m in found["memories"]] == ["favourite vendor: ven_001"]
    assert "nothing matched" in found["note"]
