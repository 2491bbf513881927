"""The example `DirectoryService`: a company's staff directory, served over grpc.aio."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.type import date_pb2

from examples._serving import (
    Reflection,
    RunningServer,
    StatusError,
    abort,
    invalid,
    not_found,
    start_server,
    statuses,
)
from examples.people.data import Directory, generate
from examples.people.v1 import people_pb2, people_pb2_grpc

SERVICE_NAME: str = people_pb2.DESCRIPTOR.services_by_name["DirectoryService"].full_name
DEFAULT_SEARCH_LIMIT = 10
MAX_SEARCH_LIMIT = 50
MAX_TEXT = 200  # a title, reason or query longer than this is refused
_Ctx = grpc.aio.ServicerContext[Any, Any]


def search_rank(person: people_pb2.Person, query: str) -> int | None:
    """How well `person` matches the casefolded `query` (lower is better), None for no match.

    Name prefix, then a word of the name, then a word of the title, then anywhere in the
    name, title or email. The suite generator ranks with this same function.
    """
    name, title = person.full_name.casefold(), person.title.casefold()
    if name.startswith(query):
        return 0
    if any(word.startswith(query) for word in name.split()):
        return 1
    if any(word.strip(",").startswith(query) for word in title.split()):
        return 2
    if query in name or query in title or query in person.contact.email.casefold():
        return 3
    return None


def search(
    people: list[people_pb2.Person], query: str, department_id: str = "", skill: str = ""
) -> list[people_pb2.Person]:
    """SearchPeople's matches, best first (ties by name)."""
    query, skill = query.strip().casefold(), skill.strip().casefold()
    ranked: list[tuple[int, str, people_pb2.Person]] = []
    for person in people:
        if department_id and person.department_id != department_id:
            continue
        if skill and skill not in (s.casefold() for s in person.skills):
            continue
        rank = search_rank(person, query) if query else 0
        if rank is not None:
            ranked.append((rank, person.full_name, person))
    ranked.sort(key=lambda item: (item[0], item[1]))
    return [person for _, _, person in ranked]


def summarize(directory: Directory, department_id: str) -> people_pb2.Department:
    """One department's numbers, as GetDepartment returns them."""
    info = directory.departments[department_id]
    members = [p for p in directory.people.values() if p.department_id == department_id]
    current = [p for p in members if p.status != people_pb2.STATUS_TERMINATED]
    types = Counter(p.employment_type for p in current)
    states = Counter(p.status for p in members)
    return people_pb2.Department(
        id=info.id,
        name=info.name,
        head_id=info.head_id,
        head_name=directory.people[info.head_id].full_name,
        head_count=len(current),
        by_employment_type=[
            people_pb2.Count(key=people_pb2.EmploymentType.Name(k), count=types[k])
            for k in sorted(types)
        ],
        by_status=[
            people_pb2.Count(key=people_pb2.Status.Name(k), count=states[k]) for k in sorted(states)
        ],
        main_building=info.main_building,
    )


def _day(date: date_pb2.Date, field_name: str) -> dt.date:
    try:
        return dt.date(date.year, date.month, date.day)
    except ValueError:
        raise invalid(
            f"{field_name} {date.year:04d}-{date.month:02d}-{date.day:02d} is not a valid date"
        ) from None


def _text(value: str, field_name: str, *, required: bool) -> str:
    value = value.strip()
    if required and not value:
        raise invalid(f"{field_name} is required")
    if len(value) > MAX_TEXT:
        raise invalid(f"{field_name} has {len(value)} characters; at most {MAX_TEXT}")
    return value


