"""The agent: what a caller runs (``Agent.run``), and how a run ends when something stops it.

    run -> plan -> execute -> (replan -> execute)* -> respond

The loop itself (``agentd.loop.session``; the ReAct baseline, ``agentd.loop.react``) builds
everything a model sees from the prompts module, the catalog and the observations.
Recoverable trouble (a plan that fails its checks, a reply that is not valid JSON) goes back to
the model a bounded number of times there; terminating trouble (a limit, an approval, the
deadline, a cancellation, a bug) ends up here, where ``_ended`` gives the run a status and
keeps the results so far.
"""

from __future__ import annotations

import asyncio
from asyncio import CancelledError
from collections.abc import Mapping, Sequence

import structlog

from agentd.config import LimitsConfig
from agentd.llm.model import ChatModel
from agentd.loop.deadline import Deadline
from agentd.loop.executor import CallContext
from agentd.loop.guardrails import Guardrails
from agentd.loop.hooks import RunHooks
from agentd.loop.plan import LoopTool
from agentd.loop.prompts import Prompt, Prompts
from agentd.loop.react import react
from agentd.loop.session import Session
from agentd.loop.shortlist import shortlist
from agentd.loop.state import Budget, RunState, Terminating
from agentd.loop.warmup import Warmup

log = structlog.get_logger("agentd.loop")


class Agent:
    """Runs one task over a set of tools with the models of each role."""

    def __init__(
        self,
        models: Mapping[str, ChatModel],
        limits: LimitsConfig,
        guardrails: Guardrails | None = None,
        prompt_overrides: Mapping[str, Prompt] | None = None,
    ) -> None:
        self.models = models
        self.config = limits
        self.guardrails = guardrails
        self.prompts = Prompts(prompt_overrides)  # [prompts] in the config
        self.warmup = Warmup()

    def warm_up(self, tools: Mapping[str, LoopTool]) -> None:
        """Start reading each role's static prompt prefix into the embedded model's cache
        (``agentd.loop.warmup``); runs of these ``tools`` then find it there."""
        whole = shortlist(tools, "", self.config.max_offered_tools) is tools  # not per task
        self.warmup.start(self.models, self.prompts, tools if whole else None)

    async def run(
        self,
        run: RunState,
        tools: Mapping[str, LoopTool],
        *,
        metadata: Mapping[str, Sequence[tuple[str, str]]],
        deadline: Deadline,
        budget: Budget | None = None,
        hooks: RunHooks | None = None,
        prompts: Prompts | None = None,
    ) -> RunState:
        """Run to the end, or until ``deadline`` (its margin before the caller's); never
        raises except CancelledError (itself, never in a group) when the run is cancelled.

        ``hooks``: what the caller plugs in (events, before a side effect, a check of each
        result); ``prompts``: this run's, else the agent's."""
        budget = budget or Budget.of(self.config)
        hooks = hooks or RunHooks()
        if self.guardrails:  # instruction-like tool results are flagged on their step
            flag, emit = self.guardrails.flag_result, hooks.on_event
            hooks = hooks.checking(lambda run, step: flag(run, step, emit))
        call = CallContext(
            metadata=metadata,
            deadline=deadline,
            tool_timeout_s=self.config.tool_timeout_s,
            max_result_chars=self.config.max_result_chars,
            idempotency_header=self.config.idempotency_header,
        )
        session = Session(
            self.models,
            self.config,
            self.guardrails,
            run,
            tools,
            budget,
            call,
            hooks,
            prompts or self.prompts,
            self.warmup,
        )
        try:
            async with asyncio.timeout(deadline.remaining()):
                if self.guardrails:  # input checks come before any model sees the task
                    self.guardrails.guard_input(run, hooks.on_event)
                if run.mode == "react":
                    await react(session)
                else:
                    await session.plan_execute()
                if self.guardrails and run.status == "succeeded":
                    await self.guardrails.guard_output(
                        run, session.ask, session.prompts, hooks.on_event
                    )
                if session.answer is not None and run.status == "succeeded":
                    session.answer.settle(run.output, run.output_json)
        except BaseException as exc:  # sorted by _ended; what it leaves is re-raised
            if not _ended(run, exc, deadline, self.config.run_timeout_s):
                raise
            if run.status in ("cancelled", "deadline_exceeded") and _leaves(exc, CancelledError):
                # The task is being cancelled: say so as itself, not inside a group.
                if isinstance(exc, CancelledError):
                    raise
                raise CancelledError() from None
        return run


def _leaves(exc: BaseException, kind: type[BaseException]) -> list[BaseException]:
    """The exceptions of type ``kind`` in ``exc``, looking inside (nested) groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner, kind)]
    return [exc] if isinstance(exc, kind) else []


def _ended(run: RunState, exc: BaseException, deadline: Deadline, run_timeout_s: float) -> bool:
    """Set the run's end from what stopped it; False for what is not the loop's to handle."""
    if _leaves(exc, CancelledError) or _leaves(exc, TimeoutError):
        status, error = deadline.ending(bool(_leaves(exc, CancelledError)), run_timeout_s)
        run.finish(status, error)  # type: ignore[arg-type]
        return True
    if terminating := _leaves(exc, Terminating):
        first = terminating[0]
        assert isinstance(first, Terminating)
        run.finish(first.status, str(first))
        return True
    if errors := _leaves(exc, Exception):  # a bug must not take the daemon down
        # Its text may hold anything (upstream or model text): the log gets it, not callers.
        log.error("internal error", run_id=run.run_id, error=repr(errors[0]))
        run.finish("failed", f"internal error ({type(errors[0]).__name__}); see the daemon log")
        return True
    return False  # KeyboardInterrupt, SystemExit


__all__ = ["Agent", "Budget"]
