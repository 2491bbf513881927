"""The run domain (agentd/runs/) driven as an edge other than gRPC would drive it: plain Python
calls, no socket. A SQLite file for the store, the scripted chat model, Python functions as
tools. What A2A and MCP edges will call: start (events and result), get, list, watch, approve,
feedback, and the domain errors an edge maps to its own statuses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentd.config import ROLES, load_config
from agentd.llm import ScriptedChatModel
from agentd.loop.agent import Agent
from agentd.loop.guardrails import Guardrails
from agentd.runs.errors import InvalidField, NotWaiting, RunNotFound
from agentd.runs.service import Runs
from agentd.runs.spec import CallDecision, Principal, RunSpec
from agentd.store import open_store
from agentd.tools.upstream import ToolCatalog
from tests.support.functions import FunctionTool
from tests.support.plans import answer, plan
from tests.test_loop import catalog

ALICE = Principal("alice", via="token")
BOB = Principal("bob", via="token")
ADMIN = Principal("ops", frozenset({"admin"}), via="token")
GET_VENDOR = {"id": "s1", "tool": "GetVendor", "arguments": {"vendorId": "ven_002"}}
UPDATE = {
    "id": "s1",
    "tool": "UpdateVendor",
    "arguments": {"vendor": {"id": "ven_002", "phone": "+49 30 9"}},
}


@dataclass
class Domain:
    runs: Runs
    model: ScriptedChatModel
    tools: dict[str, FunctionTool]


@pytest.fixture
async def domain(tmp_path: Path) -> AsyncIterator[Domain]:
    config_file = tmp_path / "agentd.toml"
    config_file.write_text(
        '[llm]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n'
        f'[storage]\npath = "{tmp_path / "runs.db"}"\n'
    )
    config = load_config(config_file, env={})
    model = ScriptedChatModel()
    agent = Agent(dict.fromkeys(ROLES, model), config.limits, Guardrails(config.guardrails, ""))
    tools = catalog()  # Python functions in the place of reflected upstream methods
    upstreams = ToolCatalog(upstreams=[], tools=tools)  # type: ignore[arg-type]
    store = open_store(config.storage)
    runs = Runs(config, upstreams, agent, store)
    try:
        yield Domain(runs, model, tools)
    finally:
        await store.close()


async def events_of(handle: Any) -> list[Any]:
    return [message async for message in handle.events()]


def kinds(events: list[Any]) -> list[str]:
    return [e.WhichOneof("event") for e in events]


async def test_a_run_started_as_plain_calls_streams_its_events_and_is_stored(
    domain: Domain,
) -> None:
    domain.model.reply("plan", plan(GET_VENDOR))
    domain.model.reply("answer", answer("Northwind Coffee: +49 30 2"))
    handle = await domain.runs.start(
        RunSpec(task="Northwind's phone (ven_002)?"), ALICE, metadata=()
    )
    events = await events_of(handle)
    stored = await handle.result()
    assert stored.status_name == "RUN_STATUS_SUCCEEDED"
    assert stored.message.output == "Northwind Coffee: +49 30 2"
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert kinds(events)[:3] == ["plan", "step_started", "step_finished"]
    deltas = "".join(e.answer_delta for e in events if e.WhichOneof("event") == "answer_delta")
    assert deltas == stored.message.output
    assert domain.tools["GetVendor"].calls == [{"vendorId": "ven_002"}]

    # Reads are the owner's (an admin's too); anyone else meets RunNotFound, as for no run.
    assert (await domain.runs.get(handle.run_id, ALICE)).message.run_id == handle.run_id
    assert (await domain.runs.get(handle.run_id, ADMIN)).message.run_id == handle.run_id
    with pytest.raises(RunNotFound, match="run_id: no run"):
        await domain.runs.get(handle.run_id, BOB)
    listed = await domain.runs.list(ALICE, "RUN_STATUS_SUCCEEDED")
    assert [r.run_id for r in listed] == [handle.run_id]
    assert await domain.runs.list(BOB, "RUN_STATUS_SUCCEEDED") == []

    # A watcher after the end gets what the stream carried, from the store, and the end.
    watched = [m async for m in domain.runs.watch(handle.run_id, ALICE, 0)]
    assert [(e.sequence, e.WhichOneof("event")) for e in watched[: len(events)]] == [
        (e.sequence, e.WhichOneof("event")) for e in events
    ]
    assert watched[-1].final.run_id == handle.run_id

    stored, item = await domain.runs.feedback(handle.run_id, ALICE, 1, "right", ["good"])
    assert stored.feedback == 1 and item.rating == 1
    assert [r.run_id for r in await domain.runs.list(ALICE)] == [handle.run_id]
    with pytest.raises(RunNotFound):
        await domain.runs.feedback(handle.run_id, BOB, -1, "", [])


async def test_approval_through_the_domain_resumes_the_owners_run_once(domain: Domain) -> None:
    domain.model.reply("plan", plan(UPDATE))
    handle = await domain.runs.start(
        RunSpec(task="Set Northwind's phone (ven_002)"), ALICE, metadata=()
    )
    waiting = await handle.result()
    assert waiting.status_name == "RUN_STATUS_NEEDS_APPROVAL"
    assert domain.tools["UpdateVendor"].calls == []

    with pytest.raises(RunNotFound):  # not bob's to decide
        await domain.runs.approve(handle.run_id, BOB, [CallDecision("s1", True)], "r1", ())
    domain.model.reply("answer", answer("Northwind's phone is now +49 30 9."))
    done, repeated = await domain.runs.approve(
        handle.run_id, ALICE, [CallDecision("s1", True)], "r1", ()
    )
    assert done.status_name == "RUN_STATUS_SUCCEEDED" and not repeated
    assert domain.tools["UpdateVendor"].calls == [UPDATE["arguments"]]
    again, repeated = await domain.runs.approve(
        handle.run_id, ALICE, [CallDecision("s1", True)], "r1", ()
    )
    assert repeated and again.status_name == "RUN_STATUS_SUCCEEDED"
    assert len(domain.tools["UpdateVendor"].calls) == 1
    with pytest.raises(NotWaiting):  # a new decision on a run that no longer waits
        await domain.runs.approve(handle.run_id, ALICE, [CallDecision("s1", True)], "r2", ())


async def test_a_bad_request_is_a_domain_error_naming_the_field(domain: Domain) -> None:
    with pytest.raises(InvalidField, match=r"^tools: .*matches no tool"):
        await domain.runs.start(RunSpec(task="x", tools=["NoSuchTool*"]), ALICE, metadata=())
    with pytest.raises(InvalidField, match="rating"):
        domain.model.reply("plan", plan(answer="hi"))
        handle = await domain.runs.start(RunSpec(task="hi"), ALICE, metadata=())
        await handle.result()
        await domain.runs.feedback(handle.run_id, ALICE, 7, "", [])
