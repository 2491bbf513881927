"""Built-in memory tools (remember, recall, forget) and the conversation summary.

Memories live in the run store, always scoped by the run's ``user_id``: a tool instance
is made per run and reads the user and conversation from that run, never from the model's
arguments, so one user's run can never reach another user's memories.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agentd.config import MemoryConfig
from agentd.loop.state import RunState

BUILTIN_UPSTREAM = "builtin"


@dataclass(frozen=True)
class Memory:
    """One remembered fact of one user (optionally of one conversation)."""

    id: str
    text: str
    conversation_id: str
    created_at: float


class MemoryStore(Protocol):
    """What the memory tools need of the run store; memories are always scoped by user."""

    async def remember(self, user_id: str, conversation_id: str, text: str) -> Memory: ...
    async def recall(
        self, user_id: str, conversation_id: str, query: str, limit: int
    ) -> list[Memory]: ...
    async def forget(self, user_id: str, memory_id: str) -> bool: ...


@dataclass(frozen=True)
class BuiltinSpec:
    """What ListTools shows of a built-in tool, and what the loop needs besides invoke."""

    name: str
    method: str
    description: str
    side_effects: str
    input_schema: dict[str, Any]
    policy: str = "allow"  # agentd's own state: no upstream side effect to approve


def _object(properties: dict[str, Any], required: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


SPECS = {
    spec.name: spec
    for spec in (
        BuiltinSpec(
            "memory_remember",
            "agentd.builtin/memory.remember",
            "Remember a fact about the user for later runs (a preference, a name, a decision)."
            ' scope "conversation" keeps it to this conversation; "user" (default) to all.',
            "unknown",
            _object(
                {
                    "text": {"type": "string", "minLength": 1, "maxLength": 500},
                    "scope": {"enum": ["user", "conversation"]},
                },
                ["text"],
            ),
        ),
        BuiltinSpec(
            "memory_recall",
            "agentd.builtin/memory.recall",
            "Recall remembered facts about the user by keywords (best matches, newest"
            " first); an empty query, or one that matches nothing, gives the most recent ones.",
            "none",
            _object(
                {
                    "query": {"type": "string", "maxLength": 200},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 20},
                },
                ["query"],
            ),
        ),
        BuiltinSpec(
            "memory_forget",
            "agentd.builtin/memory.forget",
            "Forget one remembered fact by its id (from memory_recall).",
            "idempotent",
            _object({"id": {"type": "string", "minLength": 1, "maxLength": 64}}, ["id"]),
        ),
    )
}


class MemoryTool:
    """One memory tool bound to one run (its user and conversation); a LoopTool."""

    upstream_name = BUILTIN_UPSTREAM
    # Offered to the planner whatever the task says: it is about the conversation, so a
    # ranking by the task's words would drop it.
    always_offered = True

    def __init__(self, spec: BuiltinSpec, store: MemoryStore, run: RunState, config: MemoryConfig):
        self.spec = spec
        self.store = store
        self.run = run
        self.config = config

    name = property(lambda self: self.spec.name)
    method = property(lambda self: self.spec.method)
    description = property(lambda self: self.spec.description)
    side_effects = property(lambda self: self.spec.side_effects)
    policy = property(lambda self: self.spec.policy)
    input_schema = property(lambda self: self.spec.input_schema)
    model_schema = property(lambda self: self.spec.input_schema)  # already bounded

    async def invoke(
        self, arguments: dict[str, Any], *, metadata: Sequence[tuple[str, str]], timeout: float
    ) -> dict[str, Any]:
        user = self.run.user_id
        if not user:  # never a shared anonymous scope
            raise PermissionError("memory needs a user_id (RunRequest.user_id or header)")
        async with asyncio.timeout(timeout):
            if self.name == "memory_remember":
                text = str(arguments["text"])[: self.config.max_memory_chars]
                scope = arguments.get("scope") or "user"
                conversation = self.run.conversation_id if scope == "conversation" else ""
                memory = await self.store.remember(user, conversation, text)
                return {"id": memory.id, "remembered": memory.text}
            if self.name == "memory_recall":
                limit = min(int(arguments.get("limit") or self.config.recall_limit), 20)
                query = str(arguments.get("query", ""))
                found = await self.store.recall(user, self.run.conversation_id, query, limit)
                result: dict[str, Any] = {}
                if not found and query.strip():
                    # Nothing matched the keywords: recency is still an answer, said as such.
                    found = await self.store.recall(user, self.run.conversation_id, "", limit)
                    if found:
                        result["note"] = f"nothing matched {query!r}; these are the newest"
                result["memories"] = [
                    {"id": m.id, "text": m.text, "when": _iso(m.created_at)} for m in found
                ]
                return result
            return {"forgotten": await self.store.forget(user, str(arguments["id"]))}


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def split_patterns(patterns: Iterable[str]) -> tuple[list[str], list[str]]:
    """Request tool patterns as (for the upstream catalog, matching built-in tools)."""
    upstream: list[str] = []
    builtin: list[str] = []
    for pattern in patterns:
        hits = [
            n
            for n, s in SPECS.items()
            if fnmatch.fnmatchcase(n, pattern) or fnmatch.fnmatchcase(s.method, pattern)
        ]
        if hits:
            builtin += hits
        if not hits or pattern in ("*", "**"):
            upstream.append(pattern)
    return upstream, builtin


def builtin_tools(
    store: MemoryStore, config: MemoryConfig, run: RunState, names: Iterable[str] | None = None
) -> dict[str, MemoryTool]:
    """The run's built-in tools (``names`` narrows them; None: all)."""
    if not config.enabled:
        return {}
    chosen = SPECS if names is None else {n: SPECS[n] for n in names if n in SPECS}
    return {name: MemoryTool(spec, store, run, config) for name, spec in chosen.items()}


def user_from_metadata(metadata: Mapping[str, str] | Sequence[tuple[str, str]], header: str) -> str:
    pairs = metadata.items() if isinstance(metadata, Mapping) else metadata
    wanted = header.lower()
    return next((v for k, v in pairs if k.lower() == wanted), "")


__all__ = ["BUILTIN_UPSTREAM", "SPECS", "Memory", "MemoryStore", "MemoryTool", "builtin_tools"]
