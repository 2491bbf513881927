"""``dispatch_small`` / ``dispatch_large``: one tool call through toolgen vs the generated stub.

The ledger runs in its own process so the bench process holds only the two
clients being compared; both call the same server over loopback, interleaved.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import json_format

import toolgen
from bench._common import Result, interleaved, load, median
from bench._procs import child
from examples.ledger.v1 import ledger_pb2, ledger_pb2_grpc

#: About 20 KB of proto3 JSON from the example ledger (checked and reported per run).
LARGE_PAGE_SIZE = 70
GOAL = 1.2


async def run(quick: bool, only: Sequence[str] = ()) -> list[Result]:
    calls, rounds, warmup = (100, 5, 100) if quick else (400, 11, 300)
    async with child(["-m", "examples.ledger", "--port", "0", "--reflection", "both"]) as (
        _proc,
        address,
    ):
        catalog = await toolgen.discover(
            address,
            allow=[
                "examples.ledger.v1.LedgerService/GetVendor",
                "examples.ledger.v1.LedgerService/ListTransactions",
            ],
        )
        channel = grpc.aio.insecure_channel(
            address, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        )
        try:
            stub = ledger_pb2_grpc.LedgerServiceStub(channel)
            small = await _small(catalog, stub, calls, rounds, warmup, quick)
            large = await _large(catalog, stub, calls, rounds, warmup, quick)
        finally:
            await channel.close(None)
            await catalog.close()
    return [small, large]


async def _small(
    catalog: toolgen.Catalog,
    stub: ledger_pb2_grpc.LedgerServiceStub,
    calls: int,
    rounds: int,
    warmup: int,
    quick: bool,
) -> Result:
    tool = catalog["LedgerService_GetVendor"]
    arguments = {"vendorId": "ven_001"}

    async def subject() -> dict[str, Any]:
        return await tool.invoke(arguments)

    async def baseline() -> ledger_pb2.Vendor:
        return await stub.GetVendor(ledger_pb2.GetVendorRequest(vendor_id="ven_001"))

    ours, theirs = await interleaved(subject, baseline, calls=calls, rounds=rounds, warmup=warmup)
    return _result(
        "dispatch_small", ours, theirs, quick, json_bytes=len(json.dumps(await subject()))
    )


async def _large(
    catalog: toolgen.Catalog,
    stub: ledger_pb2_grpc.LedgerServiceStub,
    calls: int,
    rounds: int,
    warmup: int,
    quick: bool,
) -> Result:
    tool = catalog["LedgerService_ListTransactions"]
    arguments = {"pageSize": LARGE_PAGE_SIZE}

    async def subject() -> dict[str, Any]:
        return await tool.invoke(arguments)

    async def baseline() -> dict[str, Any]:
        response = await stub.ListTransactions(
            ledger_pb2.ListTransactionsRequest(page_size=LARGE_PAGE_SIZE)
        )
        # Same JSON as the tool returns (camelCase, zero values printed), so equal work.
        return json_format.MessageToDict(response, always_print_fields_with_no_presence=True)

    sample = await subject()
    assert sample == await baseline(), "tool and baseline must produce the same JSON"
    ours, theirs = await interleaved(
        subject, baseline, calls=max(20, calls // 4), rounds=rounds, warmup=max(20, warmup // 4)
    )
    result = _result("dispatch_large", ours, theirs, quick, json_bytes=len(json.dumps(sample)))
    result.details["fields"] = _count_fields(sample)
    return result


def _result(name: str, ours: list[float], theirs: list[float], quick: bool, **extra: Any) -> Result:
    value, base = median(ours), median(theirs)
    ratio = value / base if base else float("inf")
    return Result(
        name=name,
        value=value,
        unit="us/call",
        goal=f"<= {GOAL}",
        baseline=base,
        met=ratio <= GOAL,
        quick=quick,
        details={
            "rounds_us": [round(x, 1) for x in ours],
            "baseline_rounds_us": [round(x, 1) for x in theirs],
            "load": load(),
            **extra,
        },
    )


def _count_fields(node: Any) -> int:
    """Leaf values in a JSON document: how big the response is, in the issue's terms."""
    if isinstance(node, dict):
        return sum(_count_fields(v) for v in node.values())
    if isinstance(node, list):
        return sum(_count_fields(v) for v in node)
    return 1
