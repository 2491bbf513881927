"""Arguments a plan may not make up: filters the task never asked for are dropped, ids found
nowhere are sent back. The rules alone first, then over the real stack (daemon, the example
ledger, the scripted OpenAI-protocol model)."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentd.loop.grounding import Known, drop_unasked, invented_ids, unasked_side_effects
from agentd.loop.plan import decode_plan
from agentd.v1 import agent_pb2
from tests import test_telemetry
from tests.support.functions import STRING, FunctionTool, obj, tools
from tests.support.plans import answer, plan
from tests.support.scripted_llm import schema_name
from tests.test_agent import Stack, stack, step

__all__ = ["stack"]
spans = test_telemetry.spans  # the span exporter fixture, used here by name

STATUS = {
    "type": "string",
    "enum": [
        "TICKET_STATUS_UNSPECIFIED",
        "TICKET_STATUS_NEW",
        "TICKET_STATUS_IN_PROGRESS",
        "TICKET_STATUS_CLOSED",
    ],
}
PRIORITY = {
    "anyOf": [{"type": "string", "enum": ["PRIORITY_LOW", "PRIORITY_NORMAL"]}, {"type": "integer"}]
}


def _tool(name: str, schema: dict[str, Any], side_effects: str = "none") -> FunctionTool:
    return FunctionTool(name, lambda **_: {}, schema, side_effects=side_effects)


TOOLS = tools(
    _tool(
        "Count",
        obj(
            ["customerId"],
            customerId=STRING,
            status=STATUS,
            priority=PRIORITY,
            statuses={"type": "array", "items": STATUS},
            includeIncome={"type": "boolean"},
            groupBy={"type": "string", "enum": ["DIMENSION_CATEGORY", "DIMENSION_MONTH"]},
            limit={"type": "integer"},
            minAge={"type": "integer"},
            departmentId=STRING,
        ),
    ),
    _tool("Change", obj([], ticketId=STRING, status=STATUS), side_effects="idempotent"),
)


def _plan(*steps: tuple[str, dict[str, Any]]) -> Any:
    written = [
        {"id": f"s{i}", "tool": tool, "arguments": arguments}
        for i, (tool, arguments) in enumerate(steps, 1)
    ]
    return decode_plan(plan(*written), 0)


def test_filters_the_task_does_not_name_are_dropped_and_named_ones_stay() -> None:
    made = _plan(
        (
            "Count",
            {
                "customerId": "cus_005",
                "status": "TICKET_STATUS_IN_PROGRESS",  # "in progress" is in the task: stays
                "priority": "PRIORITY_NORMAL",  # not asked: dropped
                "statuses": ["TICKET_STATUS_NEW", "TICKET_STATUS_CLOSED"],  # "closed" asked
                "includeIncome": True,  # "income" not in the task: dropped
                "groupBy": "DIMENSION_MONTH",  # shapes the result, not a filter: stays
                "limit": 1,  # a size limit the task does not state: dropped
                "minAge": 3,  # other numbers are left alone
            },
        )
    )
    task = "Task: How many in progress or closed tickets has cus_005?"
    dropped = drop_unasked(made, TOOLS, task, Known(task))
    assert made.steps[0].arguments == {
        "customerId": "cus_005",
        "status": "TICKET_STATUS_IN_PROGRESS",
        "statuses": ["TICKET_STATUS_CLOSED"],
        "groupBy": "DIMENSION_MONTH",
        "minAge": 3,
    }
    # Names only: a dropped value is the model's, not worth a record.
    assert dropped == [
        "s1: Count.priority",
        "s1: Count.statuses",
        "s1: Count.includeIncome",
        "s1: Count.limit",
    ]


def test_an_optional_id_filter_the_run_does_not_know_is_dropped() -> None:
    """Seen on the people suite: "who knows Python?" searched within a guessed "dept_sales"."""
    made = _plan(("Count", {"customerId": "c", "departmentId": "dept_sales"}))
    assert drop_unasked(made, TOOLS, "Who knows Python?", Known("Who knows Python?")) == [
        "s1: Count.departmentId"
    ]
    kept = _plan(("Count", {"customerId": "c", "departmentId": "dept_sales"}))
    said = "Who in Sales knows Python?"
    assert drop_unasked(kept, TOOLS, said, Known(said)) == []  # "Sales" names dept_sales
    known = _plan(("Count", {"customerId": "c", "departmentId": "d_7x"}))
    assert drop_unasked(known, TOOLS, "Who?", Known('Who? [{"departmentId": "d_7x"}]')) == []


def test_what_the_task_asks_by_word_stem_stays() -> None:
    made = _plan(
        (
            "Count",
            {"customerId": "c", "includeIncome": True, "priority": "PRIORITY_LOW", "limit": 3},
        )
    )
    task = "Spending and incomes of c, low priority only, the top 3"
    assert drop_unasked(made, TOOLS, task, Known(task)) == []


def test_side_effect_calls_and_references_are_left_alone() -> None:
    made = _plan(
        ("Change", {"ticketId": "tkt_1", "status": "TICKET_STATUS_CLOSED"}),
        ("Count", {"customerId": "c", "status": "$s1.status"}),
    )
    assert drop_unasked(made, TOOLS, "Mark tkt_1 as done", Known("Mark tkt_1 as done")) == []
    assert made.steps[0].arguments["status"] == "TICKET_STATUS_CLOSED"


def test_a_side_effect_standing_in_for_a_destruction_is_a_problem() -> None:
    """Seen on the help desk: "delete ticket tkt_1011" planned as closing it."""
    close = _plan(("Change", {"ticketId": "tkt_1011", "status": "TICKET_STATUS_CLOSED"}))
    (problem,) = unasked_side_effects(close, TOOLS, "Delete ticket tkt_1011 permanently.")
    assert problem.startswith("step 's1': the task asks to delete, which Change does not do")
    assert unasked_side_effects(close, TOOLS, "Please close ticket tkt_1011.") == []
    reads = _plan(("Count", {"customerId": "c"}))
    assert unasked_side_effects(reads, TOOLS, "Delete everything") == []  # reads: no check
    gone = _plan(("DeleteTicket", {"ticketId": "tkt_1011"}))  # a method that says it deletes
    deleting = tools(_tool("DeleteTicket", obj([], ticketId=STRING), side_effects="unsafe"))
    assert unasked_side_effects(gone, deleting, "Delete tkt_1011") == []


def test_a_side_effect_in_the_plan_of_a_question_is_a_problem() -> None:
    """Seen in the staff directory: "What is Oskar Lindgren's salary?" planned as a title
    update, which then waited for an approver who never asked for it."""
    change = _plan(("Change", {"ticketId": "tkt_1011", "status": "TICKET_STATUS_CLOSED"}))
    task = "What is the status of ticket tkt_1011?"
    (problem,) = unasked_side_effects(change, TOOLS, f"Task: {task}", task)
    assert problem.startswith("step 's1': the task asks a question and does not ask to change")
    assert "plan only calls that read" in problem
    for asked in ("Is ticket tkt_1011 still open?", "does tkt_1011 have comments?"):  # yes/no
        assert len(unasked_side_effects(change, TOOLS, f"Task: {asked}", asked)) == 1, asked
    # A question that names the action asks for it; an imperative task is not judged here.
    for asked in (
        "How do I change ticket tkt_1011 to closed?",
        "Close ticket tkt_1011 now.",
        "Can you set ticket tkt_1011 to closed?",  # a request, though it ends with "?"
    ):
        assert unasked_side_effects(change, TOOLS, f"Task: {asked}", asked) == []
    reads = _plan(("Count", {"customerId": "c"}))
    assert unasked_side_effects(reads, TOOLS, f"Task: {task}", task) == []


def test_an_ordered_destruction_no_tool_can_do_is_refused_whatever_the_plan() -> None:
    """Seen on the ledger: "Delete all transactions of vendor ven_001" planned as reads, whose
    results the responder then described. No listed tool deletes: the plan is to refuse."""
    reads = _plan(("Count", {"customerId": "c"}))
    task = "Please delete all tickets of customer c."
    (problem,) = unasked_side_effects(reads, TOOLS, f"Task: {task}", task)
    assert problem == (
        "the task asks to delete, and no listed tool can delete: give no steps and answer "
        "that you cannot"
    )
    assert unasked_side_effects(_plan(), TOOLS, f"Task: {task}", task) == []  # a refusal
    deleting = {**TOOLS, **tools(_tool("DeleteTicket", obj([], ticketId=STRING), "unsafe"))}
    assert unasked_side_effects(reads, deleting, f"Task: {task}", task) == []
    # Only an order: a question about deletions is answered by reading.
    asked = "Which tickets were deleted last week?"
    assert unasked_side_effects(reads, TOOLS, f"Task: {asked}", asked) == []


def test_ids_found_nowhere_are_problems_for_the_planner() -> None:
    made = _plan(
        ("Count", {"customerId": "cus_005"}),  # guessed for "Kestrel"
        ("Change", {"ticketId": "tkt_1023"}),  # "ticket 1023": its number is in the task
        ("Count", {"customerId": "$s1.customers.0.id"}),  # a reference: fine
    )
    problems = invented_ids(
        made, Known("Task: How many tickets did Kestrel file? Close ticket 1023.")
    )
    assert len(problems) == 1
    assert problems[0].startswith("step 's1': arguments/customerId 'cus_005' is in neither")
    assert "find it with a tool first" in problems[0]
    # In an earlier result, or in the conversation, it is known.
    known = 'Task: ... ticket 1023 [{"id": "cus_005", "name": "Kestrel"}]'
    assert invented_ids(made, Known(known)) == []


def test_an_id_whose_parts_the_task_names_is_known() -> None:
    """The catalog shows an id scheme ("Department id, e.g. dept_eng"): "Engineering" names
    dept_eng, "HR" names dept_hr; a person's name is no department id, nor a number one."""
    made = _plan(
        ("Count", {"customerId": "dept_eng"}),
        ("Count", {"customerId": "dept_hr"}),
        ("Count", {"customerId": "dept_yuki_tanaka"}),
        ("Count", {"customerId": "emp_007"}),
    )
    problems = invented_ids(made, Known("Task: Engineering and HR: who is Yuki's manager?"))
    assert [p.split(":")[0] for p in problems] == ["step 's3'", "step 's4'"]


