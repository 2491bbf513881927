"""The ``toolgen`` command: list a server's methods, preview its tools, call one."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from toolgen._allowlist import Allowlist
from toolgen._errors import (
    AllowlistError,
    ArgumentsError,
    DiscoveryError,
    ToolCallError,
)
from toolgen._reflection import load_descriptor_set, reflect
from toolgen._target import Target
from toolgen._tool import Catalog, Tool, discover
from toolgen.streaming import StreamLimits, kind_of

__all__ = ["main"]

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_TARGET = 3
EXIT_SELECTION = 4
EXIT_UPSTREAM = 5

_EPILOG = """\
examples:
  toolgen list 127.0.0.1:50051
  toolgen preview 127.0.0.1:50051 --allow 'examples.ledger.v1.LedgerService/*' \\
      --deny '*/UpdateVendor' --format openai
  toolgen preview api.example.com:443 --tls --allow 'acme.billing.v1.*' \\
      -H 'authorization: Bearer $TOKEN' --descriptor-set api.pb --format table
  toolgen call 127.0.0.1:50051 examples.ledger.v1.LedgerService/GetVendor \\
      --data '{"vendorId": "ven_007"}'
  echo '{"query": "coffee"}' | toolgen call 127.0.0.1:50051 LedgerService_SearchVendors \\
      --allow 'examples.ledger.v1.LedgerService/*' --data -

allowlist entries:
  package.Service/Method, package.Service/* or package.Service (all methods),
  or any shell glob over "package.Service/Method" (e.g. '*.v1.*/Get*').
  Deny entries win over allow entries.

streaming methods:
  a server-streaming tool returns {"messages": [...], "truncated", "cutBy", "limits"}:
  the stream is cut at --stream-max-messages, --stream-max-bytes (of JSON) or
  --stream-timeout seconds, whichever comes first, and cutBy says which; a
  client-streaming tool takes {"requests": [...]} (as bounded) and sends them all.
  Bidirectional streaming methods never become tools.

exit status:
  0 ok; 2 usage error; 3 target unreachable or serves no reflection;
  4 allowlist matches nothing or invalid arguments; 5 the upstream call failed.
