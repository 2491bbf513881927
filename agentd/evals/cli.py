"""``agentd eval``: the command-line side of evaluations (parsing lives in agentd/cli/evals.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentd.cli.channel import BadOption, connection
from agentd.evals import report
from agentd.evals.examples import examples_file
from agentd.evals.runner import evaluate, label_deployments, stderr_progress
from agentd.evals.suite import SuiteError, load_suite


def _fail(message: str, code: int = 2) -> int:
    print(f"agentd eval: {message}", file=sys.stderr)
    return code


def run_eval(args: argparse.Namespace) -> int:
    """Run the suite against every --config / --target, print the table, write --json."""
    from agentd.config import ConfigError, load_config
    from agentd.telemetry import logs

    if not args.config and not args.target:
        return _fail("give at least one --config FILE or --target ADDR")
    if args.repeat < 1 or args.concurrency < 1:
        return _fail("--repeat and --concurrency must be at least 1")
    try:
        full = load_suite(args.suite)
        suite = full.select(args.cases, args.limit)
    except SuiteError as exc:
        return _fail(str(exc))
    if not suite.cases:
        return _fail(f"no case matches --cases {args.cases}")
    for path in args.config:
        try:
            load_config(path)  # every config is checked before anything starts
        except ConfigError as exc:
            return _fail(str(exc))
    # Failing runs are what an evaluation is for: their alerts (warnings) would bury the
    # progress lines, so only errors are logged.
    logs.configure("error", "console" if sys.stderr.isatty() else "json")
    library = None
    if args.examples_from:
        if not args.config:
            return _fail("--examples-from needs a --config (the examples run in-process)")
        try:
            doc = json.loads(Path(args.examples_from).read_text())
            text, count = examples_file(doc, full, args.examples_from)
        except (OSError, ValueError) as exc:
            return _fail(f"--examples-from {exc}")
        library = tempfile.TemporaryDirectory()
        plans = Path(library.name) / "plans.yaml"
        plans.write_text(text)
        print(f"agentd eval: {count} examples from {args.examples_from}", file=sys.stderr)
    deployments = label_deployments(args.config, args.target, str(plans) if library else None)
    try:
        connection(args)
    except BadOption as exc:
        return _fail(str(exc))
    ready_s: dict[str, float] = {}
    try:
        results = asyncio.run(
            evaluate(
                suite,
                deployments,
                repeat=args.repeat,
                concurrency=args.concurrency,
                timeout_s=args.timeout,
                keep_runs=args.keep_runs,
                progress=None if args.quiet else stderr_progress,
                connect=connection(args).channel,
                ready_s=ready_s,
            )
        )
    except (OSError, RuntimeError, ValueError) as exc:
        return _fail(f"cannot run: {exc}")
    finally:
        if library is not None:
            library.cleanup()
    described = [
        {"label": d.label, "config": d.config_path, "target": d.target}
        | ({"ready_s": ready_s[d.label]} if d.label in ready_s else {})
        for d in deployments
    ]
    doc = report.document(suite, described, [r.as_dict() for r in results], args.repeat)
    print(report.render(doc))
    if args.json:
        Path(args.json).write_text(report.dumps(doc))
        print(f"agentd eval: results written to {args.json}", file=sys.stderr)
    return 0


def compare_files(files: Sequence[str]) -> int:
    """``agentd eval compare A.json B.json``: the table of two stored evaluations."""
    if len(files) < 2:
        return _fail("compare needs two or more evaluation JSON files")
    docs: list[dict[str, Any]] = []
    for path in files:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            return _fail(f"{path}: cannot read: {exc}")
        if not isinstance(doc, dict) or doc.get("format") != report.FORMAT:
            return _fail(f"{path}: not an agentd eval result (format {report.FORMAT})")
        docs.append(doc)
    print(report.render(report.merge_for_compare(docs, [Path(f).stem for f in files])))
    return 0
