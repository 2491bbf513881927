"""The scripted model's side of the peers' loops: native tool calls, as a real model sends them.

Every framework here speaks the Chat Completions tools protocol: the request offers ``tools``,
the reply carries ``tool_calls``, results come back as ``role: tool`` messages. A capable model
calls independent tools together in one turn (``parallel``); the one-a-turn variant is the way
agentd's own ReAct mode is scripted (bench/_stack.py). Results are read back with patterns that
accept JSON and Python reprs alike, since each framework renders a tool's dict its own way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.scripted_llm import Reply, schema_name

LOOKUPS = 8
FANOUT_TASK = "Total spend with vendors ven_001 to ven_008: look up each, then add them up."
OVERHEAD_TASK = "Evaluate three expressions: 1 1 *, 2 2 * and 3 3 *."
OVERHEAD_EXPRESSIONS = ("1 1 *", "2 2 *", "3 3 *")
OVERHEAD_ANSWER = "The results are 1, 4 and 9."

_TOTAL = re.compile(r"""['"]totalMinor['"]\s*:\s*['"]?(-?\d+)""")
_VALUE = re.compile(r"""['"]value['"]\s*:\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)""")

Respond = Callable[[dict[str, Any]], Reply | None]


def tool_outputs(body: dict[str, Any]) -> list[str]:
    """The text of every ``role: tool`` message in the request, in order."""
    found = []
    for message in body.get("messages", []):
        if message.get("role") != "tool":
            continue
        content = message.get("content")
        if isinstance(content, list):  # content parts
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        found.append(str(content))
    return found


def _offered(body: dict[str, Any]) -> set[str]:
    return {t.get("function", {}).get("name") for t in body.get("tools") or []}


def _calls(body: dict[str, Any], calls: list[tuple[str, dict[str, Any]]]) -> Reply:
    missing = {name for name, _ in calls} - _offered(body)
    if missing:
        raise ValueError(f"the request offers no tool {sorted(missing)}: {sorted(_offered(body))}")
    return Reply(
        tool_calls=[{"name": name, "arguments": args} for name, args in calls],
        finish_reason="tool_calls",
    )


def fanout(parallel: bool) -> Respond:
    """8 lookups (all in one turn, or one a turn), then one Evaluate of their sum, then text."""

    def respond(body: dict[str, Any]) -> Reply:
        outputs = tool_outputs(body)
        values = [m.group(1) for o in outputs if "formatted" in o and (m := _VALUE.search(o))]
        if values:
            return Reply(content=f"The total is {values[-1]}.")
        totals = [m.group(1) for o in outputs if (m := _TOTAL.search(o))]
        if len(totals) < LOOKUPS:
            wanted = range(len(totals) + 1, LOOKUPS + 1 if parallel else len(totals) + 2)
            lookups = [("summarize_transactions", {"vendor_id": f"ven_{i:03d}"}) for i in wanted]
            return _calls(body, lookups)
        expression = " ".join(t + ("" if i == 0 else " +") for i, t in enumerate(totals))
        return _calls(body, [("evaluate", {"expression": expression})])

    return respond


def overhead(body: dict[str, Any]) -> Reply:
    """Three independent Evaluate calls in one turn, then the answer: 2 model calls a run."""
    if not tool_outputs(body):
        return _calls(body, [("evaluate", {"expression": e}) for e in OVERHEAD_EXPRESSIONS])
    return Reply(content=OVERHEAD_ANSWER)


@dataclass
class Meter:
    """Routes each request to agentd's responder (structured output) or the peers' (tools),
    and records its size: tokens are estimated alike for everyone as characters / 4 of the
    whole request (messages, tool definitions, schemas) and of the reply."""

    agentd: Respond
    peers: Respond
    sizes: list[tuple[int, int]] = field(default_factory=list)

    def __call__(self, body: dict[str, Any]) -> Reply | None:
        reply = self.agentd(body) if schema_name(body) else self.peers(body)
        if reply is not None:
            out = json.dumps([reply.content, reply.tool_calls])
            self.sizes.append((len(json.dumps(body)) // 4, len(out) // 4))
        return reply

    def since(self, start: int) -> dict[str, int]:
        """Model calls and estimated tokens of the requests after the first ``start``."""
        window = self.sizes[start:]
        return {
            "model_calls": len(window),
            "input_tokens": sum(i for i, _ in window),
            "output_tokens": sum(o for _, o in window),
        }
