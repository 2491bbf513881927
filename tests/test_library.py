"""The plan library: plans of approved runs shown to the planner as worked examples.

Real daemon, real example upstreams, the scripted model over HTTP, a real SQLite file (and
PostgreSQL for the store contract): positive feedback adds an example, a similar task's
planner request shows it and a dissimilar one's does not, another principal never sees it, a
pasted credential never reaches it; ``agentd examples`` works on the daemon's store; the file
form loads and a bad one fails in one line; leave-one-out never offers a case its own plan.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentd import cli
from agentd.library.example import Example
from agentd.loop import prompts
from agentd.store import RunStore
from agentd.store.sqlite import SqliteRunStore
from agentd.v1 import agent_pb2
from tests import test_telemetry
from tests.support.plans import answer, plan
from tests.support.postgres import Postgres, throwaway_postgres
from tests.test_agent import Stack, start_stack, user_token

PHONE = "What is the phone number of vendor ven_001?"
SIMILAR = "What is the phone number of vendor ven_002?"
DISSIMILAR = "Evaluate the RPN expression 3 4 + with the calculator."
GET_VENDOR = {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_001"}}
spans = test_telemetry.spans  # the span exporter fixture, used here by name
INTRO = prompts.EXAMPLES.text.splitlines()[0]


async def main(argv: list[str]) -> int:
    """``agentd ARGV`` in a thread (it runs its own event loop), as a maintainer would."""
    return await asyncio.to_thread(cli.main, argv)


def planner_requests(stack: Stack) -> list[dict[str, Any]]:
    return [
        body
        for body in stack.llm.requests
        if (body.get("response_format") or {}).get("json_schema", {}).get("name") == "plan"
    ]


def examples_shown(body: dict[str, Any]) -> str:
    """The worked-examples message of one planner request ("" when none)."""
    for message in body["messages"]:
        if message["role"] == "user" and str(message["content"]).startswith(INTRO):
            return str(message["content"])
    return ""


async def rated_run(stack: Stack, task: str, user: str, rating: int = 1) -> agent_pb2.RunResponse:
    """A run of ``task`` by ``user`` that calls GetVendor, rated ``rating``."""
    stack.llm.reply(when="plan", content=plan(GET_VENDOR))
    stack.llm.reply(when="answer", content=answer("+1 555 0100"))
    run = await stack.run(task, as_user=user)
    assert run.status == agent_pb2.RUN_STATUS_SUCCEEDED, run.error
    await stack.stub.SubmitFeedback(
        agent_pb2.SubmitFeedbackRequest(run_id=run.run_id, rating=rating),
        metadata=(("authorization", user_token(user)),),
        timeout=10,
    )
    return run


async def planned(stack: Stack, task: str, user: str) -> tuple[agent_pb2.RunResponse, str]:
    """Run ``task`` as ``user``; the run and the examples its planner was shown."""
    before = len(planner_requests(stack))
    stack.llm.reply(when="plan", content=plan(answer="done"))
    run = await stack.run(task, as_user=user)
    assert run.status == agent_pb2.RUN_STATUS_SUCCEEDED, run.error
    return run, examples_shown(planner_requests(stack)[before])


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async for s in start_stack(tmp_path, users=("alice", "bob")):
        yield s


async def test_positive_feedback_adds_an_example_its_owner_sees_for_similar_tasks(
    stack: Stack, spans: InMemorySpanExporter
) -> None:
    source = await rated_run(stack, PHONE, "alice")
    await rated_run(stack, "What does vendor ven_001 sell?", "alice", rating=-1)  # not kept
    stored = await stack.daemon.service.runs.store.examples(None, 100)
    assert [(e.source, e.principal, e.tools) for e in stored] == [
        (f"run:{source.run_id}", "alice", ("LedgerService_GetVendor",))
    ]

    run, shown = await planned(stack, SIMILAR, "alice")
    assert f"Task: {PHONE}" in shown and '"tool":"LedgerService_GetVendor"' in shown
    assert '"vendorId":"ven_001"' in shown
    assert list(run.plan.examples) == [stored[0].id]  # the record says which, and the span
    plan_spans = [
        x for x in spans.get_finished_spans() if x.name == "plan" and x.attributes is not None
    ]
    shown_in_spans = [x.attributes.get("agentd.plan.examples") for x in plan_spans]
    assert (stored[0].id,) in shown_in_spans
    # Examples come after the static prefix: the system message is the same bytes as before.
    first, later = planner_requests(stack)[0], planner_requests(stack)[-1]
    assert first["messages"][0] == later["messages"][0]
    assert later["messages"][-1]["content"].startswith(f"Task: {SIMILAR}")

    run, shown = await planned(stack, DISSIMILAR, "alice")
    assert shown == "" and list(run.plan.examples) == []
    # Another principal's run never sees alice's plan (examples.share is off).
    run, shown = await planned(stack, SIMILAR, "bob")
    assert shown == "" and list(run.plan.examples) == []


async def test_a_credential_pasted_into_the_task_never_reaches_the_library(
    stack: Stack,
) -> None:
    token = user_token("alice").split()[1]
    run = await rated_run(stack, f"{PHONE} My token is {token}", "alice")
    assert "[REDACTED]" in run.task and token not in run.task
    stored = await stack.daemon.service.runs.store.examples(None, 100)
    assert stored == []  # redacted in the record, and a redacted plan is no example
    assert token not in json.dumps([e.__dict__ for e in stored])


async def test_examples_cli_add_list_remove_on_a_running_daemon(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.llm.reply(when="plan", content=plan(GET_VENDOR))
    stack.llm.reply(when="answer", content=answer("+1 555 0100"))
    source = await stack.run(PHONE, as_user="alice")
    config = str(tmp_path / "agentd.toml")

    assert await main(["examples", "add", source.run_id, "--note", "one lookup", "-c", config]) == 0
    example_id = capsys.readouterr().out.strip()
    assert await main(["examples", "add", "no-such-run", "-c", config]) == 4
    assert "RUN_ID: no run no-such-run" in capsys.readouterr().err
    assert await main(["examples", "list", "--json", "-c", config]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["id"], e["shared"], e["note"]) for e in listed] == [(example_id, True, "one lookup")]

    # A maintainer's example is shared: bob's run on the daemon sees it.
    run, shown = await planned(stack, SIMILAR, "bob")
    assert f"Task: {PHONE}" in shown and list(run.plan.examples) == [example_id]

    assert await main(["examples", "export", "-c", config]) == 0
    exported = tmp_path / "plans.yaml"
    exported.write_text(capsys.readouterr().out)
    assert await main(["examples", "remove", example_id, "-c", config]) == 0
    assert await main(["examples", "remove", example_id, "-c", config]) == 4
    run, shown = await planned(stack, SIMILAR, "bob")
    assert shown == ""

    # The export is the file form: a daemon configured with it shows it again.
    from agentd.library.file import load_examples

    assert [e.id for e in load_examples(exported, 4000)] == [example_id]


async def test_the_file_form_loads_and_a_bad_file_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "plans.yaml"
    good.write_text(
        "examples:\n"
        "  - id: vendor-phone\n"
        f"    task: {PHONE}\n"
        "    plan:\n"
        "      steps:\n"
        "        - id: s1\n"
        "          call: {tool: LedgerService_GetVendor, arguments: {vendorId: ven_001}}\n"
    )
    extra = '\n[examples]\nfile = "plans.yaml"\n'
    async for s in start_stack(tmp_path, extra=extra, users=("bob",)):
        run, shown = await planned(s, SIMILAR, "bob")
        assert f"Task: {PHONE}" in shown and list(run.plan.examples) == ["vendor-phone"]

    bad = good.read_text().replace("call: {tool: LedgerService_GetVendor,", "call: {tool: '',")
    good.write_text(bad)
    config = tmp_path / "agentd.toml"
    assert await main(["config", "check", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert f"{config}: examples.file: {good}: example 'vendor-phone' (#1):" in err
    assert "plan.steps[0].call.tool: must be a non-empty string" in err


# --- the store, on both backends ----------------------------------------------------------------


def example(source: str, principal: str, created_at: float) -> Example:
    return Example(
        id=f"ex-{source}",
        task=f"task {source}",
        plan={"steps": [{"id": "s1", "call": {"tool": "T", "arguments": {"n": 1}}}]},
        source=source,
        added_by="test",
        principal=principal,
        created_at=created_at,
    )


async def exercise_examples(store: RunStore) -> None:
    assert await store.add_example(example("a", "alice", 1.0), keep=2)
    assert not await store.add_example(
        Example(**{**example("a", "alice", 9.0).__dict__, "id": "x"}), 2
    )
    assert await store.add_example(example("b", "alice", 2.0), keep=2)
    assert await store.add_example(example("c", "alice", 3.0), keep=2)  # "a" goes: 2 kept
    assert await store.add_example(example("d", "", 4.0), keep=2)
    assert await store.add_example(example("e", "bob", 5.0), keep=2)
    mine = await store.examples(["alice", ""], 10)
    assert [e.source for e in mine] == ["d", "c", "b"]  # newest first, bob's not among them
    assert mine[1].plan == example("c", "alice", 0).plan and mine[1].tools == ("T",)
    assert [e.source for e in await store.examples(None, 2)] == ["e", "d"]
    stamp = await store.examples_stamp(["alice", ""])
    assert stamp == await store.examples_stamp(["alice", ""])  # unchanged: nothing to re-read
    assert await store.remove_example("ex-c") and not await store.remove_example("ex-c")
    assert stamp != await store.examples_stamp(["alice", ""])
    assert await store.examples_stamp(["nobody"]) == (0.0, 0.0, 0.0)
    assert [e.source for e in await store.examples(["alice"], 10)] == ["b"]


async def test_sqlite_examples(tmp_path: Path) -> None:
    store = SqliteRunStore(tmp_path / "runs.db")
    try:
        await exercise_examples(store)
    finally:
        await store.close()


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    yield from throwaway_postgres()


async def test_postgres_examples(postgres: Postgres) -> None:
    from agentd.store.postgres import PostgresRunStore

    store = PostgresRunStore(postgres.url)
    try:
        await exercise_examples(store)
    finally:
        await store.close()


# --- leave-one-out, in an evaluation ---------------------------------------------------------------

LOO_CASES = (
    "vendor-phone",
    "vendor-city-ven_014",
    "vendor-website-ven_016",
    "spend-software-2025",
    "spend-travel-2025",
    "rpn-35",
    "rpn-power",
)


def test_leave_one_out_never_offers_a_case_its_own_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentd.evals import load_suite
    from tests.support.eval_model import SuiteModel
    from tests.test_evals import SUITE, BackgroundLLM, write_configs

    suite = load_suite(SUITE)
    background = BackgroundLLM(SuiteModel(suite))
    try:
        config, _ = write_configs(tmp_path, background.llm)
        cases = [arg for case in LOO_CASES for arg in ("--cases", case)]
        prior = tmp_path / "prior.json"
        argv = ["eval", "run", str(SUITE), "-c", str(config), *cases, "-j", "2", "-q"]
        assert cli.main([*argv, "--json", str(prior)]) == 0
        results = json.loads(prior.read_text())["results"]
        # The eval JSON keeps each run's plan, in the planner's form.
        assert all(r["passed"] and r["plan"]["steps"] for r in results), results
        vendor = next(r for r in results if r["case"] == "vendor-phone")
        assert vendor["plan"]["steps"][0]["call"] == {
            "tool": "LedgerService_GetVendor",
            "arguments": {"vendorId": "ven_001"},
        }
        background.llm.requests.clear()

        after = tmp_path / "after.json"
        code = cli.main([*argv, "--examples-from", str(prior), "--json", str(after)])
        assert code == 0, capsys.readouterr().err
        doc = json.loads(after.read_text())
    finally:
        background.close()
    labels = [c["label"] for c in doc["configs"]]
    assert labels == ["A:agentd-a", "B:agentd-a+examples"]
    assert all(r["passed"] for r in doc["results"])

    tasks = {case.id: case.task for case in suite.cases if case.id in LOO_CASES}
    offered: dict[str, list[str]] = {}
    for body in background.llm.requests:
        if (body.get("response_format") or {}).get("json_schema", {}).get("name") != "plan":
            continue
        task = next(
            str(m["content"]).split("\n", 1)[0].removeprefix("Task: ")
            for m in body["messages"]
            if m["role"] == "user" and str(m["content"]).startswith("Task: ")
        )
        shown = examples_shown(body)
        shown_tasks = [t for t in tasks.values() if f"Task: {t}\n" in shown]
        assert task not in shown_tasks  # never the case itself
        offered.setdefault(task, []).extend(shown_tasks)
    # The run without the library saw none; with it, similar cases saw each other's plans.
    assert offered[tasks["rpn-35"]] == [tasks["rpn-power"]]
    assert offered[tasks["rpn-power"]] == [tasks["rpn-35"]]
    assert offered[tasks["spend-software-2025"]] == [tasks["spend-travel-2025"]]
    with_examples = [r for r in doc["results"] if r["config"] == labels[1]]
    without = [r for r in doc["results"] if r["config"] == labels[0]]
    assert all(r["examples"] == [] for r in without)
    by_case = {r["case"]: r["examples"] for r in with_examples}
    assert by_case["rpn-35"] == ["eval-rpn-power"]
    assert all(f"eval-{case}" not in shown for case, shown in by_case.items())


async def test_retrieval_keeps_to_the_tools_the_bounds_and_the_threshold(tmp_path: Path) -> None:
    from agentd.config import ExamplesConfig
    from agentd.library.plans import PlanLibrary

    def lookup(source: str, task: str, tool: str, created_at: float) -> Example:
        steps = [{"id": "s1", "call": {"tool": tool, "arguments": {"vendorId": "v" * 40}}}]
        return Example(
            f"ex-{source}", task, {"steps": steps}, source, "test", "alice", "", created_at
        )

    store = SqliteRunStore(tmp_path / "runs.db")
    try:
        for example in (
            lookup("a", "What is the phone number of vendor ven_001?", "GetVendor", 1.0),
            lookup("b", "What is the phone of vendor ven_007?", "GetVendor", 2.0),
            lookup("c", "Phone number of vendor ven_003 please", "GetVendor", 3.0),
            lookup("d", "What is the phone number of vendor ven_004?", "Unknown", 4.0),
            lookup("e", "Evaluate 3 4 + with the calculator", "Evaluate", 5.0),
        ):
            assert await store.add_example(example, keep=10)
        task = "What is the phone number of vendor ven_002?"
        tools = {"GetVendor", "Evaluate"}

        def library(**keys: Any) -> PlanLibrary:
            return PlanLibrary(ExamplesConfig(**keys), store)

        # The k best of those whose tools the run has ("d" calls a tool it lacks), best first;
        # "a" and "c" have the same words (digits and stop words aside): the newer first.
        found = await library(k=2).for_run(task, "alice", tools)
        assert [e.source for e in found] == ["c", "a"]
        # The prompt budget: only what fits (each example is about 150 characters here).
        assert len(await library(k=3, max_prompt_chars=200).for_run(task, "alice", tools)) == 1
        assert await library(k=3, max_prompt_chars=100).for_run(task, "alice", tools) == []
        # The threshold: a dissimilar task gets nothing; so does another principal.
        assert await library().for_run("Evaluate 5 6 *", "alice", {"GetVendor"}) == []
        assert await library().for_run(task, "bob", tools) == []
        shared = await library(share=True).for_run(task, "bob", tools)
        assert [e.source for e in shared] == ["c", "a"]
        # Leave-one-out: never the run's own task; off: nothing shown at all.
        own = "What is the phone number of vendor ven_001?"
        assert "a" not in [
            e.source for e in await library(leave_one_out=True).for_run(own, "alice", tools)
        ]
        assert await library(enabled=False).for_run(task, "alice", tools) == []
        # A plan larger than max_plan_chars is not kept.
        big = lookup("f", task, "GetVendor", 6.0)
        assert not await library(max_plan_chars=50).add(big)
    finally:
        await store.close()


def test_a_structured_answers_fields_are_shown_to_the_planner_as_an_object() -> None:
    """A plan's structured answer is kept as JSON text in the record; an example shows it as
    the planner writes it, an object, never as a string of escaped JSON."""
    from agentd.library.example import plan_of_record
    from agentd.v1 import agent_pb2

    fields = {"count": "${s1.totalSize}"}
    record = agent_pb2.Plan(direct_answer=json.dumps(fields))
    assert plan_of_record(record)["answer"] == fields
    text = agent_pb2.Plan(direct_answer="The phone is ${s1.phone}.")
    assert plan_of_record(text)["answer"] == "The phone is ${s1.phone}."
    assert plan_of_record(agent_pb2.Plan())["answer"] is None
