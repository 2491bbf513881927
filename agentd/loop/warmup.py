"""Filling the embedded model's prompt cache before the first run needs it.

On the embedded model a run's first planner call reads the instructions and the whole catalog
(2,000-3,000 tokens at about 60 tokens a second on 2 cores: 30-60 s) before it writes a token;
every later run finds that prefix in llama.cpp's prompt cache. ``Warmup`` pays that reading
once at start, in the background: it sends each role's static prefix (the same bytes a run
sends first, ``planner_system``) with a tiny structured reply. A run that starts meanwhile
waits for its role's warm-up: llama.cpp reads one prompt's batches before another's (measured:
a 32-token request sent while a 2,400-token prompt was being read took 26.6 s), so not waiting
gains nothing, and every planner prompt shares at least the instructions with the warmed one
(a request that names its own tools: the instructions and the tools that sort first). Endpoints
other than the embedded model are left alone: their caches are theirs, and a call there costs
money.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

import structlog

from agentd.llm.model import ChatModel
from agentd.loop.describe import DescribedTool, describe_catalog
from agentd.loop.prompts import Prompts

log = structlog.get_logger("agentd.loop")

# The smallest reply a grammar allows: the call is for the prompt it reads, not what it says.
_DONE = {"type": "object", "properties": {"ok": {"const": True}}, "required": ["ok"]}


def planner_system(prompts: Prompts, tools: Mapping[str, DescribedTool]) -> str:
    """The planner's system message: its instructions, then the catalog; the first bytes of
    every planner call, so the prompt cache reuses them from run to run."""
    return f"{prompts.get('planner').text}\n\nTools:\n{describe_catalog(tools)}"


class Warmup:
    """One background warm-up per role; ``wait(role)`` returns once that role's is over."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(
        self,
        models: Mapping[str, ChatModel],
        prompts: Prompts,
        tools: Mapping[str, DescribedTool] | None,
    ) -> None:
        """Warm the responder, then the planner (with ``tools``' catalog; None: a catalog that
        is shortlisted per task, so only its instructions are shared), on the roles the
        embedded model serves. The short one first: a run's planner call, waiting for the
        planner's warm-up, then has the cores to itself."""
        for task in self._tasks.values():  # the catalog changed: its prefix is another now
            task.cancel()
        self._tasks = {}
        planner = prompts.get("planner").text if tools is None else planner_system(prompts, tools)
        systems = {"responder": prompts.get("responder").text, "planner": planner}
        previous: asyncio.Task[None] | None = None
        for role, system in systems.items():
            model = models.get(role)
            if model is None or not model.embedded:
                continue
            # One after another: in parallel they would share the same two cores.
            previous = asyncio.create_task(_warm(role, model, system, previous))
            self._tasks[role] = previous

    async def wait(self, role: str) -> None:
        """Until ``role``'s warm-up is over (at once when there is none)."""
        task = self._tasks.get(role)
        if task is None or task.done():
            return
        try:
            await asyncio.shield(task)  # a cancelled run leaves the warm-up running
        except asyncio.CancelledError:
            if not task.cancelled():  # this run was cancelled, not the warm-up
                raise

    async def finished(self) -> None:
        """Every role's warm-up is over (done, failed or none started)."""
        for role in list(self._tasks):
            await self.wait(role)

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _warm(role: str, model: ChatModel, system: str, after: asyncio.Task[None] | None) -> None:
    if after is not None:
        await asyncio.wait({after})  # however it ended; our own cancellation still stops us
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system},
        {"role": "user", "content": "Task: (warm-up)"},
    ]
    started = time.monotonic()
    try:
        await model.complete_json(messages, _DONE, name="warmup")
    except Exception as exc:  # a warm-up is an optimisation: the runs still work without it
        log.warning("prompt cache warm-up failed", role=role, error=str(exc)[:200])
        return
    log.info("prompt cache warmed", role=role, seconds=round(time.monotonic() - started, 1))


__all__ = ["Warmup", "planner_system"]
