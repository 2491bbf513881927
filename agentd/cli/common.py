"""What every command shares: exit codes, the one-line failure, JSON output.

Exit codes (``Exit``): 0 ok; 2 usage or config error; 3 daemon unreachable; 4 the request
was rejected (INVALID_ARGUMENT, UNAUTHENTICATED, ...); 5 the run ended without
succeeding; 130 interrupted.
"""

from __future__ import annotations

import argparse
import enum
import sys
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message


class Exit(enum.IntEnum):
    OK = 0
    USAGE = 2  # a bad argument or config: the message says what to fix
    UNREACHABLE = 3
    REJECTED = 4  # the daemon answered with an error status
    NOT_SUCCEEDED = 5
    INTERRUPTED = 130


class CommandFailed(Exception):
    """Ends a command with ``code`` after its message went to stderr (see ``fail``)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def fail(message: str, code: int) -> int:
    """One line on stderr, ``agentd: MESSAGE``; returns ``code`` for the command to return."""
    print(f"agentd: {message}", file=sys.stderr)
    return code


def print_json(message: Message) -> None:
    """One message as JSON, the way every `--json` prints: the proto3 JSON mapping with the
    proto field names (`run_id`, as grpcurl prints and as `feedback export` writes), enums by
    name, 64-bit integers as strings, fields at their default left out."""
    print(json_format.MessageToJson(message, indent=2, preserving_proto_field_name=True))


class HelpFormatter(argparse.HelpFormatter):
    """Wraps a one-paragraph description; keeps text of several lines (examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def add_command(
    commands: Any, name: str, summary: str, description: str, examples: str = "", **kwargs: Any
) -> argparse.ArgumentParser:
    """A sub-command: ``summary`` is its line in the parent's --help, ``description`` and
    ``examples`` (lines, indented by two) its own --help."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=f"examples:\n{examples}" if examples else None,
        formatter_class=HelpFormatter,
        **kwargs,
    )
    return parser
