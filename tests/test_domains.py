"""The people and helpdesk example services over real gRPC, and their catalogs as agentd's
configs offer them (toolgen preview with the configs' allow and deny lists)."""

from __future__ import annotations

import json
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.type import date_pb2

from examples.helpdesk.data import generate as generate_desk
from examples.helpdesk.server import HelpdeskServer
from examples.helpdesk.server import serve as serve_helpdesk
from examples.helpdesk.v1 import helpdesk_pb2 as hd
from examples.helpdesk.v1 import helpdesk_pb2_grpc
from examples.people.data import generate as generate_people
from examples.people.server import PeopleServer
from examples.people.server import serve as serve_people
from examples.people.v1 import people_pb2 as pp
from examples.people.v1 import people_pb2_grpc
from tests.test_cli import toolgen

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def people_server() -> AsyncIterator[PeopleServer]:
    server = await serve_people(reflection="v1")
    yield server
    await server.stop(None)


@pytest.fixture
async def helpdesk_server() -> AsyncIterator[HelpdeskServer]:
    server = await serve_helpdesk(reflection="v1alpha")
    yield server
    await server.stop(None)


@pytest.fixture
async def people(
    people_server: PeopleServer,
) -> AsyncIterator[people_pb2_grpc.DirectoryServiceStub]:
    async with grpc.aio.insecure_channel(people_server.address) as channel:
        yield people_pb2_grpc.DirectoryServiceStub(channel)


@pytest.fixture
async def desk(
    helpdesk_server: HelpdeskServer,
) -> AsyncIterator[helpdesk_pb2_grpc.HelpdeskServiceStub]:
    async with grpc.aio.insecure_channel(helpdesk_server.address) as channel:
        yield helpdesk_pb2_grpc.HelpdeskServiceStub(channel)


async def status_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), caught.value.details() or ""


def test_data_is_deterministic_and_consistent() -> None:
    a, b = generate_people(), generate_people()
    assert [p.SerializeToString() for p in a.people.values()] == [
        p.SerializeToString() for p in b.people.values()
    ]
    assert len(a.people) >= 30 and len(a.departments) >= 5
    for person in a.people.values():
        assert person.department_id in a.departments
        assert not person.manager_id or person.id in a.people[person.manager_id].reports
        assert person.contact.office.building and person.contact.email.endswith(".example")
    assert len({p.contact.phone for p in a.people.values()}) == len(a.people)
    desk_a, desk_b = generate_desk(), generate_desk()
    assert [t.SerializeToString() for t in desk_a.tickets.values()] == [
        t.SerializeToString() for t in desk_b.tickets.values()
    ]
    assert len(desk_a.tickets) >= 30
    for ticket in desk_a.tickets.values():
        assert ticket.customer_id in desk_a.customers
        assert ticket.comment_count == len(ticket.comments)
        times = [c.create_time.seconds for c in ticket.comments]
        assert times == sorted(times) and all(t > ticket.create_time.seconds for t in times)


# --- people ---------------------------------------------------------------------------------


async def test_get_and_search_people(people: people_pb2_grpc.DirectoryServiceStub) -> None:
    ana = await people.GetPerson(pp.GetPersonRequest(person_id="emp_002"))
    assert ana.full_name == "Ana Kovač" and ana.contact.office.floor == 3
    assert list(ana.reports) == ["emp_007", "emp_008"]
    found = await people.SearchPeople(pp.SearchPeopleRequest(query="ana"))
    assert found.people[0].id == "emp_002"  # name before a title that merely contains "ana"
    assert found.total_size > 1
    kube = await people.SearchPeople(pp.SearchPeopleRequest(skill="Kubernetes"))
    assert kube.people and all("kubernetes" in p.skills for p in kube.people)
    eng = await people.SearchPeople(
        pp.SearchPeopleRequest(skill="python", department_id="dept_eng")
    )
    assert all(p.department_id == "dept_eng" for p in eng.people)
    for request, field in (
        (pp.SearchPeopleRequest(), "query"),
        (pp.SearchPeopleRequest(query="a", limit=51), "limit"),
        (pp.SearchPeopleRequest(query="x" * 201), "query"),
    ):
        code, details = await status_of(people.SearchPeople(request))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and field in details
    code, details = await status_of(people.SearchPeople(pp.SearchPeopleRequest(department_id="x")))
    assert code == grpc.StatusCode.NOT_FOUND and "dept_eng" in details  # names the known ones
    code, details = await status_of(people.GetPerson(pp.GetPersonRequest(person_id="emp_999")))
    assert code == grpc.StatusCode.NOT_FOUND and "emp_999" in details


