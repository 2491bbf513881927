"""The example `HelpdeskService`: support tickets and their threads, served over grpc.aio."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Iterable
from typing import Any

import grpc

from examples._serving import (
    Reflection,
    RunningServer,
    failed_precondition,
    invalid,
    not_found,
    start_server,
    statuses,
)
from examples.helpdesk.data import Desk, generate
from examples.helpdesk.v1 import helpdesk_pb2, helpdesk_pb2_grpc

SERVICE_NAME: str = helpdesk_pb2.DESCRIPTOR.services_by_name["HelpdeskService"].full_name
DEFAULT_LIMIT = 10
MAX_LIMIT = 50
MAX_QUERY = 200
MAX_COMMENT = 4000
# Whoever comments through this API is the support agent "Helpdesk assistant".
API_AUTHOR = "Helpdesk assistant"

S = helpdesk_pb2
# status -> the statuses a ticket may move to from it.
TRANSITIONS: dict[int, tuple[int, ...]] = {
    S.TICKET_STATUS_NEW: (S.TICKET_STATUS_OPEN,),
    S.TICKET_STATUS_OPEN: (S.TICKET_STATUS_PENDING, S.TICKET_STATUS_RESOLVED),
    S.TICKET_STATUS_PENDING: (S.TICKET_STATUS_OPEN, S.TICKET_STATUS_RESOLVED),
    S.TICKET_STATUS_RESOLVED: (S.TICKET_STATUS_OPEN, S.TICKET_STATUS_CLOSED),
    S.TICKET_STATUS_CLOSED: (),
}
UNRESOLVED = (S.TICKET_STATUS_NEW, S.TICKET_STATUS_OPEN, S.TICKET_STATUS_PENDING)
_Ctx = grpc.aio.ServicerContext[Any, Any]


def status_name(status: int) -> str:
    return helpdesk_pb2.TicketStatus.Name(status)  # type: ignore[arg-type]


def matches(ticket: helpdesk_pb2.Ticket, query: str) -> bool:
    """Every word of the casefolded `query` occurs in the subject or description."""
    text = f"{ticket.subject} {ticket.description}".casefold()
    return all(word in text for word in query.split())


def search(
    tickets: Iterable[helpdesk_pb2.Ticket],
    query: str = "",
    customer_id: str = "",
    status: int = 0,
    priority: int = 0,
) -> list[helpdesk_pb2.Ticket]:
    """SearchTickets' matches, newest first, with their comments left out."""
    query = query.strip().casefold()
    found = []
    for ticket in tickets:
        if (
            (not customer_id or ticket.customer_id == customer_id)
            and (not status or ticket.status == status)
            and (not priority or ticket.priority == priority)
            and matches(ticket, query)
        ):
            brief = helpdesk_pb2.Ticket()
            brief.CopyFrom(ticket)
            brief.ClearField("comments")
            found.append(brief)
    found.sort(key=lambda t: (-t.create_time.seconds, t.id))
    return found


def count(tickets: Iterable[helpdesk_pb2.Ticket]) -> helpdesk_pb2.CountTicketsResponse:
    """Tickets per status in workflow order, zeros included."""
    counted: Counter[int] = Counter(int(t.status) for t in tickets)
    return helpdesk_pb2.CountTicketsResponse(
        by_status=[
            helpdesk_pb2.StatusCount(status=status_name(s), count=counted[s]) for s in TRANSITIONS
        ],
        total=sum(counted.values()),
        unresolved=sum(counted[s] for s in UNRESOLVED),
    )


def find_customers(
    customers: Iterable[helpdesk_pb2.Customer], query: str
) -> list[helpdesk_pb2.Customer]:
    """FindCustomers' matches, by name."""
    query = query.strip().casefold()
    found = [
        c
        for c in customers
        if query in c.name.casefold() or query in c.contact_email or query == c.id
    ]
    return sorted(found, key=lambda c: c.name)