class DirectoryServicer(people_pb2_grpc.DirectoryServiceServicer):
    """`DirectoryService` over an in-memory `Directory`; title changes mutate it."""

    def __init__(self, directory: Directory) -> None:
        # Copied so changes stay private to this servicer; stored messages are replaced,
        # never changed in place, so readers never see half an update.
        self.directory = Directory(dict(directory.people), dict(directory.departments))
        self.time_off: list[people_pb2.TimeOffRequest] = []
        self._lock = asyncio.Lock()

    def _person(self, person_id: str, field_name: str = "person_id") -> people_pb2.Person:
        if not person_id:
            raise invalid(f"{field_name} is required")
        person = self.directory.people.get(person_id)
        if person is None:
            raise not_found(f"{field_name}: no person with id {person_id!r}")
        return person

    def _department(self, department_id: str) -> None:
        if department_id and department_id not in self.directory.departments:
            known = ", ".join(self.directory.departments)
            raise not_found(f"department_id: no department {department_id!r}; known: {known}")

    @statuses
    async def GetPerson(
        self, request: people_pb2.GetPersonRequest, context: _Ctx
    ) -> people_pb2.Person:
        """One person by id."""
        return self._person(request.person_id)

    @statuses
    async def SearchPeople(
        self, request: people_pb2.SearchPeopleRequest, context: _Ctx
    ) -> people_pb2.SearchPeopleResponse:
        """People by name, title or email, optionally within a department or with a skill."""
        query = _text(request.query, "query", required=False)
        if not (query or request.department_id or request.skill):
            raise invalid("query is required unless department_id or skill is given")
        if request.limit < 0 or request.limit > MAX_SEARCH_LIMIT:
            raise invalid(f"limit must be between 0 and {MAX_SEARCH_LIMIT}, got {request.limit}")
        self._department(request.department_id)
        found = search(
            list(self.directory.people.values()), query, request.department_id, request.skill
        )
        limit = request.limit or DEFAULT_SEARCH_LIMIT
        return people_pb2.SearchPeopleResponse(people=found[:limit], total_size=len(found))

    async def ListPeople(
        self, request: people_pb2.ListPeopleRequest, context: _Ctx
    ) -> AsyncIterator[people_pb2.Person]:
        """Every person matching the filters, by id."""
        try:
            self._department(request.department_id)
        except StatusError as error:
            await abort(context, error)
        building = request.building.strip().casefold()
        for person in list(self.directory.people.values()):
            if (
                (not request.department_id or person.department_id == request.department_id)
                and (
                    not request.employment_type or person.employment_type == request.employment_type
                )
                and (not request.status or person.status == request.status)
                and (not building or person.contact.office.building.casefold() == building)
            ):
                yield person

    @statuses
    async def GetDepartment(
        self, request: people_pb2.GetDepartmentRequest, context: _Ctx
    ) -> people_pb2.Department:
        """One department's head and head counts."""
        if not request.department_id:
            raise invalid("department_id is required")
        self._department(request.department_id)
        return summarize(self.directory, request.department_id)

    @statuses
    async def ListDepartments(
        self, request: people_pb2.ListDepartmentsRequest, context: _Ctx
    ) -> people_pb2.ListDepartmentsResponse:
        """Every department, largest first."""
        departments = [summarize(self.directory, d) for d in self.directory.departments]
        departments.sort(key=lambda d: (-d.head_count, d.id))
        return people_pb2.ListDepartmentsResponse(
            departments=departments, total_head_count=sum(d.head_count for d in departments)
        )

    @statuses
    async def UpdateTitle(
        self, request: people_pb2.UpdateTitleRequest, context: _Ctx
    ) -> people_pb2.Person:
        """A new job title for one person."""
        title = _text(request.title, "title", required=True)
        async with self._lock:
            updated = people_pb2.Person()
            updated.CopyFrom(self._person(request.person_id))
            updated.title = title
            self.directory.people[updated.id] = updated
        return updated

    @statuses
    async def RequestTimeOff(
        self, request: people_pb2.RequestTimeOffRequest, context: _Ctx
    ) -> people_pb2.TimeOffRequest:
        """File a pending time-off request."""
        person = self._person(request.person_id)
        if person.status == people_pb2.STATUS_TERMINATED:
            raise invalid(f"person_id: {person.id} is no longer employed")
        if not request.HasField("start_date") or not request.HasField("end_date"):
            raise invalid("start_date and end_date are required")
        start = _day(request.start_date, "start_date")
        end = _day(request.end_date, "end_date")
        if end < start:
            raise invalid("end_date is before start_date")
        if (end - start).days > 365:
            raise invalid("end_date is more than a year after start_date")
        days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
        async with self._lock:
            filed = people_pb2.TimeOffRequest(
                id=f"pto_{len(self.time_off) + 1:04d}",
                person_id=person.id,
                start_date=request.start_date,
                end_date=request.end_date,
                working_days=sum(1 for d in days if d.weekday() < 5),
                reason=_text(request.reason, "reason", required=False),
                state="PENDING",
            )
            self.time_off.append(filed)
        return filed

    @statuses
    async def TerminateEmployment(
        self, request: people_pb2.TerminateEmploymentRequest, context: _Ctx
    ) -> people_pb2.Person:
        """Mark one person as terminated."""
        if not request.HasField("last_day"):
            raise invalid("last_day is required")
        _day(request.last_day, "last_day")
        async with self._lock:
            updated = people_pb2.Person()
            updated.CopyFrom(self._person(request.person_id))
            updated.status = people_pb2.STATUS_TERMINATED
            self.directory.people[updated.id] = updated
        return updated


class PeopleServer(RunningServer[DirectoryServicer]):
    """A started directory server; `servicer` holds its (mutable) data."""


async def serve(
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    reflection: Reflection = "both",
    latency_s: float = 0.0,
    require_token: str | None = None,
    data: Directory | None = None,
) -> PeopleServer:
    """Start the directory service with health checking and reflection; returns once serving."""
    return await start_server(
        PeopleServer,
        DirectoryServicer(data if data is not None else generate()),
        service_name=SERVICE_NAME,
        add_to_server=people_pb2_grpc.add_DirectoryServiceServicer_to_server,
        port=port,
        host=host,
        reflection=reflection,
        latency_s=latency_s,
        require_token=require_token,
    )