async def test_list_people_streams_the_filtered_people(
    people: people_pb2_grpc.DirectoryServiceStub,
) -> None:
    interns = [
        p
        async for p in people.ListPeople(
            pp.ListPeopleRequest(employment_type=pp.EMPLOYMENT_TYPE_INTERN)
        )
    ]
    assert [p.id for p in interns] == sorted(p.id for p in interns) and len(interns) == 3
    mill = [p async for p in people.ListPeople(pp.ListPeopleRequest(building="mill yard"))]
    assert mill and all(p.contact.office.building == "Mill Yard" for p in mill)
    everyone = [p async for p in people.ListPeople(pp.ListPeopleRequest())]
    assert len(everyone) == len(generate_people().people)
    stream = people.ListPeople(pp.ListPeopleRequest(department_id="dept_nope"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [p async for p in stream]
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_departments_add_up(people: people_pb2_grpc.DirectoryServiceStub) -> None:
    listed = await people.ListDepartments(pp.ListDepartmentsRequest())
    counts = [d.head_count for d in listed.departments]
    assert counts == sorted(counts, reverse=True)
    everyone = generate_people().people.values()
    assert listed.total_head_count == sum(p.status != pp.STATUS_TERMINATED for p in everyone)
    eng = await people.GetDepartment(pp.GetDepartmentRequest(department_id="dept_eng"))
    assert eng.head_name == "Ana Kovač"
    assert sum(c.count for c in eng.by_employment_type) == eng.head_count
    assert {c.key: c.count for c in eng.by_status}["STATUS_TERMINATED"] == 1
    code, _ = await status_of(people.GetDepartment(pp.GetDepartmentRequest()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_side_effects_change_the_directory(
    people: people_pb2_grpc.DirectoryServiceStub,
) -> None:
    updated = await people.UpdateTitle(
        pp.UpdateTitleRequest(person_id="emp_015", title="Staff Engineer")
    )
    assert updated.title == "Staff Engineer"
    again = await people.GetPerson(pp.GetPersonRequest(person_id="emp_015"))
    assert again.title == "Staff Engineer"
    code, details = await status_of(people.UpdateTitle(pp.UpdateTitleRequest(person_id="emp_015")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "title" in details

    def day(d: int) -> date_pb2.Date:
        return date_pb2.Date(year=2026, month=12, day=d)

    filed = await people.RequestTimeOff(
        pp.RequestTimeOffRequest(person_id="emp_024", start_date=day(18), end_date=day(24))
    )
    assert filed.id == "pto_0001" and filed.working_days == 5 and filed.state == "PENDING"
    for request, field in (
        (
            pp.RequestTimeOffRequest(person_id="emp_024", start_date=day(24), end_date=day(18)),
            "end_date",
        ),
        (pp.RequestTimeOffRequest(person_id="emp_024", start_date=day(18)), "end_date"),
        (
            pp.RequestTimeOffRequest(person_id="emp_022", start_date=day(18), end_date=day(19)),
            "emp_022",
        ),
        (
            pp.RequestTimeOffRequest(
                person_id="emp_024",
                start_date=date_pb2.Date(year=2026, month=2, day=30),
                end_date=day(19),
            ),
            "start_date",
        ),
    ):
        code, details = await status_of(people.RequestTimeOff(request))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and field in details, details
    gone = await people.TerminateEmployment(
        pp.TerminateEmploymentRequest(person_id="emp_018", last_day=day(31))
    )
    assert gone.status == pp.STATUS_TERMINATED


# --- helpdesk -------------------------------------------------------------------------------


async def test_tickets_search_and_count(desk: helpdesk_pb2_grpc.HelpdeskServiceStub) -> None:
    ticket = await desk.GetTicket(hd.GetTicketRequest(ticket_id="tkt_1001"))
    assert ticket.comments and ticket.comment_count == len(ticket.comments)
    found = await desk.SearchTickets(hd.SearchTicketsRequest(query="invoice PDF vat", limit=50))
    assert found.tickets and all(not t.comments for t in found.tickets)
    assert all("vat" in (t.subject + t.description).casefold() for t in found.tickets)
    times = [t.create_time.seconds for t in found.tickets]
    assert times == sorted(times, reverse=True)  # newest first
    urgent_open = await desk.SearchTickets(
        hd.SearchTicketsRequest(status=hd.TICKET_STATUS_OPEN, priority=hd.PRIORITY_URGENT)
    )
    assert all(t.status == hd.TICKET_STATUS_OPEN for t in urgent_open.tickets)
    counts = await desk.CountTickets(hd.CountTicketsRequest())
    assert [c.status for c in counts.by_status] == [1, 2, 3, 4, 5]  # NEW .. CLOSED
    assert sum(c.count for c in counts.by_status) == counts.total == len(generate_desk().tickets)
    unresolved = sum(
        c.count
        for c in counts.by_status
        if c.status in (hd.TICKET_STATUS_NEW, hd.TICKET_STATUS_OPEN, hd.TICKET_STATUS_PENDING)
    )
    assert counts.unresolved == unresolved
    none = await desk.CountTickets(hd.CountTicketsRequest(customer_id="cus_009"))
    assert none.total == 0 and len(none.by_status) == 5  # zeros included
    by_id = await desk.FindCustomers(hd.FindCustomersRequest(query="cus_004"))
    assert [c.name for c in by_id.customers] == ["Bakkerij Van Dam"]
    for call, field in (
        (desk.FindCustomers(hd.FindCustomersRequest()), "query"),
        (desk.SearchTickets(hd.SearchTicketsRequest(limit=-1)), "limit"),
        (desk.SearchTickets(hd.SearchTicketsRequest(query="x" * 201)), "query"),
    ):
        code, details = await status_of(call)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and field in details
    code, details = await status_of(
        desk.CountTickets(hd.CountTicketsRequest(customer_id="cus_999"))
    )
    assert code == grpc.StatusCode.NOT_FOUND and "cus_999" in details


async def test_status_workflow_refuses_invalid_moves(
    desk: helpdesk_pb2_grpc.HelpdeskServiceStub,
) -> None:
    new = "tkt_1035"  # NEW in the data
    code, details = await status_of(
        desk.ChangeStatus(hd.ChangeStatusRequest(ticket_id=new, status=hd.TICKET_STATUS_CLOSED))
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert details == (
        "ticket tkt_1035 cannot move from TICKET_STATUS_NEW to TICKET_STATUS_CLOSED; "
        "allowed from there: TICKET_STATUS_OPEN"
    )
    for status in (hd.TICKET_STATUS_OPEN, hd.TICKET_STATUS_RESOLVED, hd.TICKET_STATUS_CLOSED):
        moved = await desk.ChangeStatus(hd.ChangeStatusRequest(ticket_id=new, status=status))
        assert moved.status == status
    code, details = await status_of(
        desk.ChangeStatus(hd.ChangeStatusRequest(ticket_id=new, status=hd.TICKET_STATUS_OPEN))
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "CLOSED is final" in details
    code, details = await status_of(desk.AddComment(hd.AddCommentRequest(ticket_id=new, body="hi")))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "closed" in details
    code, details = await status_of(desk.ChangeStatus(hd.ChangeStatusRequest(ticket_id=new)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "status" in details


async def test_comments_and_deletion_change_the_desk(
    desk: helpdesk_pb2_grpc.HelpdeskServiceStub,
) -> None:
    before = await desk.GetTicket(hd.GetTicketRequest(ticket_id="tkt_1030"))
    comment = await desk.AddComment(
        hd.AddCommentRequest(ticket_id="tkt_1030", body="Refunded.", internal=True)
    )
    after = await desk.GetTicket(hd.GetTicketRequest(ticket_id="tkt_1030"))
    assert after.comment_count == before.comment_count + 1
    assert after.comments[-1].id == comment.id and after.comments[-1].internal
    for body, field in (("  ", "body"), ("x" * 4001, "body")):
        code, details = await status_of(
            desk.AddComment(hd.AddCommentRequest(ticket_id="tkt_1030", body=body))
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and field in details
    deleted = await desk.DeleteTicket(hd.DeleteTicketRequest(ticket_id="tkt_1011"))
    assert deleted.ticket_id == "tkt_1011"
    code, _ = await status_of(desk.GetTicket(hd.GetTicketRequest(ticket_id="tkt_1011")))
    assert code == grpc.StatusCode.NOT_FOUND


# --- the catalogs agentd's configs offer ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "serve", "kept_out", "streaming"),
    [
        (
            "people",
            serve_people,
            "DirectoryService_TerminateEmployment",
            "DirectoryService_ListPeople",
        ),
        ("helpdesk", serve_helpdesk, "HelpdeskService_DeleteTicket", None),
    ],
)
async def test_config_allowlist_offers_all_but_the_destructive_method(
    name: str, serve: Any, kept_out: str, streaming: str | None
) -> None:
    config = tomllib.loads((ROOT / "examples" / f"{name}.toml").read_text())
    (upstream,) = config["upstreams"]
    server = await serve(reflection="v1alpha")
    try:
        args = ["preview", server.address, "--format", "jsonschema"]
        args += [f"--allow={p}" for p in upstream["allow"]]
        args += [f"--deny={p}" for p in upstream["deny"]]
        args += ["--descriptor-set", str(ROOT / upstream["descriptor_set"])]
        result = await toolgen(*args)
    finally:
        await server.stop(None)
    assert result.code == 0, result.err
    tools = {t["name"]: t for t in json.loads(result.out)}
    assert kept_out not in tools and len(tools) == len(upstream["allow"])
    for tool in tools.values():
        assert tool["description"], tool["name"]  # the proto comments, via the descriptor set
    if streaming is not None:
        assert "messages" in json.dumps(tools[streaming])
