"""The toolgen CLI as users run it: a subprocess against real servers."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass

import pytest

from examples.calculator.server import CalculatorServer
from examples.ledger.server import LedgerServer
from examples.ledger.server import serve as serve_ledger
from tests.test_reflection import free_port

LEDGER = "examples.ledger.v1.LedgerService"


@dataclass
class Result:
    code: int
    out: str
    err: str


async def toolgen(*args: str, stdin: str | None = None) -> Result:
    """Run ``python -m toolgen`` without blocking the loop the servers run on."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "toolgen",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def one_line_error(result: Result) -> str:
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    return lines[0]


async def test_help_explains_commands_and_exit_codes() -> None:
    result = await toolgen("--help")
    assert result.code == 0
    for word in ("list", "preview", "call", "examples:", "exit status"):
        assert word in result.out
    preview = await toolgen("preview", "--help")
    for flag in ("--allow", "--deny", "--format", "--descriptor-set", "--tls", "--ca", "-H"):
        assert flag in preview.out


async def test_list_marks_tools(ledger_server: LedgerServer) -> None:
    result = await toolgen("list", ledger_server.address, "--allow", f"{LEDGER}/*")
    assert result.code == 0, result.err
    assert "(v1)" in result.out
    assert "+ GetVendor" in result.out
    assert "+ ExportTransactions  (server streaming)" in result.out  # a tool since issue 27


async def test_preview_jsonschema(ledger_server: LedgerServer) -> None:
    result = await toolgen(
        "preview", ledger_server.address, "--allow", f"{LEDGER}/*", "--format", "jsonschema"
    )
    assert result.code == 0, result.err
    tools = json.loads(result.out)
    assert {"name", "method", "description", "side_effects", "input_schema", "output_schema"} <= (
        tools[0].keys()
    )
    export = next(t for t in tools if t["name"] == "LedgerService_ExportTransactions")
    assert export["kind"] == "server_streaming"  # a tool since issue 27, with its bounds
    assert export["output_schema"]["required"] == ["messages", "truncated", "cutBy", "limits"]


async def test_preview_openai(calculator_server: CalculatorServer) -> None:
    result = await toolgen(
        "preview", calculator_server.address, "--allow", "*Calculator*", "--format", "openai"
    )
    assert result.code == 0, result.err
    (tool,) = json.loads(result.out)
    assert tool["type"] == "function"
    assert tool["function"]["name"] == "CalculatorService_Evaluate"
    assert tool["function"]["strict"] is True
    assert tool["function"]["parameters"]["type"] == "object"


async def test_preview_table_and_json_default_when_piped(ledger_server: LedgerServer) -> None:
    table = await toolgen(
        "preview", ledger_server.address, "--allow", f"{LEDGER}/*", "--format", "table"
    )
    assert table.code == 0, table.err
    assert "LedgerService_UpdateVendor" in table.out and "idempotent" in table.out
    piped = await toolgen("preview", ledger_server.address, "--allow", f"{LEDGER}/GetVendor")
    assert json.loads(piped.out)[0]["name"] == "LedgerService_GetVendor"


async def test_call_returns_real_data(ledger_server: LedgerServer) -> None:
    by_path = await toolgen(
        "call",
        ledger_server.address,
        f"{LEDGER}/GetVendor",
        "--data",
        '{"vendorId": "ven_007"}',
        "-H",
        "authorization: Bearer abc",
    )
    assert by_path.code == 0, by_path.err
    assert json.loads(by_path.out)["id"] == "ven_007"
    assert ledger_server.seen_metadata[-1]["authorization"] == "Bearer abc"
    by_name = await toolgen(
        "call",
        ledger_server.address,
        "LedgerService_SearchVendors",
        "--data",
        "-",
        stdin='{"query": "co"}',
    )
    assert by_name.code == 0, by_name.err
    assert json.loads(by_name.out)["vendors"]


async def test_unreachable_exits_3() -> None:
    address = f"127.0.0.1:{free_port()}"
    result = await toolgen("preview", address, "--allow", "*")
    assert result.code == 3
    line = one_line_error(result)
    assert line.startswith(f"toolgen: {address} is unreachable (connection refused)")


async def test_no_reflection_exits_3() -> None:
    server = await serve_ledger(reflection="none")
    try:
        result = await toolgen("list", server.address)
        assert result.code == 3
        assert "does not serve gRPC reflection" in one_line_error(result)
    finally:
        await server.stop(None)


async def test_allowlist_matching_nothing_exits_4(ledger_server: LedgerServer) -> None:
    result = await toolgen("preview", ledger_server.address, "--allow", f"{LEDGER}/GetVendr")
    assert result.code == 4
    assert f"{LEDGER}/GetVendor" in one_line_error(result)


@pytest.mark.parametrize("data", ['{"vendorId": 7}', "not json", "[1]"])
async def test_invalid_arguments_exit_4(ledger_server: LedgerServer, data: str) -> None:
    result = await toolgen("call", ledger_server.address, f"{LEDGER}/GetVendor", "--data", data)
    assert result.code == 4
    one_line_error(result)
    assert ledger_server.calls == []


async def test_upstream_failure_exits_5(ledger_server: LedgerServer) -> None:
    result = await toolgen(
        "call", ledger_server.address, f"{LEDGER}/GetVendor", "--data", '{"vendorId": "x"}'
    )
    assert result.code == 5
    assert "NOT_FOUND" in one_line_error(result)


async def test_usage_error_exits_2() -> None:
    result = await toolgen("preview", "127.0.0.1:1")  # --allow is required
    assert result.code == 2


def test_serve_runs_on_uvloop_when_installed_and_asked() -> None:
    import importlib.util

    from agentd.cli.serve import run_loop

    seen: list[str] = []

    async def main() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__)

    run_loop(main(), "auto")
    run_loop(main(), "asyncio")
    has_uvloop = importlib.util.find_spec("uvloop") is not None
    assert seen[0].startswith("uvloop" if has_uvloop else "asyncio")
    assert seen[1].startswith("asyncio")