# --- over the real stack ----------------------------------------------------------------


async def test_an_unasked_filter_never_reaches_the_upstream(
    stack: Stack, spans: InMemorySpanExporter
) -> None:
    """Seen on the ledger suite: "spend on travel" planned with ``includeIncome: true``, which
    moved the total. The call the ledger gets has no ``includeIncome``."""
    s = stack
    travel = {"category": "CATEGORY_TRAVEL", "includeIncome": True}
    summary = {"id": "s1", "tool": "LedgerService_SummarizeTransactions", "arguments": travel}
    s.llm.reply(when="plan", content=plan(summary, answer="Travel: ${s1.totalMinor} cents."))
    done = await s.run("How much did we spend on travel?")
    assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
    sent = json.loads(json.dumps(dict(step(done, "s1").arguments)))
    assert sent == {"category": "CATEGORY_TRAVEL"}
    assert [schema_name(r) for r in s.llm.requests] == ["plan"]
    (span,) = [x for x in spans.get_finished_spans() if x.name == "plan"]
    assert span.attributes is not None
    dropped = span.attributes["agentd.plan.dropped_arguments"]
    assert list(dropped) == ["s1: LedgerService_SummarizeTransactions.includeIncome"]


async def test_a_guessed_id_is_sent_back_and_the_lookup_planned(stack: Stack) -> None:
    s = stack
    guess = {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_007"}}
    search = {
        "id": "s1",
        "tool": "LedgerService_SearchVendors",
        "arguments": {"query": "Northwind Coffee"},
    }
    s.llm.reply(when="plan", content=plan(guess, answer="${s1.phone}"))
    s.llm.reply(when="plan", content=plan(search, answer="${s1.vendors.0.phone}"))
    done = await s.run("What is the phone number of Northwind Coffee?")
    assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
    assert [x.tool for x in done.steps] == ["LedgerService_SearchVendors"]  # never ven_007
    assert done.output.startswith("+31")
    repair = s.llm.requests[1]["messages"][-1]["content"]
    assert "arguments/vendorId 'ven_007' is in neither the task nor a result" in repair
    assert [schema_name(r) for r in s.llm.requests] == ["plan", "plan"]


async def test_a_side_effect_standing_in_for_a_deletion_ends_in_a_refusal(stack: Stack) -> None:
    """No tool deletes vendors; the planner reached for the one that changes them. Sent back,
    it refuses: nothing waits for an approver, and nothing changed."""
    s = stack
    update = {
        "id": "s1",
        "tool": "LedgerService_UpdateVendor",
        "arguments": {"vendor": {"id": "ven_001", "name": "(deleted)"}},
    }
    s.llm.reply(when="plan", content=plan(update))
    s.llm.reply(when="plan", content=plan(answer="I cannot delete vendors: no tool does that."))
    done = await s.run("Delete vendor ven_001 from the ledger.")
    assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
    assert done.output == "I cannot delete vendors: no tool does that."
    assert not done.steps and not done.pending_calls
    repair = s.llm.requests[1]["messages"][-1]["content"]
    assert "the task asks to delete, and no listed tool can delete" in repair


async def test_a_question_planned_as_a_side_effect_is_answered_by_reading(stack: Stack) -> None:
    """The planner reached for a change to answer a question; sent back, it reads instead:
    the upstream never sees the change and nothing waits for an approver."""
    s = stack
    update = {
        "id": "s1",
        "tool": "LedgerService_UpdateVendor",
        "arguments": {"vendor": {"id": "ven_001", "phone": "+1"}, "updateMask": "phone"},
    }
    get = {"id": "s2", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_001"}}
    s.llm.reply(when="plan", content=plan(update))
    s.llm.reply(when="plan", content=plan(get, answer="The phone is ${s2.phone}."))
    before = s.ledger.servicer._vendors["ven_001"].phone
    done = await s.run("What is the phone number of vendor ven_001?")
    assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
    assert done.output == f"The phone is {before}."
    assert [st.tool for st in done.steps] == ["LedgerService_GetVendor"]
    assert not done.pending_calls and s.ledger.servicer._vendors["ven_001"].phone == before
    repair = s.llm.requests[1]["messages"][-1]["content"]
    assert "the task asks a question and does not ask to update" in repair


async def test_a_known_id_passes(stack: Stack) -> None:
    s = stack
    get = {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_001"}}
    s.llm.reply(when="plan", content=plan(get))
    s.llm.reply(when="answer", content=answer("+49 61 254 7468"))
    done = await s.run("What is the phone of vendor 1?")  # its number is in the task
    assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
    assert [schema_name(r) for r in s.llm.requests] == ["plan", "answer"]
