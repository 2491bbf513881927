"""``discovery_cold`` / ``discovery_warm``: reflect and convert a large generated server.

The generated server (``bench._genserver``) runs in its own process, as a real
upstream would. Cold is a full ``toolgen.discover`` on a fresh channel and pool;
warm is ``Catalog.refresh()`` when nothing changed, which should only re-reflect
and compare fingerprints.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import toolgen
from bench._common import Result, load, median
from bench._genserver import build, message_count
from bench._procs import child
from toolgen._reflection import reflect

COLD_GOAL_S = 1.0
WARM_GOAL_MS = 50.0


async def run(quick: bool, only: Sequence[str] = ()) -> list[Result]:
    services, methods = (10, 20) if quick else (50, 20)
    cold_reps, warm_reps = (3, 5) if quick else (7, 21)
    size = {
        "services": services,
        "methods": services * methods,
        "message_types": message_count(build(services, methods)[0], services),
    }
    args = ["-m", "bench._genserver", "--services", str(services), "--methods", str(methods)]
    async with child(args) as (_proc, address):
        # Warm-up: first connection, imports and the server's own first-use caches.
        catalog = await toolgen.discover(address, allow=["*"])
        tools = len(catalog.tools)
        await catalog.close()

        cold: list[float] = []
        reflect_only: list[float] = []
        for _ in range(cold_reps):
            started = time.perf_counter()
            catalog = await toolgen.discover(address, allow=["*"])
            cold.append(time.perf_counter() - started)
            # Split the cold time: the reflection exchange alone, on the same channel.
            source = catalog._sources[0]
            started = time.perf_counter()
            await reflect(source.channel, address)
            reflect_only.append(time.perf_counter() - started)
            await catalog.close()

        catalog = await toolgen.discover(address, allow=["*"])
        try:
            warm: list[float] = []
            changed = False
            for _ in range(warm_reps):
                started = time.perf_counter()
                changed |= await catalog.refresh()
                warm.append(time.perf_counter() - started)
        finally:
            await catalog.close()

    cold_s, warm_ms = median(cold), median(warm) * 1000
    common = {"load": load(), **size, "tools": tools}
    return [
        Result(
            name="discovery_cold",
            value=cold_s,
            unit="s",
            goal=f"<= {COLD_GOAL_S}",
            met=cold_s <= COLD_GOAL_S,
            quick=quick,
            details={
                **common,
                "runs_s": [round(x, 4) for x in cold],
                "reflection_only_s": round(median(reflect_only), 4),
                "build_s": round(cold_s - median(reflect_only), 4),
            },
        ),
        Result(
            name="discovery_warm",
            value=warm_ms,
            unit="ms",
            goal=f"<= {WARM_GOAL_MS:g}",
            baseline=cold_s * 1000,
            met=warm_ms <= WARM_GOAL_MS and not changed,
            quick=quick,
            details={**common, "runs_ms": [round(x * 1000, 2) for x in warm], "changed": changed},
        ),
    ]