class HelpdeskServicer(helpdesk_pb2_grpc.HelpdeskServiceServicer):
    """`HelpdeskService` over an in-memory `Desk`; comments and status changes mutate it."""

    def __init__(self, desk: Desk) -> None:
        # Copied so changes stay private to this servicer; stored tickets are replaced,
        # never changed in place, so readers never see half an update.
        self.customers = dict(desk.customers)
        self.tickets = dict(desk.tickets)
        self._comments = sum(t.comment_count for t in desk.tickets.values())
        self._lock = asyncio.Lock()

    def _ticket(self, ticket_id: str) -> helpdesk_pb2.Ticket:
        if not ticket_id:
            raise invalid("ticket_id is required")
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            raise not_found(f"ticket_id: no ticket with id {ticket_id!r}")
        return ticket

    def _customer(self, customer_id: str) -> None:
        if customer_id and customer_id not in self.customers:
            raise not_found(f"customer_id: no customer with id {customer_id!r}")

    def _updated(self, ticket: helpdesk_pb2.Ticket) -> helpdesk_pb2.Ticket:
        copy = helpdesk_pb2.Ticket()
        copy.CopyFrom(ticket)
        copy.update_time.FromDatetime(dt.datetime.now(dt.UTC))
        return copy

    @statuses
    async def GetTicket(
        self, request: helpdesk_pb2.GetTicketRequest, context: _Ctx
    ) -> helpdesk_pb2.Ticket:
        """One ticket with its thread."""
        return self._ticket(request.ticket_id)

    @statuses
    async def SearchTickets(
        self, request: helpdesk_pb2.SearchTicketsRequest, context: _Ctx
    ) -> helpdesk_pb2.SearchTicketsResponse:
        """Tickets by words and filters, newest first."""
        if len(request.query) > MAX_QUERY:
            raise invalid(f"query has {len(request.query)} characters; at most {MAX_QUERY}")
        if request.limit < 0 or request.limit > MAX_LIMIT:
            raise invalid(f"limit must be between 0 and {MAX_LIMIT}, got {request.limit}")
        self._customer(request.customer_id)
        found = search(
            self.tickets.values(),
            request.query,
            request.customer_id,
            request.status,
            request.priority,
        )
        limit = request.limit or DEFAULT_LIMIT
        return helpdesk_pb2.SearchTicketsResponse(tickets=found[:limit], total_size=len(found))

    @statuses
    async def CountTickets(
        self, request: helpdesk_pb2.CountTicketsRequest, context: _Ctx
    ) -> helpdesk_pb2.CountTicketsResponse:
        """Tickets per status, optionally of one customer or priority."""
        self._customer(request.customer_id)
        return count(
            t
            for t in self.tickets.values()
            if (not request.customer_id or t.customer_id == request.customer_id)
            and (not request.priority or t.priority == request.priority)
        )

    @statuses
    async def FindCustomers(
        self, request: helpdesk_pb2.FindCustomersRequest, context: _Ctx
    ) -> helpdesk_pb2.FindCustomersResponse:
        """Customers by name or contact email."""
        query = request.query.strip()
        if not query:
            raise invalid("query is required")
        if len(query) > MAX_QUERY:
            raise invalid(f"query has {len(query)} characters; at most {MAX_QUERY}")
        return helpdesk_pb2.FindCustomersResponse(
            customers=find_customers(self.customers.values(), query.casefold())
        )

    @statuses
    async def AddComment(
        self, request: helpdesk_pb2.AddCommentRequest, context: _Ctx
    ) -> helpdesk_pb2.Comment:
        """Append a comment to a ticket's thread."""
        body = request.body.strip()
        if not body:
            raise invalid("body is required")
        if len(body) > MAX_COMMENT:
            raise invalid(f"body has {len(body)} characters; at most {MAX_COMMENT}")
        async with self._lock:
            ticket = self._ticket(request.ticket_id)
            if ticket.status == S.TICKET_STATUS_CLOSED:
                raise failed_precondition(
                    f"ticket {ticket.id} is CLOSED; a closed ticket takes no more comments"
                )
            self._comments += 1
            comment = helpdesk_pb2.Comment(
                id=f"cmt_{self._comments:05d}",
                author=API_AUTHOR,
                body=body,
                internal=request.internal,
            )
            comment.create_time.GetCurrentTime()
            updated = self._updated(ticket)
            updated.comments.append(comment)
            updated.comment_count += 1
            self.tickets[updated.id] = updated
        return comment

    @statuses
    async def ChangeStatus(
        self, request: helpdesk_pb2.ChangeStatusRequest, context: _Ctx
    ) -> helpdesk_pb2.Ticket:
        """Move a ticket along its workflow; any other move is FAILED_PRECONDITION."""
        if request.status not in TRANSITIONS:
            raise invalid(f"status must be one of {', '.join(map(status_name, TRANSITIONS))}")
        async with self._lock:
            ticket = self._ticket(request.ticket_id)
            allowed = TRANSITIONS[ticket.status]
            if request.status not in allowed:
                options = ", ".join(map(status_name, allowed)) or "none (CLOSED is final)"
                raise failed_precondition(
                    f"ticket {ticket.id} cannot move from {status_name(ticket.status)} to "
                    f"{status_name(request.status)}; allowed from there: {options}"
                )
            updated = self._updated(ticket)
            updated.status = request.status
            self.tickets[updated.id] = updated
        return updated

    @statuses
    async def DeleteTicket(
        self, request: helpdesk_pb2.DeleteTicketRequest, context: _Ctx
    ) -> helpdesk_pb2.DeleteTicketResponse:
        """Remove a ticket and its thread."""
        async with self._lock:
            ticket = self._ticket(request.ticket_id)
            del self.tickets[ticket.id]
        return helpdesk_pb2.DeleteTicketResponse(ticket_id=ticket.id)


class HelpdeskServer(RunningServer[HelpdeskServicer]):
    """A started helpdesk server; `servicer` holds its (mutable) data."""


async def serve(
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    reflection: Reflection = "both",
    latency_s: float = 0.0,
    require_token: str | None = None,
    data: Desk | None = None,
) -> HelpdeskServer:
    """Start the helpdesk service with health checking and reflection; returns once serving."""
    return await start_server(
        HelpdeskServer,
        HelpdeskServicer(data if data is not None else generate()),
        service_name=SERVICE_NAME,
        add_to_server=helpdesk_pb2_grpc.add_HelpdeskServiceServicer_to_server,
        port=port,
        host=host,
        reflection=reflection,
        latency_s=latency_s,
        require_token=require_token,
    )
