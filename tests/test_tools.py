"""Tools: naming rules, metadata, and invoking real methods over loopback."""

from __future__ import annotations

import random

import grpc
import jsonschema
import pytest

from examples.calculator.server import CalculatorServer
from examples.ledger.server import LedgerServer
from examples.ledger.server import serve as serve_ledger
from toolgen import (
    NAME_PATTERN,
    AllowlistError,
    ArgumentsError,
    Catalog,
    ToolCallError,
    discover,
)
from toolgen._naming import assign_names

LEDGER = "examples.ledger.v1.LedgerService"
CALCULATOR = "examples.calculator.v1.CalculatorService"


# --- naming ---------------------------------------------------------------------------------


def test_names_are_readable_and_valid() -> None:
    names = assign_names([f"{LEDGER}/ListTransactions", f"{CALCULATOR}/Evaluate"])
    assert names == {
        f"{LEDGER}/ListTransactions": "LedgerService_ListTransactions",
        f"{CALCULATOR}/Evaluate": "CalculatorService_Evaluate",
    }


def test_collisions_take_package_parts_until_unique() -> None:
    methods = [
        "acme.billing.v1.Accounts/Get",
        "acme.crm.v1.Accounts/Get",
        "acme.crm.v2.Accounts/Get",
        "other.Accounts/List",
    ]
    names = assign_names(methods)
    assert names == {
        "acme.billing.v1.Accounts/Get": "billing_v1_Accounts_Get",
        "acme.crm.v1.Accounts/Get": "crm_v1_Accounts_Get",
        "acme.crm.v2.Accounts/Get": "v2_Accounts_Get",
        "other.Accounts/List": "Accounts_List",
    }


def test_names_are_stable_whatever_the_order() -> None:
    methods = [f"pkg{i % 3}.v{i % 2}.Svc/Method{i % 4}" for i in range(24)]
    expected = assign_names(methods)
    for seed in range(5):
        shuffled = methods[:]
        random.Random(seed).shuffle(shuffled)
        assert assign_names(shuffled) == expected


def test_names_fit_the_pattern_and_stay_unique() -> None:
    long_method = "a.b.VeryLongServiceNameThatGoesOnAndOn/" + "AndAMethodNameThatIsLonger" * 2
    weird = "x.y.Servi$ce/Méthod"
    same = {"t1|p.S/M": "p.S/M", "t2|p.S/M": "p.S/M"}  # one method on two targets
    names = assign_names({long_method: long_method, weird: weird, **same})
    assert all(NAME_PATTERN.match(n) for n in names.values()), names
    assert len(set(names.values())) == len(names)
    assert names[long_method].startswith("VeryLongServiceName")
    assert len(names[long_method]) <= 64


# --- discovery and metadata -----------------------------------------------------------------


async def test_ledger_tools_metadata(ledger_server: LedgerServer) -> None:
    async with await discover(ledger_server.address, [f"{LEDGER}/*"]) as catalog:
        assert [t.name for t in catalog] == sorted(t.name for t in catalog)
        assert {t.name: t.side_effects for t in catalog} == {
            "LedgerService_ExportTransactions": "none",  # server streaming (issue 27)
            "LedgerService_GetVendor": "none",
            "LedgerService_ListTransactions": "none",
            "LedgerService_SearchVendors": "none",
            "LedgerService_SummarizeTransactions": "none",
            "LedgerService_UpdateVendor": "idempotent",
        }
        tool = catalog.by_method(f"{LEDGER}/GetVendor")
        assert tool is not None
        assert tool.method == f"/{LEDGER}/GetVendor"
        assert tool.target == ledger_server.address
        assert tool.input_descriptor.full_name == "examples.ledger.v1.GetVendorRequest"
        assert tool.output_descriptor.full_name == "examples.ledger.v1.Vendor"
        assert tool.input_schema["required"] == ["vendorId"]
        assert tool.openai_tool()["function"]["strict"] is True
        assert tool.openai_parameters["additionalProperties"] is False
        # A server-streaming method is a tool too (tests/test_streaming_tools.py); nothing skipped.
        assert catalog["LedgerService_ExportTransactions"].kind == "server_streaming"
        assert catalog.skipped == ()


async def test_deny_wins_and_is_reported(ledger_server: LedgerServer) -> None:
    async with await discover(
        ledger_server.address, [f"{LEDGER}/*"], deny=["*/UpdateVendor"]
    ) as catalog:
        assert "LedgerService_UpdateVendor" not in catalog
        assert any("denied by" in s.reason for s in catalog.skipped)


async def test_allowlist_matching_nothing_names_closest(ledger_server: LedgerServer) -> None:
    with pytest.raises(AllowlistError) as caught:
        await discover(ledger_server.address, ["examples.ledger.v1.LedgerServic/GetVendor"])
    assert f"{LEDGER}/GetVendor" in str(caught.value)


