"""A deterministic support desk: 12 customers of an invoicing product and 42 tickets.

Customers and problem descriptions come from the fixed tables below; which customer
filed which problem, when, its status and its thread come from one seeded
`random.Random` and a fixed start time, never from the wall clock, so every process
sees the same tickets for the same seed.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from examples.helpdesk.v1 import helpdesk_pb2

START = dt.datetime(2026, 10, 5, 8, 30, tzinfo=dt.UTC)
TICKETS = 42
AGENTS = ("Isabel Moreno", "Julia Becker", "Noah Dubois", "Kwame Mensah")

# id | company | contact email | plan
_CUSTOMERS = """
cus_001 | Lindqvist Bygg AB | ekonomi@lindqvistbygg.se | TEAM
cus_002 | Osteria Da Marco | marco@osteriadamarco.it | FREE
cus_003 | Kestrel Logistics Ltd | accounts@kestrel-logistics.co.uk | ENTERPRISE
cus_004 | Bakkerij Van Dam | info@bakkerijvandam.nl | TEAM
cus_005 | Atelier Rousseau | claire@atelier-rousseau.fr | FREE
cus_006 | Nordlicht Solar GmbH | buchhaltung@nordlicht-solar.de | ENTERPRISE
cus_007 | Casa Azul Imports | finance@casaazul.mx | TEAM
cus_008 | Dunmore Veterinary Clinic | office@dunmorevets.ie | TEAM
cus_009 | Pixelwerk Studio | hallo@pixelwerk.studio | FREE
cus_010 | Harbour Freight Partners | ap@harbourfreight.example | ENTERPRISE
cus_011 | Grünwald Physiotherapie | praxis@gruenwald-physio.de | TEAM
cus_012 | Tidewater Coffee Roasters | books@tidewatercoffee.com | TEAM
"""

# subject | priority | tags | description
_PROBLEMS = """
Invoice PDF shows the wrong VAT rate | HIGH | billing,vat | Since the last update our invoices print 19% VAT although the customer is set to the reduced 7% rate. The totals in the app are right, only the PDF is wrong.
Cannot log in after password reset | URGENT | login,account | I reset my password this morning and now the login page says the link has expired. Nobody in our office can send invoices today.
Bank feed stopped importing transactions | HIGH | bank-feed,integrations | The bank connection shows a green tick but no transactions have arrived for four days. We reconcile daily so this blocks our month-end.
Recurring invoice sent twice | URGENT | billing,recurring | Our monthly recurring invoice went out twice to three clients on the 1st. They were charged twice by direct debit and are asking for refunds.
How do I add a second currency? | LOW | currency,how-to | We started selling to customers in Switzerland and want to invoice in CHF. Is that possible on our plan, and where is the setting?
Reminder emails land in spam | NORMAL | email,reminders | Our clients tell us the payment reminders end up in their spam folder. The normal invoice emails arrive fine.
API returns 429 during nightly sync | HIGH | api,rate-limit | Our ERP syncs invoices through the API every night at 02:00 and since last week it gets 429 Too Many Requests after about 300 calls.
Logo is blurry on printed invoices | LOW | branding,pdf | The logo looks sharp on screen but blurry when we print the invoice. We uploaded a 2000 pixel PNG.
Export to DATEV fails with an error | HIGH | export,accounting | The DATEV export stops with "Export fehlgeschlagen" at 80 percent. Our tax advisor needs the file by Friday.
Wrong customer address on credit note | NORMAL | billing,credit-note | A credit note we created shows the customer's old address although we updated it last month.
Please delete our old test invoices | LOW | data,cleanup | During setup we created about twenty test invoices. Can you remove them so our numbering starts clean?
Payment link shows an error to customers | URGENT | payments,checkout | Customers who click "Pay now" in the invoice email see an error page instead of the card form. We are losing payments.
Team member cannot see the reports page | NORMAL | permissions,account | Our new bookkeeper has the Accountant role but the Reports menu is missing for her.
Invoice numbering jumped from 1043 to 1100 | NORMAL | billing,numbering | Our invoice numbers skipped from 1043 to 1100 overnight. Our auditor asks why there is a gap.
Request: dark mode for the app | LOW | feature-request | Several of us work late and would love a dark theme. Is it on the roadmap?
Webhook deliveries are delayed by hours | HIGH | api,webhooks | Our invoice.paid webhooks arrive three to five hours late, so our shop releases orders late.
Cannot upload receipts from the phone app | NORMAL | mobile,receipts | Taking a photo of a receipt in the iPhone app ends with "Upload failed". It worked last month.
Dunning fees added to the wrong invoices | HIGH | billing,reminders | The automatic late fee was added to invoices that were already paid.
SSO login loops back to the start page | URGENT | login,sso | After signing in with Microsoft we land on the start page again and again. The whole finance team is locked out.
Tax report totals differ from invoices | HIGH | reports,vat | The quarterly VAT report is 312 euros lower than the sum of our invoices for the same quarter.
"""

# Comment templates per moment of a ticket's life; {agent}, {contact} and {subject} are filled.
_FIRST_REPLY = (
    "Thanks for reporting this. I can reproduce it and have passed it to our engineers.",
    "Thank you, we are looking into it. Could you send the id of one affected invoice?",
    "Thanks for the details. I am checking the logs for your account now.",
)
_INTERNAL = (
    "Looks related to last Tuesday's release; linked to the engineering issue.",
    "Customer is on a contract with a 4-hour response time, keep them posted.",
    "Checked the account settings, nothing unusual configured.",
)
_CUSTOMER_REPLY = (
    "Here is an example: invoice 2026-0417. It happens with every invoice since Monday.",
    "Any news on this? We still cannot work around it.",
    "Thanks, the screenshots are attached. It happens on every computer in our office.",
)
_FIX = (
    "A fix was deployed this morning. Could you check whether it works for you now?",
    "We corrected the setting on our side; please try again and let us know.",
    "This is solved by the update released today. Sorry for the trouble.",
)
_THANKS = (
    "It works again, thank you for the quick help!",
    "Confirmed, everything looks right now.",
)


@dataclass
class Desk:
    """The customers and tickets by id (tickets oldest first)."""

    customers: dict[str, helpdesk_pb2.Customer]
    tickets: dict[str, helpdesk_pb2.Ticket]


def _rows(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("|")] for line in table.strip().splitlines()]


def _thread(
    status: int, agent: str, contact: str, opened: dt.datetime, rng: random.Random, first: int
) -> list[helpdesk_pb2.Comment]:
    """The comments a ticket in `status` has collected, oldest first."""
    S = helpdesk_pb2
    plan: list[tuple[str, str, bool]] = []
    if status != S.TICKET_STATUS_NEW:
        plan.append((agent, rng.choice(_FIRST_REPLY), False))
        if rng.random() < 0.5:
            plan.append((agent, rng.choice(_INTERNAL), True))
    if status in (S.TICKET_STATUS_PENDING, S.TICKET_STATUS_RESOLVED, S.TICKET_STATUS_CLOSED):
        plan.append((contact, rng.choice(_CUSTOMER_REPLY), False))
    if status in (S.TICKET_STATUS_RESOLVED, S.TICKET_STATUS_CLOSED):
        plan.append((agent, rng.choice(_FIX), False))
    if status == S.TICKET_STATUS_CLOSED:
        plan.append((contact, rng.choice(_THANKS), False))
    comments = []
    when = opened
    for offset, (author, body, internal) in enumerate(plan):
        when += dt.timedelta(minutes=rng.randint(20, 600))
        comment = helpdesk_pb2.Comment(
            id=f"cmt_{first + offset:05d}", author=author, body=body, internal=internal
        )
        comment.create_time.FromDatetime(when)
        comments.append(comment)
    return comments


def generate(seed: int = 5) -> Desk:
    """Build the desk for `seed`; the same seed always gives the same data."""
    rng = random.Random(seed)
    customers = {
        row[0]: helpdesk_pb2.Customer(
            id=row[0], name=row[1], contact_email=row[2], plan=f"PLAN_{row[3]}"
        )
        for row in _rows(_CUSTOMERS)
    }
    problems = _rows(_PROBLEMS)
    statuses = (
        [helpdesk_pb2.TICKET_STATUS_CLOSED] * 3
        + [helpdesk_pb2.TICKET_STATUS_RESOLVED] * 2
        + [helpdesk_pb2.TICKET_STATUS_PENDING] * 2
        + [helpdesk_pb2.TICKET_STATUS_OPEN] * 3
        + [helpdesk_pb2.TICKET_STATUS_NEW] * 1
    )
    tickets: dict[str, helpdesk_pb2.Ticket] = {}
    opened = START
    next_comment = 1
    for number in range(TICKETS):
        subject, priority, tags, description = problems[(number * 7) % len(problems)]
        customer = rng.choice(list(customers.values()))
        opened += dt.timedelta(hours=rng.randint(3, 60), minutes=rng.randint(0, 59))
        # Older tickets are more often finished; the newest are more often new or open.
        age = number / TICKETS
        status = rng.choice(statuses[: 11 - int(age * 5)] if age < 0.8 else statuses[5:])
        agent = "" if status == helpdesk_pb2.TICKET_STATUS_NEW else rng.choice(AGENTS)
        comments = _thread(status, agent, customer.contact_email, opened, rng, next_comment)
        next_comment += len(comments)
        ticket = helpdesk_pb2.Ticket(
            id=f"tkt_{1001 + number}",
            subject=subject,
            description=description,
            customer_id=customer.id,
            status=status,
            priority=f"PRIORITY_{priority}",
            assignee=agent,
            tags=tags.split(","),
            comment_count=len(comments),
            comments=comments,
        )
        ticket.create_time.FromDatetime(opened)
        ticket.update_time.FromDatetime(
            comments[-1].create_time.ToDatetime(dt.UTC) if comments else opened
        )
        tickets[ticket.id] = ticket
    return Desk(customers=customers, tickets=tickets)
