"""``RunHooks``: everything a caller of ``Agent.run`` plugs into one run, in one object.

- ``on_event``: each ``Event`` as it happens (plan, replan_reason, step_started,
  step_finished, verdict), e.g. to stream it or to journal the run;
- ``before_side_effect``: awaited before a call with side effects starts, so a journal can
  show it in flight (a replica that takes over after a crash must not repeat it blindly);
- ``check_result``: each successful tool result before it is an observation (the guardrails'
  check of instruction-like content sets the step's flags);
- ``stream_answer``: someone follows the events, so the answer is streamed as it is decoded
  (``answer_delta`` events through ``on_event``, see agentd/loop/answer.py).

The defaults do nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agentd.loop.state import Event, RunState, StepRecord


def _ignore(event: Event) -> None:
    return None


async def _nothing() -> None:
    return None


def _no_check(run: RunState, step: StepRecord) -> None:
    return None


@dataclass(frozen=True)
class RunHooks:
    on_event: Callable[[Event], None] = _ignore
    before_side_effect: Callable[[], Awaitable[None]] = _nothing
    check_result: Callable[[RunState, StepRecord], None] = _no_check
    stream_answer: bool = False

    def checking(self, check: Callable[[RunState, StepRecord], None]) -> RunHooks:
        """These hooks with ``check`` run first on each result, then this ``check_result``."""
        after = self.check_result

        def both(run: RunState, step: StepRecord) -> None:
            check(run, step)
            after(run, step)

        return dataclasses.replace(self, check_result=both)


__all__ = ["RunHooks"]