async def test_unknown_tool_name_suggests(ledger_server: LedgerServer) -> None:
    async with await discover(ledger_server.address, [f"{LEDGER}/*"]) as catalog:
        with pytest.raises(KeyError, match="LedgerService_GetVendor"):
            catalog["LedgerService_GetVendr"]


# --- invoke ---------------------------------------------------------------------------------


async def test_invoke_returns_real_data(ledger_server: LedgerServer) -> None:
    async with await discover(ledger_server.address, [f"{LEDGER}/*"]) as catalog:
        tool = catalog["LedgerService_ListTransactions"]
        result = await tool.invoke(
            {"startDate": {"year": 2020, "month": 1, "day": 1}, "pageSize": 3}
        )
        assert len(result["transactions"]) == 3
        assert result["transactions"][0]["id"].startswith("txn_")
        assert result["nextPageToken"]
        jsonschema.validate(result, tool.output_schema)


async def test_invoke_strict_instance(calculator_server: CalculatorServer) -> None:
    async with await discover(calculator_server.address, [CALCULATOR]) as catalog:
        tool = catalog["CalculatorService_Evaluate"]
        strict: dict[str, object] = dict.fromkeys(tool.openai_parameters["properties"])
        strict["expression"] = "3 4 + 5 *"
        result = await tool.invoke(strict, strict=True)
        assert result["value"] == 35


async def test_invalid_arguments_list_every_pointer(ledger_server: LedgerServer) -> None:
    async with await discover(ledger_server.address, [f"{LEDGER}/*"]) as catalog:
        tool = catalog["LedgerService_ListTransactions"]
        with pytest.raises(ArgumentsError) as caught:
            await tool.invoke({"pageSize": "ten", "startDate": {"year": "soon"}, "colour": "red"})
        pointers = [v.pointer for v in caught.value.violations]
        assert "/pageSize" in pointers
        assert "/startDate/year" in pointers
        assert "" in pointers  # the unknown property, reported on the object
        assert ledger_server.calls == []  # nothing reached the server


async def test_not_found_becomes_tool_call_error(ledger_server: LedgerServer) -> None:
    async with await discover(ledger_server.address, [f"{LEDGER}/GetVendor"]) as catalog:
        with pytest.raises(ToolCallError) as caught:
            await catalog["LedgerService_GetVendor"].invoke({"vendorId": "ven_nope"})
        assert caught.value.code == grpc.StatusCode.NOT_FOUND
        assert "ven_nope" in caught.value.details


async def test_invalid_argument_from_server(calculator_server: CalculatorServer) -> None:
    async with await discover(calculator_server.address, [CALCULATOR]) as catalog:
        with pytest.raises(ToolCallError) as caught:
            await catalog["CalculatorService_Evaluate"].invoke({"expression": "3 +"})
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.error_details() == []


async def test_metadata_is_forwarded(ledger_server: LedgerServer) -> None:
    async with await discover(ledger_server.address, [f"{LEDGER}/GetVendor"]) as catalog:
        await catalog["LedgerService_GetVendor"].invoke(
            {"vendorId": "ven_007"}, metadata=[("authorization", "Bearer t0k"), ("x-run", "7")]
        )
    assert ledger_server.seen_metadata[-1]["authorization"] == "Bearer t0k"
    assert ledger_server.seen_metadata[-1]["x-run"] == "7"


async def test_timeout_becomes_deadline_exceeded() -> None:
    # The server holds every call far longer than the deadline allows.
    server = await serve_ledger(reflection="v1", latency_s=30.0)
    try:
        async with await discover(server.address, [f"{LEDGER}/GetVendor"]) as catalog:
            with pytest.raises(ToolCallError) as caught:
                await catalog["LedgerService_GetVendor"].invoke(
                    {"vendorId": "ven_007"}, timeout=0.05
                )
            assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        await server.stop(None)


async def test_merged_catalog_spans_targets(
    ledger_server: LedgerServer, calculator_server: CalculatorServer
) -> None:
    ledger = await discover(ledger_server.address, [f"{LEDGER}/GetVendor"])
    calculator = await discover(calculator_server.address, [CALCULATOR])
    async with Catalog.merge([ledger, calculator]) as catalog:
        assert [t.name for t in catalog] == [
            "CalculatorService_Evaluate",
            "LedgerService_GetVendor",
        ]
        result = await catalog["CalculatorService_Evaluate"].invoke({"expression": "2 3 ^"})
        assert result["value"] == 8


def test_rich_error_details_are_decoded() -> None:
    from google.protobuf import any_pb2
    from google.rpc import error_details_pb2, status_pb2

    from toolgen._tool import _rich_status

    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason="QUOTA_EXCEEDED", domain="ledger"))
    status = status_pb2.Status(code=8, message="slow down", details=[detail])
    error = grpc.aio.AioRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString())),
        "slow down",
        None,
    )
    rich = _rich_status(error)
    assert rich == status
    failure = ToolCallError("/p.S/M", grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", rich)
    assert failure.error_details() == [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "QUOTA_EXCEEDED",
            "domain": "ledger",
        }
    ]
