"""The example `LedgerService`: transactions and vendors of one business, served over grpc.aio."""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

import grpc
from google.protobuf import descriptor, field_mask_pb2
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
from examples.ledger.data import LedgerData, generate, month_name
from examples.ledger.v1 import ledger_pb2, ledger_pb2_grpc

SERVICE_NAME: str = ledger_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
DEFAULT_SEARCH_LIMIT = 10
MAX_SEARCH_LIMIT = 100
# Fields UpdateVendor may change; `id` names the vendor and `update_time` is output only.
WRITABLE_VENDOR_FIELDS = ("name", "website", "phone", "address", "hours", "default_category")

# upb's descriptor type is not the one the FieldMask stubs name; they behave the same.
_VENDOR_DESCRIPTOR = cast(descriptor.Descriptor, ledger_pb2.Vendor.DESCRIPTOR)
_Ctx = grpc.aio.ServicerContext[Any, Any]


def _date_key(date: date_pb2.Date) -> int:
    return date.year * 10000 + date.month * 100 + date.day


def _date_bound(request: Any, field_name: str) -> int | None:
    """The request's date field as a sortable key, None when unset; rejects impossible dates."""
    if not request.HasField(field_name):
        return None
    date = getattr(request, field_name)
    try:
        dt.date(date.year, date.month, date.day)
    except ValueError:
        raise invalid(
            f"{field_name} {date.year:04d}-{date.month:02d}-{date.day:02d} is not a valid date"
        ) from None
    return _date_key(date)


def _date_range(request: Any) -> tuple[int | None, int | None]:
    start, end = _date_bound(request, "start_date"), _date_bound(request, "end_date")
    if start is not None and end is not None and start > end:
        raise invalid("start_date is after end_date")
    return start, end


def _in_range(
    transactions: Iterable[ledger_pb2.Transaction], start: int | None, end: int | None
) -> list[ledger_pb2.Transaction]:
    return [
        t
        for t in transactions
        if (start is None or _date_key(t.booked_date) >= start)
        and (end is None or _date_key(t.booked_date) <= end)
    ]


def category_label(category: int) -> str:
    """Readable category, e.g. "Office supplies" for CATEGORY_OFFICE_SUPPLIES."""
    if category == ledger_pb2.CATEGORY_UNSPECIFIED:
        return "Uncategorised"
    return (
        ledger_pb2.Category.Name(category).removeprefix("CATEGORY_").replace("_", " ").capitalize()
    )


def _page_scope(request: ledger_pb2.ListTransactionsRequest) -> str:
    """Fingerprint of the filters, so a token is only reused with the query that made it."""
    scope = ledger_pb2.ListTransactionsRequest()
    scope.CopyFrom(request)
    scope.ClearField("page_token")
    scope.ClearField("page_size")
    return hashlib.sha256(scope.SerializeToString(deterministic=True)).hexdigest()[:16]


