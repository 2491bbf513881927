"""What an edge hands the run domain, in plain Python: who calls (``Principal``), what run
they asked for (``RunSpec``), and a decision on a pending call (``CallDecision``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ANONYMOUS = "anonymous"
ADMIN = "admin"
IMPERSONATE = "impersonate"

# The fields of a run's limits a request may lower (the server's limits.* are the ceiling).
LIMIT_FIELDS = ("max_steps", "max_replans", "max_model_calls", "max_tokens")


@dataclass(frozen=True)
class Principal:
    id: str
    roles: frozenset[str] = frozenset()
    via: str = "none"  # how it was authenticated: token, mtls, gateway, none

    @property
    def admin(self) -> bool:
        return ADMIN in self.roles

    @property
    def may_impersonate(self) -> bool:
        return bool(self.roles & {ADMIN, IMPERSONATE})

    @property
    def anonymous(self) -> bool:
        return self.via == "none"


@dataclass
class RunSpec:
    """A run as an edge parsed it from its request (every field already within its bound)."""

    task: str
    context: dict[str, Any] = field(default_factory=dict)
    response_schema: dict[str, Any] | None = None
    # Tool patterns as asked (upstream globs and built-in names); empty: every tool.
    tools: list[str] = field(default_factory=list)
    mode: str | None = None  # plan_execute or react; None: agent.mode
    limits: dict[str, int | None] = field(default_factory=dict)  # LIMIT_FIELDS, None: server's
    conversation_id: str = ""
    user_id: str = ""  # whose memory and history; "" : the principal's


@dataclass(frozen=True)
class CallDecision:
    """One decision on a pending call; ``arguments`` None: as proposed (an approval may edit)."""

    step_id: str
    approve: bool
    reason: str = ""
    arguments: dict[str, Any] | None = None