"""


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    mode = group.add_mutually_exclusive_group()
    mode.add_argument(
        "--plaintext",
        action="store_true",
        help="connect without TLS (the default)",
    )
    mode.add_argument(
        "--tls", action="store_true", help="connect with TLS, verified by the system roots"
    )
    group.add_argument(
        "--ca",
        metavar="FILE",
        type=Path,
        help="PEM file of the CA that signed the server certificate (implies --tls)",
    )
    group.add_argument(
        "-H",
        "--header",
        metavar="'KEY: VALUE'",
        action="append",
        default=[],
        help="metadata sent with reflection and calls, e.g. -H 'authorization: Bearer T'; "
        "repeatable",
    )
    group.add_argument(
        "--connect-timeout",
        metavar="S",
        type=float,
        default=5.0,
        help="seconds to wait for the server to answer (default 5)",
    )
    group.add_argument(
        "--descriptor-set",
        metavar="FILE",
        type=Path,
        help="FileDescriptorSet (protoc --include_imports --include_source_info -o FILE): "
        "its comments become descriptions; used instead of reflection when the server "
        "serves none",
    )


def _selection_flags(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--allow",
        metavar="PATTERN",
        action="append",
        default=[],
        required=required,
        help="method(s) that may become tools; repeatable",
    )
    parser.add_argument(
        "--deny",
        metavar="PATTERN",
        action="append",
        default=[],
        help="method(s) never to expose, even when allowed; repeatable",
    )


def _stream_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("streaming methods")
    default = StreamLimits()
    group.add_argument(
        "--stream-max-messages",
        metavar="N",
        type=int,
        default=default.max_messages,
        help="messages a server stream keeps, requests a client stream takes "
        f"(default {default.max_messages})",
    )
    group.add_argument(
        "--stream-max-bytes",
        metavar="N",
        type=int,
        default=default.max_bytes,
        help=f"bytes of JSON of those messages or requests (default {default.max_bytes})",
    )
    group.add_argument(
        "--stream-timeout",
        metavar="S",
        type=float,
        default=default.timeout_s,
        help=f"seconds a server stream is read (default {default.timeout_s:g})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for documentation and tests."""
    parser = argparse.ArgumentParser(
        prog="toolgen",
        description="Turn the allowlisted methods of any gRPC server with reflection into "
        "LLM tools (JSON Schema in, JSON out).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser(
        "list",
        help="list the services and methods of a server",
        description="List every service and method the server reflects. With --allow, "
        "marks the methods that would become tools: '+' tool, '-' allowed but not a tool "
        "(bidirectional streaming or denied), ' ' not allowed.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    listing.add_argument("target", metavar="TARGET", help="server address, host:port")
    _selection_flags(listing, required=False)
    _connection_flags(listing)

    preview = commands.add_parser(
        "preview",
        help="print the tools an allowlist yields",
        description="Print the tools: JSON Schema objects (jsonschema), Chat Completions tools "
        "(openai) or a summary (table). Methods left out are reported on stderr.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    preview.add_argument("target", metavar="TARGET", help="server address, host:port")
    _selection_flags(preview, required=True)
    preview.add_argument(
        "--format",
        choices=("jsonschema", "openai", "table"),
        help="output format (default: table on a terminal, jsonschema otherwise)",
    )
    _stream_flags(preview)
    _connection_flags(preview)

    call = commands.add_parser(
        "call",
        help="invoke one method with JSON arguments",
        description="Invoke one method the way an agent would: arguments are validated "
        "against the tool's input schema, the response is printed as proto3 JSON.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    call.add_argument("target", metavar="TARGET", help="server address, host:port")
    call.add_argument(
        "method",
        metavar="METHOD",
        help="a tool name (LedgerService_GetVendor) or package.Service/Method",
    )
    call.add_argument(
        "--data",
        "-d",
        metavar="JSON",
        default="{}",
        help="arguments as a JSON object, or '-' to read them from stdin (default {})",
    )
    call.add_argument(
        "--timeout", metavar="S", type=float, default=None, help="deadline of the call in seconds"
    )
    _selection_flags(call, required=False)
    _stream_flags(call)
    _connection_flags(call)
    return parser


class _Exit(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _headers(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        key, sep, rest = value.partition(":")
        if not sep or not key.strip():
            raise _Exit(EXIT_USAGE, f"header {value!r} is not 'key: value'; e.g. -H 'x-id: 7'")
        pairs.append((key.strip().lower(), rest.strip()))
    return tuple(pairs)


def _target(args: argparse.Namespace) -> Target:
    return Target(
        args.target,
        tls=bool(args.tls or args.ca),
        ca_file=args.ca,
        metadata=_headers(args.header),
        connect_timeout=args.connect_timeout,
    )


async def _list(args: argparse.Namespace, out: TextIO) -> int:
    target = _target(args)
    allowlist = Allowlist(args.allow or ["*"], args.deny)
    files = {}
    if args.descriptor_set:
        files = {f.name: f for f in load_descriptor_set(args.descriptor_set)}
    channel = target.channel()
    try:
        found = await reflect(
            channel,
            target.address,
            metadata=target.metadata,
            connect_timeout=target.connect_timeout,
            fallback_files=files,
        )
    finally:
        await channel.close(None)
    print(f"# {target.address} ({found.protocol})", file=out)
    for name in found.services:
        print(name, file=out)
        for method in found.pool.FindServiceByName(name).methods:
            path = f"{name}/{method.name}"
            kind = kind_of(method)
            if not args.allow:
                mark = " "
            elif allowlist.allows(path) and kind is not None:
                mark = "+"
            elif allowlist.allowed_by(path):
                mark = "-"
            else:
                mark = " "
            note = f"  ({_KINDS[kind]})" if kind != "unary" else ""
            print(f"  {mark} {method.name}{note}", file=out)
    return EXIT_OK


_KINDS = {
    "unary": "unary",
    "server_streaming": "server streaming",
    "client_streaming": "client streaming",
    None: "bidirectional streaming: not a tool",
}


def _tool_json(tool: Tool) -> dict[str, Any]:
    streaming = {}
    if tool.kind != "unary":
        limits = tool.stream_limits
        streaming = {
            "stream_limits": {
                "max_messages": limits.max_messages,
                "max_bytes": limits.max_bytes,
                "timeout_s": limits.timeout_s,
            }
        }
    return {
        "name": tool.name,
        "method": tool.method,
        "description": tool.description,
        "side_effects": tool.side_effects,
        "kind": tool.kind,
        **streaming,
        "target": tool.target,
        "input_schema": tool.input_schema,
        "output_schema": tool.output_schema,
    }


def _table(catalog: Catalog, out: TextIO) -> None:
    rows = [("NAME", "METHOD", "KIND", "SIDE EFFECTS", "ARGS", "REQUIRED")]
    for tool in catalog:
        props = tool.input_schema.get("properties", {})
        required = tool.input_schema.get("required", [])
        rows.append(
            (
                tool.name,
                tool.method,
                _KINDS[tool.kind],
                tool.side_effects,
                str(len(props)),
                ", ".join(required) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]), file=out)


async def _discover(args: argparse.Namespace, allow: Sequence[str]) -> Catalog:
    limits = StreamLimits(args.stream_max_messages, args.stream_max_bytes, args.stream_timeout)
    return await discover(
        _target(args),
        allow,
        args.deny,
        descriptor_set=args.descriptor_set,
        stream_limits=limits,
    )


async def _preview(args: argparse.Namespace, out: TextIO) -> int:
    fmt = args.format or ("table" if out.isatty() else "jsonschema")
    async with await _discover(args, args.allow) as catalog:
        for skipped in catalog.skipped:
            print(f"toolgen: left out {skipped.method}: {skipped.reason}", file=sys.stderr)
        if fmt == "table":
            _table(catalog, out)
            return EXIT_OK
        if fmt == "openai":
            from toolgen.schema import SchemaLimitError

            items = []
            for tool in catalog:
                try:
                    items.append(tool.openai_tool())
                except SchemaLimitError as exc:
                    print(f"toolgen: left out {tool.name} (openai): {exc}", file=sys.stderr)
        else:
            items = [_tool_json(t) for t in catalog]
        json.dump(items, out, indent=2)
        out.write("\n")
    return EXIT_OK


def _read_data(data: str) -> Any:
    text = sys.stdin.read() if data == "-" else data
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Exit(EXIT_SELECTION, f"--data is not valid JSON ({exc}); pass an object") from None
    if not isinstance(value, dict):
        raise _Exit(EXIT_SELECTION, '--data must be a JSON object, e.g. \'{"id": "7"}\'')
    return value


async def _call(args: argparse.Namespace, out: TextIO) -> int:
    arguments = _read_data(args.data)
    by_path = "/" in args.method
    allow = args.allow or ([args.method.lstrip("/")] if by_path else ["*"])
    async with await _discover(args, allow) as catalog:
        tool = catalog.by_method(args.method) if by_path else catalog.get(args.method)
        if tool is None:
            reason = next((s.reason for s in catalog.skipped if s.method == args.method), None)
            if reason:
                raise _Exit(EXIT_SELECTION, f"{args.method} is not callable: {reason}")
            try:
                catalog[args.method]
            except KeyError as exc:
                raise _Exit(EXIT_SELECTION, str(exc.args[0])) from None
            raise AssertionError("unreachable")  # pragma: no cover
        result = await tool.invoke(arguments, metadata=_headers(args.header), timeout=args.timeout)
    json.dump(result, out, indent=2)
    out.write("\n")
    return EXIT_OK


def _fail(code: int, message: str) -> int:
    # One line, no traceback: the message already says what to fix.
    print(f"toolgen: {message}", file=sys.stderr)
    return code


def run(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the CLI and return its exit status instead of exiting."""
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    command = {"list": _list, "preview": _preview, "call": _call}[args.command]
    try:
        return asyncio.run(command(args, out))
    except _Exit as exc:
        return _fail(exc.code, str(exc))
    except (AllowlistError, ArgumentsError) as exc:
        return _fail(EXIT_SELECTION, str(exc))
    except DiscoveryError as exc:
        return _fail(EXIT_TARGET, str(exc))
    except ToolCallError as exc:
        return _fail(EXIT_UPSTREAM, str(exc))
    except (OSError, ValueError) as exc:
        # Unreadable --descriptor-set or --ca file, bad option values.
        return _fail(EXIT_USAGE, str(exc))
    except KeyboardInterrupt:
        return 130


def main() -> NoReturn:
    """Entry point of the ``toolgen`` console script."""
    sys.exit(run())
