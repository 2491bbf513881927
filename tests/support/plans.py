"""Scripted planner and responder replies in the shapes agentd's schemas ask for."""

from __future__ import annotations

from typing import Any


def plan(
    *steps: dict[str, Any], answer: str | dict[str, str] | None = None, rationale: str = "test plan"
) -> dict[str, Any]:
    """A planner reply; steps are written flat here and nested as the plan schema wants."""
    return {
        "rationale": rationale,
        "steps": [
            {
                "id": s["id"],
                "call": {"tool": s["tool"], "arguments": s["arguments"]},
                "depends_on": s.get("depends_on", []),
                "purpose": "",
            }
            for s in steps
        ],
        "answer": answer,
    }


def answer(text: Any, missing: str = "") -> dict[str, Any]:
    """A responder reply."""
    return {"answer": text, "missing": missing}
