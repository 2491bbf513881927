"""``plan_library_retrieval``: what the plan library costs a run to pick its worked examples.

A real SQLite run store holds ``size`` examples (half one principal's, half shared); each run
asks the library for the examples of a task (``PlanLibrary.for_run``: the store's stamp, its
examples when they changed, ranking). The figure is the mean time per run with that library,
against the same call on an empty library as the baseline, interleaved in one run. The details
also give the first read (nothing kept yet: the store's rows read and parsed).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from agentd.config import ExamplesConfig
from agentd.library.example import Example
from agentd.library.plans import PlanLibrary
from agentd.store.sqlite import SqliteRunStore
from bench._common import Result, interleaved, median

_TASK = "What is the phone number of vendor ven_002?"
_TOOLS = frozenset({"LedgerService_GetVendor", "LedgerService_SearchVendors"})
GOAL_MS = 5.0


def _example(i: int) -> Example:
    tool = "LedgerService_GetVendor" if i % 3 else "LedgerService_SearchVendors"
    step = {"id": "s1", "call": {"tool": tool, "arguments": {"vendorId": f"ven_{i:04d}"}}}
    return Example(
        id=f"ex{i}",
        task=f"What is the phone number of vendor ven_{i:04d}, case {i}?",
        plan={"steps": [{**step, "depends_on": [], "purpose": ""}], "answer": None},
        source=f"run:{i}",
        added_by="bench",
        principal="alice" if i % 2 else "",
        created_at=float(i),
    )


async def run(quick: bool, only: Sequence[str] = ()) -> list[Result]:
    size = 200 if quick else 1_000
    with tempfile.TemporaryDirectory() as tmp:
        full, empty = SqliteRunStore(Path(tmp) / "full.db"), SqliteRunStore(Path(tmp) / "e.db")
        try:
            config = ExamplesConfig(max_per_principal=size, max_candidates=size)
            for i in range(size):
                await full.add_example(_example(i), keep=size)
            library, bare = PlanLibrary(config, full), PlanLibrary(config, empty)
            started = time.perf_counter()
            shown = await library.for_run(_TASK, "alice", _TOOLS)
            first_ms = (time.perf_counter() - started) * 1e3
            ours, theirs = await interleaved(
                lambda: library.for_run(_TASK, "alice", _TOOLS),
                lambda: bare.for_run(_TASK, "alice", _TOOLS),
                calls=10 if quick else 50,
                rounds=3 if quick else 7,
                warmup=3,
            )
        finally:
            await full.close()
            await empty.close()
    value, baseline = median(ours) / 1e3, median(theirs) / 1e3
    return [
        Result(
            "plan_library_retrieval",
            value,
            "ms per run",
            f"<= {GOAL_MS} ms per run with {size} examples",
            baseline=baseline,
            met=value <= GOAL_MS,
            quick=quick,
            details={
                "examples": size,
                "shown": len(shown),
                "first_read_ms": round(first_ms, 3),
                "baseline": "the same call on an empty library",
            },
        )
    ]
