"""``agentd examples``: the plan library's worked examples (add a run's plan, list, remove,
export the file form).

These commands open the run store the daemon uses (``--config``: its ``[storage]``, SQLite or
PostgreSQL; or ``--db`` for a SQLite file), as a maintainer with access to it: a running daemon
reads the library from the store for every run, so what is added here is used by the next run.
Examples added here are shared: every principal's runs may see them.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from agentd.cli.common import CommandFailed, Exit, add_command, fail

# A note says why a plan is a good example, in a line.
MAX_NOTE_CHARS = 500


def add_commands(commands: Any) -> None:
    group = add_command(
        commands,
        "examples",
        "the plan library: add a run's plan as a worked example, list, remove, export",
        "The planner is shown worked examples: plans of earlier runs on similar tasks (see "
        "docs/examples.md). A succeeded run rated positively adds its plan for its owner's "
        "runs; a maintainer adds any succeeded run's plan for everyone's with `examples add`. "
        "These commands open the daemon's run store (--config or --db).",
        "  agentd examples add RUN_ID --note 'two lookups, then the sum' --config agentd.toml\n"
        "  agentd examples list --config agentd.toml\n"
        "  agentd examples remove ex_0123456789ab --config agentd.toml\n"
        "  agentd examples export --config agentd.toml > plans.yaml",
    )
    actions = group.add_subparsers(dest="examples_command", required=True, metavar="ACTION")
    add = add_command(
        actions,
        "add",
        "keep a succeeded run's plan as an example every run may see",
        "The run's plan (its steps with their arguments, as the planner wrote them) becomes a "
        "shared example. The run must have succeeded in one plan, every step of it succeeded, "
        "and hold no redacted secret.",
        "  agentd examples add 3f2c... --note 'search, then summarize' --config agentd.toml",
    )
    add.add_argument("run_id", metavar="RUN_ID", help="the run whose plan to keep")
    add.add_argument("--note", default="", help="why it is a good example (shown by list)")
    add.set_defaults(func=add_example)
    listing = add_command(
        actions,
        "list",
        "print the stored examples, newest first",
        "The stored examples: id, whose runs see them (shared or one principal's), where "
        "they came from, their tools and task.",
        "  agentd examples list --config agentd.toml\n  agentd examples list --json --db agentd.db",
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=list_examples)
    remove = add_command(
        actions,
        "remove",
        "delete an example by id",
        "Delete one example: no later run is shown it.",
        "  agentd examples remove ex_0123456789ab --config agentd.toml",
    )
    remove.add_argument("example_id", metavar="ID", help="the example's id (see list)")
    remove.set_defaults(func=remove_example)
    export = add_command(
        actions,
        "export",
        "print the stored examples in the file form (examples.file) for review in git",
        "YAML on stdout, the form `[examples] file` reads. Exported examples are shared once "
        "loaded from the file: review what a plan's arguments hold before you commit it.",
        "  agentd examples export --config agentd.toml > plans.yaml",
    )
    export.set_defaults(func=export_examples)
    for parser in (add, listing, remove, export):
        where = parser.add_mutually_exclusive_group()
        where.add_argument(
            "--config", "-c", metavar="FILE", help="the daemon's config: its [storage]"
        )
        where.add_argument("--db", metavar="PATH", help="a SQLite run store file")


@asynccontextmanager
async def _library(args: argparse.Namespace) -> AsyncIterator[Any]:
    from agentd.config import ConfigError, load_config
    from agentd.library.plans import PlanLibrary
    from agentd.store import open_store

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise CommandFailed(fail(str(exc), Exit.USAGE)) from None
    storage = config.storage
    if args.db:
        storage = type(storage)(path=args.db)
    if not storage.url and not os.path.exists(storage.path):
        where = "--db" if args.db else "storage.path"
        raise CommandFailed(fail(f"{where} {storage.path}: no such file", Exit.USAGE))
    store = open_store(storage)
    try:
        yield PlanLibrary(config.examples, store)
    finally:
        await store.close()


async def _stored(args: argparse.Namespace) -> list[Any]:
    """Every stored example, newest first (at most examples.max_candidates)."""
    async with _library(args) as library:
        return list(await library.store.examples(None, library.config.max_candidates))


async def add_example(args: argparse.Namespace) -> int:
    from agentd.library import SHARED
    from agentd.library.plans import NotAnExample, example_of_run

    if len(args.note) > MAX_NOTE_CHARS:
        return fail(f"--note: at most {MAX_NOTE_CHARS} characters", Exit.USAGE)
    async with _library(args) as library:
        record = await library.store.get(args.run_id)
        if record is None:
            return fail(f"RUN_ID: no run {args.run_id} in the store", Exit.REJECTED)
        try:
            example = example_of_run(record, SHARED, f"cli:{getpass.getuser()}", args.note)
        except NotAnExample as exc:
            return fail(f"RUN_ID: {exc}", Exit.REJECTED)
        if example.size > library.config.max_plan_chars:
            return fail(
                f"RUN_ID: the plan has {example.size} characters, more than"
                f" examples.max_plan_chars ({library.config.max_plan_chars})",
                Exit.REJECTED,
            )
        if not await library.add(example):
            return fail(f"RUN_ID: run {args.run_id} is already a shared example", Exit.REJECTED)
    print(example.id)
    return 0


async def list_examples(args: argparse.Namespace) -> int:
    from agentd.library.plans import describe

    for example in await _stored(args):
        if args.json:
            print(json.dumps(describe(example), ensure_ascii=False))
            continue
        scope = "shared" if not example.principal else f"principal {example.principal}"
        print(f"{example.id}  {scope}  {example.source}  tools: {', '.join(example.tools)}")
        print(f"    {example.task}" + (f"  ({example.note})" if example.note else ""))
    return 0


async def remove_example(args: argparse.Namespace) -> int:
    async with _library(args) as library:
        removed = await library.store.remove_example(args.example_id)
    if not removed:
        return fail(f"ID: no example {args.example_id}", Exit.REJECTED)
    print(f"example {args.example_id} removed", file=sys.stderr)
    return 0


async def export_examples(args: argparse.Namespace) -> int:
    from agentd.library.file import dump_examples

    found = await _stored(args)
    sys.stdout.write(dump_examples(list(reversed(found))))  # oldest first: stable diffs
    return 0


__all__ = ["add_commands"]
