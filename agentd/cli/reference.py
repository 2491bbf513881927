"""docs/cli.md, the command reference: every command's --help, generated from the parser.

``python -m agentd.cli --reference > docs/cli.md`` writes it; tests/test_agentd_cli.py checks
it is current.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator

from agentd.cli import build_parser, sub_commands

WIDTH = "100"  # help is wrapped to $COLUMNS: the same reference on every terminal

HEADER = """# agentd command reference

Generated from the parser: `python -m agentd.cli --reference > docs/cli.md` (do not edit by
hand). Each section is the command's `--help`. Older spellings still accepted:
`agentd feedback RUN_ID --rating N` is `agentd feedback rate RUN_ID --rating N`, and
`agentd eval SUITE ...` is `agentd eval run SUITE ...`.
"""


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for name, child in sub_commands(parser).items():
        yield from _walk(child, (*path, name))


def reference() -> str:
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        sections = [HEADER]
        for path, parser in _walk(build_parser(), ("agentd",)):
            sections.append(
                f"## {' '.join(path)}\n\n```text\n{parser.format_help().rstrip()}\n```\n"
            )
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    return "\n".join(sections)
