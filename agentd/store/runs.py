"""The run store as the run domain (agentd/runs/) sees it: ``RunState`` in, ``Stored`` out.

Records stay serialized ``RunResponse`` messages (no migration; feedback is kept beside them),
so the conversion RunState <-> record lives here, on the store's side (agentd/store/records.py):
the domain never imports the generated ``v1`` code, and an edge gets both the run as plain
state (``Stored.run``, to map to its own message) and the stored record itself
(``Stored.message``: what the gRPC edge answers with, feedback included).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentd.loop.state import Event, RunState
from agentd.store import Outcome, RunStore
from agentd.store.records import final_event, journal_event, run_message, run_state
from agentd.v1 import agent_pb2


def without_seal(request: Mapping[str, Any]) -> dict[str, Any]:
    """A stored request without the owner's sealed credentials."""
    return {k: v for k, v in request.items() if k != "sealed_credentials"}


@dataclass
class Stored:
    """One stored run: its state, the request stored with it, and the record as stored."""

    run: RunState
    message: Any = field(repr=False)  # the RunResponse; only edges read it
    request: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def feedback(self) -> int:
        """How many feedback entries the run has."""
        return len(self.message.feedback)

    @property
    def principal(self) -> str:
        return self.run.principal

    @property
    def status_name(self) -> str:
        """The stored status as the API names it (RUN_STATUS_...)."""
        return agent_pb2.RunStatus.Name(self.message.status)


def _stored(message: agent_pb2.RunResponse | None, request: dict[str, Any]) -> Stored | None:
    return None if message is None else Stored(run_state(message, request), message, request)


class RunRecords:
    """``RunStore`` speaking ``RunState``; ``store`` is the store itself (leases, memory)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    async def save(
        self,
        run: RunState,
        request: dict[str, Any] | None = None,
        events: Sequence[Any] = (),
        final: int = 0,
    ) -> Stored:
        """Store ``run`` with its ``events`` not stored yet (``event`` messages); ``final``: the
        sequence of the final event (the record itself) journaled with it, 0 for none.

        A run that ended keeps no sealed credentials, whichever path ended it: they exist only
        while it may resume (running, or waiting for a decision)."""
        if request is not None and run.status not in ("running", "needs_approval"):
            request = without_seal(request)
        message = run_message(run)
        if final:
            events = [*events, final_event(run.run_id, final, message)]
        await self.store.save(message, request, events)
        return Stored(run, message, request or {})

    # --- the event journal (RunEvent messages: what an edge streams) ---------------------------

    @staticmethod
    def event(run: RunState, sequence: int, event: Event) -> Any:
        """``event`` as journaled: a RunEvent message, copied now and redacted."""
        return journal_event(run, sequence, event)

    @staticmethod
    def final(stored: Stored, sequence: int) -> Any:
        """The final event (a RunEvent carrying the record) of ``stored``."""
        return final_event(stored.run.run_id, sequence, stored.message)

    async def events(self, run_id: str, after: int, limit: int) -> list[Any]:
        """The journaled events of a run after sequence ``after``, in order."""
        return await self.store.events(run_id, after, limit)

    async def last_event(self, run_id: str) -> Any:
        """The run's last journaled event (None: none)."""
        return await self.store.last_event(run_id)

    async def get(self, run_id: str, with_request: bool = True) -> Stored | None:
        message = await self.store.get(run_id)
        if message is None:
            return None
        request = (await self.store.get_request(run_id) or {}) if with_request else {}
        return _stored(message, request)

    async def request(self, run_id: str) -> dict[str, Any]:
        """The request stored with the run ({} when none)."""
        return await self.store.get_request(run_id) or {}

    @staticmethod
    def state(stored: Stored, request: dict[str, Any]) -> RunState:
        """The run of ``stored`` as its stored record and ``request`` make it (to resume it)."""
        return run_state(stored.message, request)

    async def decide(
        self, run_id: str, key: str, request_id: str, run: RunState, request: dict[str, Any]
    ) -> tuple[Outcome, Stored | None]:
        outcome, current = await self.store.decide(run_id, key, request_id, run_message(run))
        return outcome, _stored(current, request)

    async def add_feedback(
        self,
        run_id: str,
        rating: int,
        comment: str,
        labels: Sequence[str],
        user_id: str,
        most: int,
    ) -> tuple[Stored, Any] | None:
        """The run with the new entry, and the entry (a ``Feedback`` message); FeedbackLimit
        when the run already has ``most``."""
        item = agent_pb2.Feedback(rating=rating, comment=comment, labels=labels, user_id=user_id)
        item.time.GetCurrentTime()
        message = await self.store.add_feedback(run_id, item, most)
        stored = _stored(message, {})
        return None if stored is None else (stored, item)

    async def with_status(
        self, status: str, limit: int, principal: str | None = None, after: str = ""
    ) -> list[Any]:
        """The stored records (messages) of runs with ``status`` (a RunStatus name), oldest
        first, after run ``after`` ("": from the first)."""
        return await self.store.runs_with_status(status, limit, principal, after)

    async def with_feedback(
        self, limit: int, principal: str | None = None, after: str = ""
    ) -> list[Any]:
        return await self.store.runs_with_feedback(limit, principal, after)

    async def waiting(self, limit: int) -> list[Stored]:
        """Runs that wait for a decision."""
        found = await self.store.runs_with_status("RUN_STATUS_NEEDS_APPROVAL", limit)
        return [Stored(run_state(m, {}), m) for m in found]

    async def conversation(self, user_id: str, conversation_id: str, limit: int) -> list[RunState]:
        found = await self.store.conversation(user_id, conversation_id, limit)
        return [run_state(m, {}) for m in found]
