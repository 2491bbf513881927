"""The repair loop, written once: ask the model, check the reply, feed the problems back, retry.

The planner's plan, the responder's answer and the executor's arguments all go through it. A
reply that fails (a ``ModelError`` the model caused: bad JSON, off its schema) or that decodes
but fails a check (``Rejected``) goes back to the model as a message, a bounded number of times.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from agentd.llm.model import ModelError

R = TypeVar("R")
T = TypeVar("T")


class Rejected(Exception):
    """A reply that decoded but fails a check. ``said`` is replayed as the model's turn and
    ``feedback`` follows it; ``problems`` are what the caller reports if no attempt passes."""

    def __init__(self, problems: Sequence[str], *, said: str, feedback: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)
        self.said = said
        self.feedback = feedback


class Unrepaired(Exception):
    """Every attempt failed; ``problems`` are the last attempt's."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


async def repaired(
    messages: list[dict[str, Any]],
    attempts: int,
    ask: Callable[[], Awaitable[R]],
    accept: Callable[[R], T],
) -> T:
    """``accept(await ask())`` for the first reply it accepts; ``messages`` (which ``ask``
    sends) grows by what went wrong each time. Raises ``Unrepaired`` after ``attempts``."""
    problems: list[str] = []
    for _attempt in range(attempts):
        try:
            reply = await ask()
        except ModelError as exc:  # what reaches here is the model's doing (see Session.ask)
            problems = [exc.public]  # what the run's error may show the caller
            messages.append({"role": "user", "content": f"Your reply was unusable: {exc.detail}"})
            continue
        try:
            return accept(reply)
        except Rejected as exc:
            problems = exc.problems
            messages.append({"role": "assistant", "content": exc.said})
            messages.append({"role": "user", "content": exc.feedback})
    raise Unrepaired(problems)


__all__ = ["Rejected", "Unrepaired", "repaired"]
