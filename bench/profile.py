"""Profile ``agentd serve`` under ``concurrency_1000`` with py-spy (the dev extra has it).

    python -m bench.profile [--quick] [--out DIR] [--top 15]

Runs the benchmark as ``python -m bench`` would, attaches ``py-spy record`` to the daemon
child once it is ready, and prints the hottest functions by own time and by time including
callees, as shares of all samples, plus the daemon's CPU per thread (grpc's C threads and the
store's worker threads are not Python frames, so py-spy alone cannot show them). Writes the
raw (collapsed) stacks to DIR/agentd.raw, e.g. for speedscope.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from bench import concurrency
from bench._procs import child


def _thread_cpu_ms(pid: int) -> dict[str, float]:
    """CPU ms per thread name (threads of one name added up), from /proc/<pid>/task."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = collections.defaultdict(float)
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            name = (task / "comm").read_text().strip()
            if task.name == str(pid):
                name = "main thread (the event loop)"
            elif name == "python":
                name = "other Python threads (asyncio.to_thread workers)"
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[name] += (int(fields[11]) + int(fields[12])) * 1000 / ticks
    return dict(sorted(out.items(), key=lambda item: -item[1]))


def _profiled_child(raw: Path, rate: int, gil: bool, threads: dict[str, Any]) -> Any:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"

    @contextlib.asynccontextmanager
    async def wrapped(
        args: Sequence[str], **kwargs: Any
    ) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
        async with child(args, **kwargs) as (proc, address):
            if "serve" not in args:
                yield proc, address
                return
            recorder = await asyncio.create_subprocess_exec(
                spy,
                "record",
                "--pid",
                str(proc.pid),
                "--format",
                "raw",
                "--function",  # one entry per function, not per line
                "--rate",
                str(rate),
                "--output",
                str(raw),
                *(["--gil"] if gil else []),
                stdout=asyncio.subprocess.DEVNULL,
            )
            try:
                yield proc, address
                threads.update(_thread_cpu_ms(proc.pid))
            finally:
                if recorder.returncode is None:
                    recorder.send_signal(2)  # SIGINT: py-spy writes what it has and exits
                await recorder.wait()

    return wrapped


def _frame(name: str) -> str:
    return name.strip()


def _package(frame: str) -> str:
    """The top-level package of a frame "function (path/to/file.py:line)"."""
    path = frame.rpartition("(")[2].rstrip(")").rpartition(":")[0]
    head = path.split("/", 1)[0]
    return head.removesuffix(".py") if "/" in path or head.endswith(".py") else path


def top(
    raw: Path, n: int
) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]], list[tuple[str, int]]]:
    """(samples, hottest by own samples, agentd's hottest including callees, own by package)."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f.strip()]
        # py-spy's first frame names the thread/process; it is no function.
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for name in set(frames):
            # Only agentd's own functions below the request handler: the scaffolding above
            # them (runpy, the event loop, cli.serve) is in every sample.
            if _package(name) in ("agentd", "toolgen") and "agentd/cli/" not in name:
                total[name] += count
    return samples, own.most_common(n), total.most_common(n), packages.most_common(n)


def report(raw: Path, n: int, threads: dict[str, float]) -> str:
    samples, own, total, packages = top(raw, n)
    lines = [f"{samples} samples of agentd serve ({raw})", "", f"top {n} by own time:"]
    lines += [f"  {100 * c / samples:5.1f}%  {name}" for name, c in own]
    lines += ["", f"top {n} of agentd's functions, including callees:"]
    lines += [f"  {100 * c / samples:5.1f}%  {name}" for name, c in total]
    lines += ["", "own time by package:"]
    lines += [f"  {100 * c / samples:5.1f}%  {name}" for name, c in packages]
    cpu = sum(threads.values())
    if cpu:
        lines += ["", f"daemon CPU by thread ({cpu:.0f} ms in all, warm-up included):"]
        lines += [f"  {100 * ms / cpu:5.1f}%  {name}" for name, ms in threads.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 runs instead of 1,000")
    parser.add_argument("--out", type=Path, default=Path("bench/profile"))
    parser.add_argument("--top", type=int, default=15)
    # Not a round 100: the benchmark's 200 ms model calls would alias with a 10 ms period.
    parser.add_argument("--rate", type=int, default=97, help="py-spy samples per second")
    parser.add_argument(
        "--gil", action="store_true", help="only samples holding the GIL (Python's own CPU)"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    raw = args.out / "agentd.raw"
    threads: dict[str, float] = {}
    concurrency.child = _profiled_child(raw, args.rate, args.gil, threads)  # type: ignore[assignment]
    results = asyncio.run(concurrency.run(quick=args.quick))
    text = report(raw, args.top, threads)
    details = results[0].details
    summary = {k: details[k] for k in ("agentd_cpu_ms_per_run", "runs_per_s", "failed", "load")}
    text = f"concurrency_1000 under py-spy: {json.dumps(summary)}\n\n{text}"
    (args.out / "top.txt").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
