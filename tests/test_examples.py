"""The example upstream services, called for real through their stubs over grpc.aio."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2, field_mask_pb2
from google.type import date_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc as v1alpha_pb2_grpc

from examples.calculator.rpn import RpnError, evaluate
from examples.calculator.server import CalculatorServer
from examples.calculator.v1 import calculator_pb2, calculator_pb2_grpc
from examples.ledger.data import generate
from examples.ledger.server import LedgerServer
from examples.ledger.server import serve as serve_ledger
from examples.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from toolgen.protos import reflection_v1_pb2 as v1_pb2
from toolgen.protos import reflection_v1_pb2_grpc as v1_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
LEDGER = "examples.ledger.v1.LedgerService"
CALCULATOR = "examples.calculator.v1.CalculatorService"
# Only a guard against a hung child process; nothing here measures time.
PROCESS_GUARD_S = 60


@pytest.fixture
async def ledger(ledger_server: LedgerServer) -> AsyncIterator[ledger_pb2_grpc.LedgerServiceStub]:
    async with grpc.aio.insecure_channel(ledger_server.address) as channel:
        yield ledger_pb2_grpc.LedgerServiceStub(channel)


@pytest.fixture
async def calculator(
    calculator_server: CalculatorServer,
) -> AsyncIterator[calculator_pb2_grpc.CalculatorServiceStub]:
    async with grpc.aio.insecure_channel(calculator_server.address) as channel:
        yield calculator_pb2_grpc.CalculatorServiceStub(channel)


def day(year: int, month: int, d: int) -> date_pb2.Date:
    return date_pb2.Date(year=year, month=month, day=d)


def key(date: date_pb2.Date) -> tuple[int, int, int]:
    return (date.year, date.month, date.day)


# --- data ---------------------------------------------------------------------------------


def test_data_is_deterministic_and_realistic() -> None:
    data = generate()
    assert len(data.vendors) >= 60
    assert len(data.transactions) >= 2000
    assert data.transactions == generate().transactions
    assert generate(seed=8).transactions != data.transactions
    assert {t.booked_date.year for t in data.transactions} == {2025}
    assert {v.address.country_code for v in data.vendors.values()} >= {"DE", "NL", "FR"}
    assert any(t.amount_minor > 0 for t in data.transactions)
    assert any(t.labels for t in data.transactions)
    assert all(t.vendor_id in data.vendors for t in data.transactions)
    defaults = sum(
        t.category == data.vendors[t.vendor_id].default_category for t in data.transactions
    )
    assert defaults / len(data.transactions) > 0.9


# --- ledger ---------------------------------------------------------------------------------


async def test_list_filters_by_date_vendor_and_category(
    ledger: ledger_pb2_grpc.LedgerServiceStub,
) -> None:
    response = await ledger.ListTransactions(
        ledger_pb2.ListTransactionsRequest(
            start_date=day(2025, 3, 1),
            end_date=day(2025, 3, 31),
            category=ledger_pb2.CATEGORY_MEALS,
            page_size=100,
        )
    )
    assert response.total_size > 0
    for txn in response.transactions:
        assert (2025, 3, 1) <= key(txn.booked_date) <= (2025, 3, 31)
        assert txn.category == ledger_pb2.CATEGORY_MEALS
    dates = [key(t.booked_date) for t in response.transactions]
    assert dates == sorted(dates, reverse=True)  # newest first

    by_vendor = await ledger.ListTransactions(
        ledger_pb2.ListTransactionsRequest(vendor_id="ven_001", page_size=100)
    )
    assert by_vendor.total_size == 12  # monthly rent
    assert {t.vendor_id for t in by_vendor.transactions} == {"ven_001"}


async def test_list_pages_through_everything(ledger: ledger_pb2_grpc.LedgerServiceStub) -> None:
    request = ledger_pb2.ListTransactionsRequest(
        start_date=day(2025, 1, 1), end_date=day(2025, 6, 30), page_size=100
    )
    seen: list[str] = []
    total = -1
    while True:
        page = await ledger.ListTransactions(request)
        total = page.total_size
        seen.extend(t.id for t in page.transactions)
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    assert len(seen) == total == len(set(seen))
    assert total > 100


async def test_list_default_page_size_and_bad_arguments(
    ledger: ledger_pb2_grpc.LedgerServiceStub,
) -> None:
    first = await ledger.ListTransactions(ledger_pb2.ListTransactionsRequest())
    assert len(first.transactions) == 20
    assert first.total_size == len(generate().transactions)

    cases = [
        (ledger_pb2.ListTransactionsRequest(page_size=101), "page_size"),
        (ledger_pb2.ListTransactionsRequest(page_token="not-a-token"), "page_token"),
        (
            ledger_pb2.ListTransactionsRequest(
                page_token=first.next_page_token, category=ledger_pb2.CATEGORY_RENT
            ),
            "page_token",
        ),
        (ledger_pb2.ListTransactionsRequest(start_date=day(2025, 2, 30)), "start_date"),
        (
            ledger_pb2.ListTransactionsRequest(
                start_date=day(2025, 5, 1), end_date=day(2025, 4, 1)
            ),
            "start_date",
        ),
    ]
    for request, field_name in cases:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await ledger.ListTransactions(request)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_name in (raised.value.details() or "")

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.ListTransactions(ledger_pb2.ListTransactionsRequest(vendor_id="ven_999"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "ven_999" in (raised.value.details() or "")


@pytest.mark.parametrize(
    "group_by",
    [ledger_pb2.DIMENSION_CATEGORY, ledger_pb2.DIMENSION_VENDOR, ledger_pb2.DIMENSION_MONTH],
)
async def test_summaries_add_up(
    ledger: ledger_pb2_grpc.LedgerServiceStub, group_by: ledger_pb2.Dimension
) -> None:
    summary = await ledger.SummarizeTransactions(
        ledger_pb2.SummarizeTransactionsRequest(group_by=group_by)
    )
    assert summary.currency == "EUR"
    assert sum(g.total_minor for g in summary.groups) == summary.total_minor
    assert sum(g.count for g in summary.groups) == summary.transaction_count
    assert summary.total_minor < 0  # spending only by default
    magnitudes = [abs(g.total_minor) for g in summary.groups]
    assert magnitudes == sorted(magnitudes, reverse=True)
    if group_by == ledger_pb2.DIMENSION_MONTH:
        assert [g.key for g in summary.groups if g.key == "2025-03"] == ["2025-03"]
        assert {g.label for g in summary.groups} >= {"March 2025"}
    if group_by == ledger_pb2.DIMENSION_VENDOR:
        assert summary.groups[0].key.startswith("ven_")
        assert summary.groups[0].label


async def test_summary_filter_top_n_and_income(ledger: ledger_pb2_grpc.LedgerServiceStub) -> None:
    everything = await ledger.SummarizeTransactions(
        ledger_pb2.SummarizeTransactionsRequest(
            group_by=ledger_pb2.DIMENSION_VENDOR, include_income=True
        )
    )
    spending = await ledger.SummarizeTransactions(
        ledger_pb2.SummarizeTransactionsRequest(group_by=ledger_pb2.DIMENSION_VENDOR)
    )
    assert everything.transaction_count > spending.transaction_count
    assert any(g.total_minor > 0 for g in everything.groups)

    top = await ledger.SummarizeTransactions(
        ledger_pb2.SummarizeTransactionsRequest(group_by=ledger_pb2.DIMENSION_VENDOR, top_n=3)
    )
    assert list(top.groups) == list(spending.groups[:3])
    assert top.total_minor == spending.total_minor  # totals cover all groups

    travel = await ledger.SummarizeTransactions(
        ledger_pb2.SummarizeTransactionsRequest(
            group_by=ledger_pb2.DIMENSION_MONTH, category=ledger_pb2.CATEGORY_TRAVEL
        )
    )
    category_summary = await ledger.SummarizeTransactions(ledger_pb2.SummarizeTransactionsRequest())
    by_category = {g.key: g for g in category_summary.groups}
    assert travel.total_minor == by_category["CATEGORY_TRAVEL"].total_minor
    assert by_category["CATEGORY_TRAVEL"].label == "Travel"

    one_vendor = await ledger.SummarizeTransactions(
        ledger_pb2.SummarizeTransactionsRequest(vendor_id="ven_001")
    )
    assert [g.key for g in one_vendor.groups] == ["CATEGORY_RENT"]
    assert one_vendor.transaction_count == 12

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.SummarizeTransactions(ledger_pb2.SummarizeTransactionsRequest(top_n=0))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "top_n" in (raised.value.details() or "")


async def test_get_vendor(ledger: ledger_pb2_grpc.LedgerServiceStub) -> None:
    vendor = await ledger.GetVendor(ledger_pb2.GetVendorRequest(vendor_id="ven_001"))
    assert vendor.name and vendor.website.startswith("https://") and vendor.phone.startswith("+")
    assert vendor.address.country_code == "DE"
    assert vendor.hours
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.GetVendor(ledger_pb2.GetVendorRequest(vendor_id="ven_404"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "ven_404" in (raised.value.details() or "")


async def test_search_vendors(ledger: ledger_pb2_grpc.LedgerServiceStub) -> None:
    found = await ledger.SearchVendors(ledger_pb2.SearchVendorsRequest(query="NORTHWIND"))
    assert [v.name for v in found.vendors] == ["Northwind Coffee"]
    by_site = await ledger.SearchVendors(ledger_pb2.SearchVendorsRequest(query="hetzner.com"))
    assert [v.name for v in by_site.vendors] == ["Hetzner Online GmbH"]
    limited = await ledger.SearchVendors(ledger_pb2.SearchVendorsRequest(query="e", limit=5))
    assert len(limited.vendors) == 5
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.SearchVendors(ledger_pb2.SearchVendorsRequest(query="  "))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "query" in (raised.value.details() or "")


async def test_update_vendor_applies_the_mask(ledger: ledger_pb2_grpc.LedgerServiceStub) -> None:
    before = await ledger.GetVendor(ledger_pb2.GetVendorRequest(vendor_id="ven_033"))
    updated = await ledger.UpdateVendor(
        ledger_pb2.UpdateVendorRequest(
            vendor=ledger_pb2.Vendor(
                id="ven_033",
                name="ignored, not in the mask",
                phone="+31 20 555 0100",
                address=ledger_pb2.Address(city="Haarlem", street="ignored"),
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["phone", "address.city"]),
        )
    )
    assert updated.phone == "+31 20 555 0100"
    assert updated.address.city == "Haarlem"
    assert updated.name == before.name
    assert updated.address.street == before.address.street
    assert updated.update_time.ToDatetime() > before.update_time.ToDatetime()
    again = await ledger.GetVendor(ledger_pb2.GetVendorRequest(vendor_id="ven_033"))
    assert again == updated


async def test_update_vendor_errors(ledger: ledger_pb2_grpc.LedgerServiceStub) -> None:
    cases = [
        (ledger_pb2.UpdateVendorRequest(), grpc.StatusCode.INVALID_ARGUMENT, "vendor.id"),
        (
            ledger_pb2.UpdateVendorRequest(
                vendor=ledger_pb2.Vendor(id="ven_001"),
                update_mask=field_mask_pb2.FieldMask(paths=["address.postalCode"]),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "address.postal_code",
        ),
        (
            ledger_pb2.UpdateVendorRequest(
                vendor=ledger_pb2.Vendor(id="ven_001"),
                update_mask=field_mask_pb2.FieldMask(paths=["id"]),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "'id'",
        ),
        (
            ledger_pb2.UpdateVendorRequest(
                vendor=ledger_pb2.Vendor(id="ven_404", phone="+1"),
                update_mask=field_mask_pb2.FieldMask(paths=["phone"]),
            ),
            grpc.StatusCode.NOT_FOUND,
            "ven_404",
        ),
        (
            # An empty mask replaces every writable field, so a missing name is refused.
            ledger_pb2.UpdateVendorRequest(vendor=ledger_pb2.Vendor(id="ven_001")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "vendor.name",
        ),
    ]
    for request, code, needle in cases:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await ledger.UpdateVendor(request)
        assert raised.value.code() == code
        assert needle in (raised.value.details() or "")


async def test_concurrent_updates_keep_one_consistent_vendor(
    ledger: ledger_pb2_grpc.LedgerServiceStub,
) -> None:
    async def update(n: int) -> ledger_pb2.Vendor:
        return await ledger.UpdateVendor(
            ledger_pb2.UpdateVendorRequest(
                vendor=ledger_pb2.Vendor(
                    id="ven_002", phone=f"+49 40 {n}", address=ledger_pb2.Address(city=f"c{n}")
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["phone", "address.city"]),
            )
        )

    await asyncio.gather(*(update(n) for n in range(20)))
    final = await ledger.GetVendor(ledger_pb2.GetVendorRequest(vendor_id="ven_002"))
    assert final.phone.removeprefix("+49 40 ") == final.address.city.removeprefix("c")


async def test_export_streams_oldest_first(ledger: ledger_pb2_grpc.LedgerServiceStub) -> None:
    streamed = [
        txn
        async for txn in ledger.ExportTransactions(
            ledger_pb2.ExportTransactionsRequest(start_date=day(2025, 12, 1))
        )
    ]
    expected = [t for t in generate().transactions if key(t.booked_date) >= (2025, 12, 1)]
    assert [t.id for t in streamed] == [t.id for t in expected]
    dates = [key(t.booked_date) for t in streamed]
    assert dates == sorted(dates)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in ledger.ExportTransactions(
            ledger_pb2.ExportTransactionsRequest(end_date=day(2025, 13, 1))
        ):
            pass
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "end_date" in (raised.value.details() or "")


async def test_server_records_calls_and_metadata(
    ledger_server: LedgerServer, ledger: ledger_pb2_grpc.LedgerServiceStub
) -> None:
    await ledger.GetVendor(
        ledger_pb2.GetVendorRequest(vendor_id="ven_001"),
        metadata=(("authorization", "Bearer abc"), ("x-trace-bin", b"\x00\x01")),
    )
    assert ledger_server.calls == ["GetVendor"]
    assert ledger_server.seen_metadata[0]["authorization"] == "Bearer abc"
    assert ledger_server.seen_metadata[0]["x-trace-bin"] == "AAE="


async def test_require_token() -> None:
    server = await serve_ledger(reflection="v1", require_token="s3cret")
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = ledger_pb2_grpc.LedgerServiceStub(channel)
            request = ledger_pb2.GetVendorRequest(vendor_id="ven_001")
            for metadata in [(), (("authorization", "Bearer wrong"),)]:
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await stub.GetVendor(request, metadata=metadata)
                assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                async for _ in stub.ExportTransactions(ledger_pb2.ExportTransactionsRequest()):
                    pass
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
            vendor = await stub.GetVendor(request, metadata=(("authorization", "Bearer s3cret"),))
            assert vendor.id == "ven_001"
            # Health and reflection stay open without a token.
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest()
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            assert LEDGER in await list_services_v1(channel)
    finally:
        await server.stop(None)


async def test_latency_is_applied_without_breaking_calls() -> None:
    server = await serve_ledger(reflection="none", latency_s=0.01)
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = ledger_pb2_grpc.LedgerServiceStub(channel)
            vendor = await stub.GetVendor(ledger_pb2.GetVendorRequest(vendor_id="ven_001"))
            assert vendor.id == "ven_001"
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await list_services_v1(channel)
            assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop(None)


async def test_health_serving(
    ledger_server: LedgerServer, calculator_server: CalculatorServer
) -> None:
    for address, service in [
        (ledger_server.address, LEDGER),
        (calculator_server.address, CALCULATOR),
    ]:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for name in ("", service):
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=name))
                assert reply.status == health_pb2.HealthCheckResponse.SERVING


# --- calculator ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "precision", "value", "formatted", "steps"),
    [
        ("3 4 + 5 *", None, 35.0, "35.000000", ["3 + 4 = 7", "7 * 5 = 35"]),
        ("2 10 ^", 0, 1024.0, "1024", ["2 ^ 10 = 1024"]),
        ("16 sqrt neg", 2, -4.0, "-4.00", ["sqrt 16 = 4", "neg 4 = -4"]),
        ("1e3 -3.5 /", 3, 1000 / -3.5, "-285.714", ["1000 / -3.5 = -285.714285714286"]),
        ("10 3 -", None, 7.0, "7.000000", ["10 - 3 = 7"]),
        ("12", 1, 12.0, "12.0", []),
    ],
)
async def test_evaluate(
    calculator: calculator_pb2_grpc.CalculatorServiceStub,
    expression: str,
    precision: int | None,
    value: float,
    formatted: str,
    steps: Sequence[str],
) -> None:
    request = calculator_pb2.EvaluateRequest(expression=expression)
    if precision is not None:
        request.precision = precision
    reply = await calculator.Evaluate(request)
    assert reply.value == pytest.approx(value)
    assert reply.formatted == formatted
    assert list(reply.steps) == list(steps)


@pytest.mark.parametrize(
    ("expression", "needle"),
    [
        ("", "empty"),
        ("3 foo +", "unknown token 'foo' at position 2"),
        ("3 +", "'+' at position 2 needs 2 operands, found 1"),
        ("3 4", "2 values left on the stack"),
        ("1 0 /", "division by zero at position 3"),
        ("-4 sqrt", "sqrt of negative number -4"),
        ("-8 0.5 ^", "no real finite value"),
        ("1e308 10 *", "overflows"),
        ("nan", "unknown token 'nan'"),
    ],
)
async def test_evaluate_errors(
    calculator: calculator_pb2_grpc.CalculatorServiceStub, expression: str, needle: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await calculator.Evaluate(calculator_pb2.EvaluateRequest(expression=expression))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in (raised.value.details() or "")
    with pytest.raises(RpnError) as local:
        evaluate(expression)
    assert needle in str(local.value)


async def test_evaluate_rejects_bad_precision(
    calculator: calculator_pb2_grpc.CalculatorServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await calculator.Evaluate(calculator_pb2.EvaluateRequest(expression="1", precision=-1))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "precision" in (raised.value.details() or "")


# --- reflection ------------------------------------------------------------------------------


async def list_services_v1(channel: grpc.aio.Channel) -> list[str]:
    stub = v1_pb2_grpc.ServerReflectionStub(channel)
    request = v1_pb2.ServerReflectionRequest(list_services="")
    async for response in stub.ServerReflectionInfo(iter([request])):
        return [s.name for s in response.list_services_response.service]
    raise AssertionError("no reflection response")


async def list_services_v1alpha(channel: grpc.aio.Channel) -> list[str]:
    stub = v1alpha_pb2_grpc.ServerReflectionStub(channel)
    request = v1alpha_pb2.ServerReflectionRequest(list_services="")
    async for response in stub.ServerReflectionInfo(iter([request])):
        return [s.name for s in response.list_services_response.service]
    raise AssertionError("no reflection response")


async def test_v1_only_server(ledger_server: LedgerServer) -> None:
    async with grpc.aio.insecure_channel(ledger_server.address) as channel:
        services = await list_services_v1(channel)
        assert set(services) == {
            LEDGER,
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
        }
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await list_services_v1alpha(channel)
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_v1alpha_only_server(calculator_server: CalculatorServer) -> None:
    async with grpc.aio.insecure_channel(calculator_server.address) as channel:
        services = await list_services_v1alpha(channel)
        assert CALCULATOR in services
        assert "grpc.reflection.v1alpha.ServerReflection" in services
        assert "grpc.reflection.v1.ServerReflection" not in services
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await list_services_v1(channel)
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_both_versions(ledger_server_both: LedgerServer) -> None:
    async with grpc.aio.insecure_channel(ledger_server_both.address) as channel:
        v1 = await list_services_v1(channel)
        v1alpha = await list_services_v1alpha(channel)
        assert v1 == v1alpha
        assert {
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        } <= set(v1)


async def test_v1_file_containing_symbol_and_errors(ledger_server: LedgerServer) -> None:
    async with grpc.aio.insecure_channel(ledger_server.address) as channel:
        stub = v1_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            v1_pb2.ServerReflectionRequest(file_containing_symbol=LEDGER),
            v1_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Symbol"),
            v1_pb2.ServerReflectionRequest(file_by_filename="google/type/date.proto"),
        ]
        responses = [r async for r in stub.ServerReflectionInfo(iter(requests))]

    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in responses[0].file_descriptor_response.file_descriptor_proto
    ]
    names = {f.name for f in files}
    ledger_file = next(f for f in files if f.package == "examples.ledger.v1")
    assert "LedgerService" in [s.name for s in ledger_file.service]
    # Every dependency comes along, transitively.
    assert set(ledger_file.dependency) <= names
    assert {"google/type/date.proto", "google/protobuf/field_mask.proto"} <= names
    assert responses[0].original_request.file_containing_symbol == LEDGER

    assert responses[1].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert responses[1].original_request.file_containing_symbol == "no.such.Symbol"
    assert len(responses[2].file_descriptor_response.file_descriptor_proto) == 1


# --- entry points ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "reflection", "service"),
    [("ledger", "v1", LEDGER), ("calculator", "v1alpha", CALCULATOR)],
)
async def test_main_prints_listening_line_and_exits_on_sigterm(
    module: str, reflection: str, service: str
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        f"examples.{module}",
        "--port",
        "0",
        "--reflection",
        reflection,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), PROCESS_GUARD_S)).decode()
        prefix = f"{module} listening on 127.0.0.1:"
        assert line.startswith(prefix), line
        port = int(line.removeprefix(prefix))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            lister = list_services_v1 if reflection == "v1" else list_services_v1alpha
            assert service in await lister(channel)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), PROCESS_GUARD_S)
        assert process.returncode == 0, stderr.decode()
        assert stdout == b""  # exactly one line
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_main_help_explains_flags() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "examples.ledger", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=PROCESS_GUARD_S,
    ).stdout
    for flag in ("--port", "--host", "--reflection", "--latency-ms", "--require-token"):
        assert flag in out