def _encode_token(offset: int, scope: str) -> str:
    raw = json.dumps({"o": offset, "s": scope}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, scope: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
        offset, token_scope = payload["o"], payload["s"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise invalid("page_token is not a token returned by ListTransactions") from None
    if not isinstance(offset, int) or offset < 0:
        raise invalid("page_token is not a token returned by ListTransactions")
    if token_scope != scope:
        raise invalid(
            "page_token belongs to a query with different filters; "
            "repeat the original filters or drop page_token"
        )
    return offset


class LedgerServicer(ledger_pb2_grpc.LedgerServiceServicer):
    """`LedgerService` over an in-memory `LedgerData`; vendor updates mutate it."""

    def __init__(self, data: LedgerData) -> None:
        self.currency = data.currency
        # Copy the dict so updates stay private to this servicer; stored vendor messages
        # are replaced, never changed in place, so readers never see half an update.
        self._vendors: dict[str, ledger_pb2.Vendor] = dict(data.vendors)
        self._oldest_first = sorted(
            data.transactions, key=lambda t: (_date_key(t.booked_date), t.id)
        )
        self._newest_first = self._oldest_first[::-1]
        self._lock = asyncio.Lock()

    def _require_vendor(self, vendor_id: str, field_name: str) -> ledger_pb2.Vendor:
        vendor = self._vendors.get(vendor_id)
        if vendor is None:
            raise not_found(f"{field_name}: no vendor with id {vendor_id!r}")
        return vendor

    @statuses
    async def ListTransactions(
        self, request: ledger_pb2.ListTransactionsRequest, context: _Ctx
    ) -> ledger_pb2.ListTransactionsResponse:
        """Filtered, newest-first transactions, one page at a time."""
        if request.page_size < 0 or request.page_size > MAX_PAGE_SIZE:
            raise invalid(
                f"page_size must be between 0 and {MAX_PAGE_SIZE}, got {request.page_size}"
            )
        page_size = request.page_size or DEFAULT_PAGE_SIZE
        start, end = _date_range(request)
        if request.vendor_id:
            self._require_vendor(request.vendor_id, "vendor_id")
        scope = _page_scope(request)
        offset = _decode_token(request.page_token, scope) if request.page_token else 0
        matches = [
            t
            for t in _in_range(self._newest_first, start, end)
            if (not request.vendor_id or t.vendor_id == request.vendor_id)
            and (not request.category or t.category == request.category)
        ]
        page = matches[offset : offset + page_size]
        next_offset = offset + len(page)
        return ledger_pb2.ListTransactionsResponse(
            transactions=page,
            next_page_token=_encode_token(next_offset, scope) if next_offset < len(matches) else "",
            total_size=len(matches),
        )

    @statuses
    async def SummarizeTransactions(
        self, request: ledger_pb2.SummarizeTransactionsRequest, context: _Ctx
    ) -> ledger_pb2.SummarizeTransactionsResponse:
        """Totals per category, vendor or month, largest absolute total first.

        `total_minor` and `transaction_count` cover every summarized transaction,
        also when `top_n` trims the groups, so "everything else" stays computable.
        """
        start, end = _date_range(request)
        if request.HasField("top_n") and request.top_n <= 0:
            raise invalid(f"top_n must be positive when set, got {request.top_n}")
        transactions = _in_range(self._oldest_first, start, end)
        which = request.WhichOneof("filter")
        if which == "vendor_id":
            self._require_vendor(request.vendor_id, "vendor_id")
            transactions = [t for t in transactions if t.vendor_id == request.vendor_id]
        elif which == "category":
            transactions = [t for t in transactions if t.category == request.category]
        if not request.include_income:
            transactions = [t for t in transactions if t.amount_minor < 0]

        groups: dict[str, ledger_pb2.SummaryGroup] = {}
        for txn in transactions:
            key, label = self._group_of(txn, request.group_by)
            group = groups.get(key)
            if group is None:
                group = groups[key] = ledger_pb2.SummaryGroup(key=key, label=label)
            group.total_minor += txn.amount_minor
            group.count += 1
        ordered = sorted(groups.values(), key=lambda g: (-abs(g.total_minor), g.key))
        if request.HasField("top_n"):
            ordered = ordered[: request.top_n]
        return ledger_pb2.SummarizeTransactionsResponse(
            groups=ordered,
            total_minor=sum(t.amount_minor for t in transactions),
            currency=self.currency,
            transaction_count=len(transactions),
        )

    def _group_of(self, txn: ledger_pb2.Transaction, dimension: int) -> tuple[str, str]:
        if dimension == ledger_pb2.DIMENSION_VENDOR:
            vendor = self._vendors.get(txn.vendor_id)
            return txn.vendor_id, vendor.name if vendor is not None else txn.vendor_id
        if dimension == ledger_pb2.DIMENSION_MONTH:
            date = txn.booked_date
            return f"{date.year:04d}-{date.month:02d}", f"{month_name(date.month)} {date.year}"
        return ledger_pb2.Category.Name(txn.category), category_label(txn.category)

    @statuses
    async def GetVendor(
        self, request: ledger_pb2.GetVendorRequest, context: _Ctx
    ) -> ledger_pb2.Vendor:
        """One vendor by id."""
        if not request.vendor_id:
            raise invalid("vendor_id is required")
        vendor = ledger_pb2.Vendor()
        vendor.CopyFrom(self._require_vendor(request.vendor_id, "vendor_id"))
        return vendor

    @statuses
    async def SearchVendors(
        self, request: ledger_pb2.SearchVendorsRequest, context: _Ctx
    ) -> ledger_pb2.SearchVendorsResponse:
        """Vendors whose name or website contains the query, best match first."""
        query = request.query.strip().casefold()
        if not query:
            raise invalid("query is required")
        if request.limit < 0 or request.limit > MAX_SEARCH_LIMIT:
            raise invalid(f"limit must be between 0 and {MAX_SEARCH_LIMIT}, got {request.limit}")
        ranked: list[tuple[int, str, ledger_pb2.Vendor]] = []
        for vendor in self._vendors.values():
            name = vendor.name.casefold()
            if name.startswith(query):
                rank = 0
            elif any(word.startswith(query) for word in name.split()):
                rank = 1
            elif query in name:
                rank = 2
            elif query in vendor.website.casefold():
                rank = 3
            else:
                continue
            ranked.append((rank, name, vendor))
        ranked.sort(key=lambda item: (item[0], item[1]))
        limit = request.limit or DEFAULT_SEARCH_LIMIT
        return ledger_pb2.SearchVendorsResponse(vendors=[v for _, _, v in ranked[:limit]])

    @statuses
    async def UpdateVendor(
        self, request: ledger_pb2.UpdateVendorRequest, context: _Ctx
    ) -> ledger_pb2.Vendor:
        """Apply `update_mask` (proto field names, e.g. "address.city") to one vendor."""
        if not request.HasField("vendor") or not request.vendor.id:
            raise invalid("vendor.id is required: it names the vendor to change")
        paths = list(request.update_mask.paths) or list(WRITABLE_VENDOR_FIELDS)
        for path in paths:
            _check_vendor_path(path)
        async with self._lock:
            updated = ledger_pb2.Vendor()
            updated.CopyFrom(self._require_vendor(request.vendor.id, "vendor.id"))
            field_mask_pb2.FieldMask(paths=paths).MergeMessage(
                request.vendor, updated, replace_message_field=True, replace_repeated_field=True
            )
            if not updated.name:
                raise invalid("vendor.name must not be empty")
            updated.update_time.GetCurrentTime()
            self._vendors[updated.id] = updated
        result = ledger_pb2.Vendor()
        result.CopyFrom(updated)
        return result

    async def ExportTransactions(
        self, request: ledger_pb2.ExportTransactionsRequest, context: _Ctx
    ) -> AsyncIterator[ledger_pb2.Transaction]:
        """Every transaction in the date range, oldest first."""
        try:
            start, end = _date_range(request)
        except StatusError as error:
            await abort(context, error)
        for txn in _in_range(self._oldest_first, start, end):
            yield txn


def _check_vendor_path(path: str) -> None:
    """Reject mask paths that are unknown, read-only or reach inside a repeated field."""
    top = path.split(".", 1)[0]
    if top in ("id", "update_time"):
        raise invalid(f"update_mask path {path!r} is not writable")
    if top in WRITABLE_VENDOR_FIELDS and field_mask_pb2.FieldMask(
        paths=[path]
    ).IsValidForDescriptor(_VENDOR_DESCRIPTOR):
        return
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in path)
    hint = f"; did you mean {snake!r}?" if snake != path else ""
    raise invalid(
        f"update_mask path {path!r} is not a writable Vendor field; paths use proto field "
        f"names such as 'phone' or 'address.city'{hint}"
    )


class LedgerServer(RunningServer[LedgerServicer]):
    """A started ledger server; `servicer` holds its (mutable) data."""


async def serve(
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    reflection: Reflection = "both",
    latency_s: float = 0.0,
    require_token: str | None = None,
    data: LedgerData | None = None,
) -> LedgerServer:
    """Start the ledger service with health checking and reflection; returns once serving."""
    return await start_server(
        LedgerServer,
        LedgerServicer(data if data is not None else generate()),
        service_name=SERVICE_NAME,
        add_to_server=ledger_pb2_grpc.add_LedgerServiceServicer_to_server,
        port=port,
        host=host,
        reflection=reflection,
        latency_s=latency_s,
        require_token=require_token,
    )
