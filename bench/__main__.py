"""Run the benchmarks, print a table and write the JSON report.

Exit status is 0 unless a benchmark crashed: a missed goal is a finding, not a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bench._common import Result, Skipped, load, machine, python

# name -> (module, the benchmark names it produces); one module may produce several.
_SUITES: dict[str, tuple[str, ...]] = {
    "bench.dispatch": ("dispatch_small", "dispatch_large"),
    "bench.discovery": ("discovery_cold", "discovery_warm"),
    "bench.loop": ("plan_vs_react_fanout", "plan_vs_react_chain"),
    "bench.concurrency": ("concurrency_1000",),
    "bench.embedded": ("tool_tokens", "embedded_model"),
    "bench.decoding": ("embedded_decoding",),
    "bench.shortlist": ("catalog_1000_tokens", "shortlist_recall"),
    "bench.durable": ("journal_overhead", "resume_after_crash"),
    "bench.peers.suite": ("peer_fanout", "peer_overhead"),
    "bench.library": ("plan_library_retrieval",),
    "bench.streaming": ("answer_first_token", "answer_first_token_embedded", "stream_cpu_overhead"),
}
NAMES: tuple[str, ...] = tuple(n for names in _SUITES.values() for n in names)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer repetitions and smaller sizes (CI: proves the suite runs, < 2 min)",
    )
    parser.add_argument("--out", type=Path, help="write the JSON report to this file")
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help=f"run only these benchmarks: {', '.join(NAMES)}",
    )
    return parser


def _selected(only: str | None, parser: argparse.ArgumentParser) -> list[str]:
    if not only:
        return list(NAMES)
    wanted = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(NAMES)}")
    return wanted


async def _run_all(
    wanted: Sequence[str], quick: bool
) -> tuple[list[Result], list[dict[str, Any]], list[dict[str, Any]]]:
    results: list[Result] = []
    crashed: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for module_name, names in _SUITES.items():
        chosen = [n for n in names if n in wanted]
        if not chosen:
            continue
        module = importlib.import_module(module_name)
        run: Callable[..., Awaitable[list[Result]]] = module.run
        started = time.perf_counter()
        print(f"running {', '.join(chosen)} ...", file=sys.stderr, flush=True)
        try:
            produced = await run(quick=quick, only=chosen)
        except Skipped as why:
            print(f"  skipped {', '.join(chosen)}: {why}", file=sys.stderr, flush=True)
            skipped += [{"name": n, "reason": str(why)} for n in chosen]
            continue
        except Exception as exc:  # one crash must not hide the other figures
            traceback.print_exc()
            crashed += [{"name": n, "error": repr(exc)} for n in chosen]
            continue
        took = time.perf_counter() - started
        print(f"  done in {took:.1f} s", file=sys.stderr, flush=True)
        results += [r for r in produced if r.name in chosen]
    return results, crashed, skipped


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def table(results: Sequence[Result]) -> str:
    """A plain-text table of the results, one row per benchmark."""
    header = ("name", "value", "unit", "baseline", "ratio", "goal", "met")
    rows = [
        (
            r.name,
            _fmt(r.value),
            r.unit,
            _fmt(r.baseline),
            _fmt(r.ratio),
            r.goal,
            "yes" if r.met else "NO",
        )
        for r in results
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    rule = "  ".join("-" * w for w in widths)
    head = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    return "\n".join([head, rule, *lines])


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    wanted = _selected(args.only, parser)
    started = time.perf_counter()
    load_before = load()
    results, crashed, skipped = asyncio.run(_run_all(wanted, args.quick))
    wall = time.perf_counter() - started
    report: dict[str, Any] = {
        "machine": machine(),
        "python": python(),
        "quick": args.quick,
        "wall_time_s": round(wall, 1),
        "load_before": load_before,
        "load_after": load(),
        "benchmarks": [r.as_json() for r in results],
    }
    if crashed:
        report["crashed"] = crashed
    if skipped:
        report["skipped"] = skipped
    if results:
        print(table(results))
    for entry in skipped:
        print(f"{entry['name']}: skipped, {entry['reason']}")
    for entry in crashed:
        print(f"{entry['name']}: CRASHED {entry['error']}")
    print(f"\n{report['machine']}; {report['python']}; wall time {wall:.1f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
