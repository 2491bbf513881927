"""A plan's answer as a template over its steps' results (one model call for a lookup), and
honest outcomes (a side effect that did not happen never ends as a success).

The filling rules alone first, then over the real stack: daemon, example upstreams, the
scripted OpenAI-protocol model (whose ``requests`` count the model calls).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format

from agentd.loop.state import StepRecord
from agentd.loop.template import (
    Unresolved,
    answer_fields,
    fill,
    fill_fields,
    is_placeholder,
    undone,
)
from agentd.v1 import agent_pb2
from tests.support.plans import answer, plan
from tests.support.scripted_llm import schema_name
from tests.test_agent import Stack, stack, start_stack
from tests.test_answer_stream import decoding, deltas
from tests.test_guardrails import RULES_GUARD

__all__ = ["stack"]

GET = {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_001"}}
PHONE = "The phone of ${s1.name} is ${s1.phone}."
RESULTS = {
    "s1": {"name": "Acme", "phone": "+1 555 0100", "zip": 0, "open": True, "tags": ["a", "b"]},
    "s2": {"vendors": [{"id": "ven_7", "name": "Zed"}], "note": "", "empty": [], "x": None},
}


# --- filling, alone ---------------------------------------------------------------------


def test_references_are_filled_braced_bare_and_whole() -> None:
    assert fill(PHONE, RESULTS, 4000) == "The phone of Acme is +1 555 0100."
    assert fill("Call $s1.phone.", RESULTS, 4000) == "Call +1 555 0100."
    assert fill("$s2.vendors.0.name", RESULTS, 4000) == "Zed"  # into a list result
    assert fill("${s2.vendors[0].id}: ${s1.zip}", RESULTS, 4000) == "ven_7: 0"
    assert fill("Open: ${s1.open}; tags ${s1.tags}", RESULTS, 4000) == "Open: yes; tags a, b"


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("The phone is +1 555 0100.", "refers to no step result"),  # written before any result
        ("The phone is s1.phone", "without its '\\$'"),
        ("${s3.name}", "step s3 has no result"),
        ("${s1.fax}", "no 'fax'"),
        ("Note: ${s2.note}", "is empty"),
        ("${s2.empty}", "is empty"),
        ("${s2.x}", "is empty"),
        ("${s2.vendors}", "is a list"),  # objects are the responder's to describe
        ("${s2.vendors.0}", "is an object"),
    ],
)
def test_what_cannot_be_the_answer_is_unresolved(template: str, why: str) -> None:
    with pytest.raises(Unresolved, match=why):
        fill(template, RESULTS, 4000)


def test_values_are_inserted_once_never_read_again_and_bounded() -> None:
    # An upstream's text that looks like a reference stays text: one pass, nothing evaluated.
    hostile = {"s1": {"name": "${s2.secret} $s2.secret", "n": "{{7*7}}"}, "s2": {"secret": "k"}}
    assert fill("${s1.name} ${s1.n}", hostile, 100) == "${s2.secret} $s2.secret {{7*7}}"
    huge = {"s1": {"name": "x" * 1_000_000}}
    with pytest.raises(Unresolved, match="longer than 4000"):
        fill("A ${s1.name}", huge, 4000)
    with pytest.raises(Unresolved, match="longer than 4000"):
        fill("$s1.name", huge, 4000)
    many = {"s1": {"name": "y" * 3000}}
    with pytest.raises(Unresolved, match="longer than 4000"):
        fill("${s1.name} ${s1.name}", many, 4000)  # each fits, together they do not


COUNTS = {
    "s1": {"transactions": [{"id": "t1", "amountMinor": "-120"}, {"id": "t2", "amountMinor": "5"}],
           "totalSize": 20, "totalMinor": "-3217200", "ok": True, "note": "", "negative": -1},
}  # fmt: skip
SCHEMA = {
    "type": "object",
    "properties": {
        "count": {"type": "integer", "minimum": 0},
        "total_minor": {"type": "integer"},
        "ids": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["count"],
}


def test_structured_fields_are_each_one_reference_taken_as_typed() -> None:
    filled = fill_fields(
        json.dumps({"count": "${s1.totalSize}", "total_minor": "$s1.totalMinor",
                    "ids": "${s1.transactions.id}"}),
        COUNTS, SCHEMA, 4000,
    )  # fmt: skip
    # int64 written as a string by proto3 JSON comes back a number; a field after a list
    # takes every item's.
    assert filled == {"count": 20, "total_minor": -3217200, "ids": ["t1", "t2"]}
    # The one item of a list of one is no choice.
    one = {"s1": {**COUNTS["s1"], "groups": [{"total": "-5"}]}}
    said = {
        "count": "${s1.totalSize}",
        "total_minor": "${s1.groups.0.total}",
        "ids": "$s1.groups.total",
    }
    assert fill_fields(json.dumps(said), one, SCHEMA, 4000)["total_minor"] == -5
    assert answer_fields(SCHEMA) == {
        "count": "integer", "total_minor": "integer", "ids": "array of string"
    }  # fmt: skip
    nested = {"type": "object", "properties": {"v": {"type": "object"}}}
    for schema in (nested, {"type": "array"}, {"type": "object", "properties": {}}):
        assert answer_fields(schema) == {}


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"count": "20", "total_minor": "$s1.totalMinor", "ids": "$s1.transactions.id"},
         "'count' is not one reference"),  # a literal is the planner's guess
        ({"count": "${s1.transactions}", "total_minor": "$s1.totalMinor",
          "ids": "$s1.transactions.id"}, "'count' .* is not a value of type integer"),  # a page is no count
        ({"count": "${s1.ok}", "total_minor": "$s1.totalMinor", "ids": "$s1.transactions.id"},
         "is not a value of type integer"),
        ({"count": "${s1.totalSize}", "total_minor": "$s1.note", "ids": "$s1.transactions.id"},
         "'total_minor' .* is not a value of type integer"),
        ({"count": "${s1.totalSize}", "total_minor": "$s1.fax", "ids": "$s1.transactions.id"},
         "no 'fax'"),
        ({"count": "${s1.totalSize}", "ids": "$s1.transactions.id"},
         "the response schema's fields"),
        ({"count": "${s1.totalSize}", "total_minor": "$s1.transactions.0.amountMinor",
          "ids": "$s1.transactions.id"}, "'total_minor' .* picks one of 2 items"),  # which: judgement
        ({"count": "${s1.totalSize}", "total_minor": "$s1.totalMinor",
          "ids": "$s1.transactions[1].id"}, "'ids' .* picks one of 2 items"),
        ({"count": "${s1.negative}", "total_minor": "$s1.totalMinor",
          "ids": "$s1.transactions.id"}, "does not match the response schema at /count"),
    ],
)  # fmt: skip
def test_what_cannot_be_a_structured_answer_is_unresolved(fields: dict[str, str], why: str) -> None:
    with pytest.raises(Unresolved, match=why):
        fill_fields(json.dumps(fields), COUNTS, SCHEMA, 4000)
    with pytest.raises(Unresolved, match="not a JSON object"):
        fill_fields("{count", COUNTS, SCHEMA, 4000)


def test_placeholders_are_not_answers() -> None:
    # "I cannot tell" alone (seen after the responder was told to say so when the results
    # lack the answer) says nothing of what they lack.
    for said in (
        "skipped",
        "N/A",
        "Unknown.",
        "missing",
        "",
        "  ",
        "not done",
        "-",
        "I cannot tell.",
    ):
        assert is_placeholder(said), said
    for said in (
        "Skipped the meeting on Monday.",
        "0",
        "Acme",
        "none of them are open",
        "I cannot tell: no ven_999.",
    ):
        assert not is_placeholder(said), said


def test_undone_names_each_side_effect_that_did_not_happen() -> None:
    def record(step_id: str, tool: str, status: str, code: str = "", msg: str = "") -> StepRecord:
        r = StepRecord(step_id, tool, "", {}, 0, status=status)  # type: ignore[arg-type]
        r.error_code, r.error_message = code, msg
        return r

    kinds = {"Get": "none", "Update": "idempotent", "Send": "unsafe"}
    steps = [
        record("s1", "Get", "failed", "NOT_FOUND"),
        record("s2", "Update", "skipped", "SKIPPED"),
        record("s3", "Send", "failed", "REJECTED", "rejected by ana: not today"),
        record("s4", "Gone", "denied", "PERMISSION_DENIED", "Gone is no longer allowed"),
        record("s5", "Update", "failed", "UNAVAILABLE"),
        record("s6", "Send", "failed", "FAILED_PRECONDITION", "quota"),
    ]
    assert undone(steps, kinds) == [
        "Update (step s2) was skipped (a step it depended on failed)",
        "Send (step s3) was rejected by ana: not today",
        "Gone (step s4) was denied (Gone is no longer allowed)",
        "Update (step s5) failed (UNAVAILABLE: whether it took effect is not known)",
        "Send (step s6) failed (FAILED_PRECONDITION)",
    ]
    # A later step of the same tool that succeeded did it after all.
    assert undone([*steps[:2], record("s7", "Update", "succeeded")], kinds) == []


# --- over the real stack ----------------------------------------------------------------


async def test_a_lookup_answered_by_its_template_makes_one_model_call(stack: Stack) -> None:
    s = stack
    s.llm.reply(when="plan", content=plan(GET, answer=PHONE))
    done = await s.run("What is the phone of ven_001?")
    assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
    assert done.output == "The phone of Spreeblick Immobilien GmbH is +49 61 254 7468."
    assert [schema_name(r) for r in s.llm.requests] == ["plan"]  # no responder
    assert [(u.role, u.calls) for u in done.usage] == [("planner", 1)]
    stored = await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=done.run_id), timeout=10)
    assert stored.output == done.output and len(stored.model_calls) == 1


async def test_the_templates_answer_streams_as_deltas_adding_up_to_it(stack: Stack) -> None:
    s = stack
    decoding(s)
    s.llm.reply(when="plan", content=plan(GET, answer=PHONE))
    events = await s.stream("What is the phone of ven_001?")
    final = events[-1].final
    assert final.status == agent_pb2.RUN_STATUS_SUCCEEDED, final.error
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds.index("answer_delta") > kinds.index("step_finished")  # filled after the step
    assert (
        "".join(deltas(events))
        == final.output
        == "The phone of Spreeblick Immobilien GmbH is +49 61 254 7468."
    )
    assert [schema_name(r) for r in s.llm.requests] == ["plan"]


@pytest.mark.parametrize(
    ("template", "steps"),
    [
        ("The fax of ${s1.name} is ${s1.fax}.", (GET,)),  # no such field
        ("The phone is +49 30 901820.", (GET,)),  # refers to nothing: written before results
        # A step failed (ven_999 does not exist), although the template refers to the other.
        (PHONE, (GET, {**GET, "id": "s2", "arguments": {"vendorId": "ven_999"}})),
    ],
    ids=["unresolved", "no-reference", "failed-step"],
)
async def test_the_responder_answers_when_the_template_cannot(
    stack: Stack, template: str, steps: tuple[dict[str, object], ...]
) -> None:
    s = stack
    s.llm.reply(when="plan", content=plan(*steps, answer=template))
    s.llm.reply(when="answer", content=answer("Northwind Coffee: +49 30 901820."))
    done = await s.run("What is the phone of ven_001 (or else ven_999)?")
    assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
    assert done.output == "Northwind Coffee: +49 30 901820."
    assert [schema_name(r) for r in s.llm.requests] == ["plan", "answer"]


async def test_an_unfilled_template_is_never_shown_to_the_responder_nor_copied(
    stack: Stack,
) -> None:
    """Seen on the people suite: a template over a field the result lacks ("salary is
    ${s2.salary}") went to the responder as "Planner's answer", which filled it with a value of
    its own ("$100,000.00"); another run ended with "${s3.fullName}" in its answer. The
    responder now never sees an unfilled template, and an answer carrying a step reference is
    sent back to be written with the values."""
    s = stack
    s.llm.reply(when="plan", content=plan(GET, answer="The fax of ${s1.name} is ${s1.fax}."))
    s.llm.reply(when="answer", content=answer("The fax of ${s1.name} is unknown."))
    s.llm.reply(when="answer", content=answer("Northwind Coffee has no fax on record."))
    done = await s.run("What is the fax number of ven_001?")
    assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
    assert done.output == "Northwind Coffee has no fax on record."
    first, repair = [r for r in s.llm.requests if schema_name(r) == "answer"]
    shown = json.dumps(first["messages"])
    assert "${s1.fax}" not in shown and "Planner's answer" not in shown
    # The repair asked for the values themselves.
    assert 'not "${...}" references' in repair["messages"][-1]["content"]


async def test_a_guess_written_beside_steps_is_not_shown_to_the_responder(stack: Stack) -> None:
    """Seen on the ledger suite: beside its Evaluate step the planner wrote "The result is
    1000000000...0" (240 characters, no reference: a guess before any result); the responder
    was shown it and repeated it. An answer beside steps is a template or nothing."""
    s = stack
    guess = "The phone of Northwind Coffee is +49 30 000 0000."
    s.llm.reply(when="plan", content=plan(GET, answer=guess))
    s.llm.reply(when="answer", content=answer("Northwind Coffee: +49 30 901820."))
    done = await s.run("What is the phone of ven_001?")
    assert done.output == "Northwind Coffee: +49 30 901820."
    (responder,) = [r for r in s.llm.requests if schema_name(r) == "answer"]
    assert guess not in json.dumps(responder["messages"])


async def test_a_structured_answer_is_filled_from_the_plan_in_one_model_call(stack: Stack) -> None:
    s = stack
    by_vendor = {"groupBy": "DIMENSION_VENDOR", "startDate": {"year": 2025, "month": 1, "day": 1}}
    summary = {"id": "s1", "tool": "LedgerService_SummarizeTransactions", "arguments": by_vendor}
    fields = {
        "total": "${s1.totalMinor}",
        "count": "$s1.transactionCount",
        "keys": "${s1.groups.key}",
    }
    s.llm.reply(when="plan", content=plan(summary, answer=fields))
    strings = {"type": "array", "items": {"type": "string"}}
    count = {"type": "integer"}
    schema = {"type": "object", "properties": {"total": count, "count": count, "keys": strings}}
    task = "What did we spend since 1 January 2025, in how many transactions, with which vendors?"
    done = await s.run(task, response_schema=json.dumps(schema))
    assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
    result = json_format.MessageToDict(done.steps[0].result)
    got = json_format.MessageToDict(done.output_json)
    # The int64 total (a string in proto3 JSON) is a number again; a field after a list is
    # every item's; the count is the result's count field, not a listed page's length.
    assert got == {
        "total": int(result["totalMinor"]),
        "count": result["transactionCount"],
        "keys": [g["key"] for g in result["groups"]],
    }
    assert isinstance(result["totalMinor"], str) and got["count"] > len(got["keys"]) > 1
    assert json.loads(done.output) == got
    assert [schema_name(r) for r in s.llm.requests] == ["plan"]  # no responder
    # The planner was offered the fields as the answer beside its steps, and told them.
    sent = s.llm.requests[0]["response_format"]["json_schema"]["schema"]
    with_steps = [b for b in sent["anyOf"] if b["properties"]["steps"].get("minItems")]
    offered = with_steps[0]["properties"]["answer"]["anyOf"]
    assert offered[0]["required"] == ["total", "count", "keys"] and offered[1] == {"type": "null"}
    told = s.llm.requests[0]["messages"][-1]["content"]
    assert told.endswith("Answer fields: total (integer), count (integer), keys (array of string)")


async def test_a_structured_answer_that_does_not_fill_goes_to_the_responder(stack: Stack) -> None:
    s = stack
    s.llm.reply(when="plan", content=plan(GET, answer={"phone": "+49 30 000000"}))  # a literal
    s.llm.reply(when="answer", content=answer({"phone": "+49 30 901820"}))
    schema = {"type": "object", "properties": {"phone": {"type": "string"}}}
    done = await s.run("Phone of ven_001?", response_schema=json.dumps(schema))
    assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
    assert json_format.MessageToDict(done.output_json) == {"phone": "+49 30 901820"}
    assert [schema_name(r) for r in s.llm.requests] == ["plan", "answer"]


async def test_a_nested_response_schema_offers_the_planner_no_template(stack: Stack) -> None:
    s = stack
    s.llm.reply(when="plan", content=plan(GET))
    s.llm.reply(when="answer", content=answer({"vendor": {"phone": "+49 30 901820"}}))
    inner = {"type": "object", "properties": {"phone": {"type": "string"}}}
    schema = {"type": "object", "properties": {"vendor": inner}}
    done = await s.run("Phone of ven_001?", response_schema=json.dumps(schema))
    assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
    assert [schema_name(r) for r in s.llm.requests] == ["plan", "answer"]
    sent = s.llm.requests[0]["response_format"]["json_schema"]["schema"]
    with_steps = [b for b in sent["anyOf"] if b["properties"]["steps"].get("minItems")]
    assert [b["properties"]["answer"] for b in with_steps] == [{"anyOf": [{"type": "null"}]}]


async def test_an_upstream_value_is_never_expanded_again(stack: Stack) -> None:
    s = stack
    vendors = s.ledger.servicer._vendors
    vendors["ven_001"].name = "${s2.phone} $s2.phone"  # the upstream's data, untrusted
    vendors["ven_002"].phone = "SECRET-LOOKING"
    second = {**GET, "id": "s2", "arguments": {"vendorId": "ven_002"}}
    s.llm.reply(when="plan", content=plan(GET, second, answer=PHONE))
    done = await s.run("What are the phones of ven_001 and ven_002?")
    assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
    assert done.output == "The phone of ${s2.phone} $s2.phone is +49 61 254 7468."
    assert "SECRET-LOOKING" not in done.output


async def test_a_huge_upstream_value_goes_to_the_responder_not_into_the_answer(
    stack: Stack,
) -> None:
    s = stack
    s.ledger.servicer._vendors["ven_001"].name = "N" * 5000  # fits a result, not an answer
    s.llm.reply(when="plan", content=plan(GET, answer=PHONE))
    s.llm.reply(when="answer", content=answer("A vendor with a very long name: +49 30 901820."))
    done = await s.run("What is the phone of ven_001?")
    assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
    assert done.output == "A vendor with a very long name: +49 30 901820."
    assert [schema_name(r) for r in s.llm.requests] == ["plan", "answer"]


async def test_a_side_effect_skipped_after_its_lookup_failed_is_not_a_success(
    stack: Stack,
) -> None:
    # Today's bug: the update was skipped (the lookup it needs failed), the responder wrote
    # "skipped", and the run ended SUCCEEDED.
    s = stack
    lookup = {**GET, "id": "s2", "arguments": {"vendorId": "ven_999"}}
    update = {
        "id": "s3",
        "tool": "LedgerService_UpdateVendor",
        "arguments": {"vendor": {"id": "$s2.id", "website": "https://new.example"}},
        "depends_on": ["s2"],
    }
    s.llm.reply(when="plan", content=plan(GET, lookup, update))
    s.llm.reply(when="answer", content=answer("skipped"), times=2)
    done = await s.run("Look up ven_001, then set the website of ven_999 to https://new.example")
    assert done.status == agent_pb2.RUN_STATUS_FAILED
    not_done = "LedgerService_UpdateVendor (step s3) was skipped (a step it depended on failed)"
    assert done.output == f"Not done: {not_done}."
    assert done.error == f"the requested side effect did not happen: {not_done}"
    # "skipped" was sent back as no answer, like "missing".
    assert '"skipped" is not an answer' in s.llm.requests[-1]["messages"][-1]["content"]
    assert s.ledger.servicer._vendors.get("ven_999") is None


async def test_the_filled_answer_passes_the_output_guardrail_like_any_other(
    tmp_path: Path,
) -> None:
    async for s in start_stack(tmp_path, extra=RULES_GUARD):
        s.ledger.servicer._vendors["ven_001"].name = "Confidential Holdings"
        s.llm.reply(when="plan", content=plan(GET, answer=PHONE))
        blocked = await s.run("What is the phone of ven_001?")
        assert blocked.status == agent_pb2.RUN_STATUS_BLOCKED_BY_GUARDRAIL
        assert blocked.output == ""
        assert "confidential" in blocked.verdicts[-1].reasons[0]
        assert [schema_name(r) for r in s.llm.requests] == ["plan"]
