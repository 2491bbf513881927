"""The daemon's tool catalog: every upstream's allowlisted methods, kept fresh.

Discovery goes through toolgen. An upstream that is down at start-up does not stop
the daemon: it is reported in health and ``ListTools`` and retried in the
background until it answers. Tool names are unique across upstreams (a clash gets
the upstream's name as prefix).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import structlog

import toolgen
from agentd.config import Policy, UpstreamConfig
from toolgen.schema import Bounds

log = structlog.get_logger("agentd.tools.upstream")

# Model-facing schemas are bounded: small models run away inside unbounded strings
# and arrays until max_tokens.
MODEL_BOUNDS = Bounds(max_string_length=200, max_items=20, max_recursion_depth=3)


@dataclass(eq=False)
class AgentTool:
    """A reflected upstream method as the loop sees it, with its policy and timeout."""

    name: str
    tool: toolgen.Tool
    upstream: UpstreamConfig
    policy: Policy
    timeout_s: float | None

    @property
    def method(self) -> str:
        return self.tool.method

    @property
    def description(self) -> str:
        return self.tool.description

    @property
    def always_offered(self) -> bool:
        """Offered on every task, past the shortlist (``upstreams.always_offer``)."""
        return self.upstream.always_offer

    @property
    def side_effects(self) -> str:
        return self.tool.side_effects

    @property
    def input_schema(self) -> dict[str, Any]:
        return self.tool.input_schema

    @property
    def output_schema(self) -> dict[str, Any]:
        return self.tool.output_schema

    @cached_property
    def model_schema(self) -> dict[str, Any]:
        """What a model writes: bounded, and only keywords constrained decoders enforce
        (a client-streaming method's list of requests too)."""
        return self.tool.arguments_schema("grammar", MODEL_BOUNDS)

    async def invoke(
        self, arguments: dict[str, Any], *, metadata: Sequence[tuple[str, str]], timeout: float
    ) -> dict[str, Any]:
        if self.timeout_s is not None:
            timeout = min(timeout, self.timeout_s)
        return await self.tool.invoke(arguments, metadata=metadata, timeout=timeout)


def stream_limits(upstream: UpstreamConfig) -> toolgen.StreamLimits:
    """The bounds of the upstream's streaming tools (``upstreams.stream_*``)."""
    return toolgen.StreamLimits(
        max_messages=upstream.stream_max_messages,
        max_bytes=upstream.stream_max_bytes,
        timeout_s=upstream.stream_timeout_s,
    )


def policy_for(tool: toolgen.Tool, upstream: UpstreamConfig) -> Policy:
    """Per-method overrides first, then: reads are allowed, the rest follow the upstream."""
    path = tool.method.lstrip("/")
    for pattern, policy in upstream.methods.items():
        if fnmatch.fnmatchcase(path, pattern) or pattern == tool.name:
            return policy
    if tool.side_effects == "none":
        return "allow"
    return upstream.side_effects


@dataclass
class _Upstream:
    config: UpstreamConfig
    catalog: toolgen.Catalog | None = None
    error: str = ""


@dataclass
class ToolCatalog:
    """All upstreams' tools; ``tools`` is a snapshot safe to hold for a whole run."""

    upstreams: Sequence[UpstreamConfig]
    retry_s: float = 5.0
    tools: Mapping[str, AgentTool] = field(default_factory=dict)
    # Called after a retry found an upstream that was unavailable: the tools changed.
    on_change: Callable[[], None] | None = None
    _state: dict[str, _Upstream] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Discover every upstream once, then keep retrying the ones that failed."""
        self._state = {u.name: _Upstream(u) for u in self.upstreams}
        await asyncio.gather(*(self._discover(s) for s in self._state.values()))
        self._rebuild()
        if self.unavailable:
            self._task = asyncio.create_task(self._retry_forever())

    @property
    def unavailable(self) -> dict[str, str]:
        return {name: s.error for name, s in self._state.items() if s.catalog is None}

    async def _discover(self, state: _Upstream) -> None:
        up = state.config
        target = toolgen.Target(
            address=up.target, tls=up.tls, ca_file=Path(up.ca_file) if up.ca_file else None
        )
        try:
            catalog = await toolgen.discover(
                target,
                list(up.allow),
                list(up.deny),
                descriptor_set=Path(up.descriptor_set) if up.descriptor_set else None,
                stream_limits=stream_limits(up),
            )
        except toolgen.ToolgenError as exc:
            state.error = str(exc)
            log.warning("upstream unavailable", upstream=up.name, target=up.target, error=str(exc))
            return
        if state.catalog is not None:
            await state.catalog.close()
        state.catalog, state.error = catalog, ""
        log.info(
            "upstream discovered",
            upstream=up.name,
            target=up.target,
            tools=len(catalog.tools),
            skipped=len(catalog.skipped),
        )

    async def _retry_forever(self) -> None:
        while self.unavailable:
            await asyncio.sleep(self.retry_s)
            failed = [s for s in self._state.values() if s.catalog is None]
            await asyncio.gather(*(self._discover(s) for s in failed))
            self._rebuild()
            if self.on_change is not None and any(s.catalog is not None for s in failed):
                self.on_change()

    def _rebuild(self) -> None:
        tools: dict[str, AgentTool] = {}
        taken: dict[str, int] = {}
        for state in self._state.values():
            if state.catalog is None:
                continue
            for tool in state.catalog.tools:
                taken[tool.name] = taken.get(tool.name, 0) + 1
        for state in self._state.values():
            if state.catalog is None:
                continue
            up = state.config
            for tool in state.catalog.tools:
                name = tool.name if taken[tool.name] == 1 else f"{up.name}_{tool.name}"[:64]
                tools[name] = AgentTool(name, tool, up, policy_for(tool, up), up.timeout_s)
        self.tools = dict(sorted(tools.items()))

    def select(self, patterns: Sequence[str]) -> dict[str, AgentTool]:
        """The tools matching any of ``patterns`` (names or method paths, shell globs)."""
        if not patterns:
            return dict(self.tools)
        chosen: dict[str, AgentTool] = {}
        for pattern in patterns:
            matched = {
                name: tool
                for name, tool in self.tools.items()
                if fnmatch.fnmatchcase(name, pattern)
                or fnmatch.fnmatchcase(tool.method.lstrip("/"), pattern)
            }
            if not matched:
                raise LookupError(pattern)
            chosen.update(matched)
        return chosen

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for state in self._state.values():
            if state.catalog is not None:
                await state.catalog.close()
