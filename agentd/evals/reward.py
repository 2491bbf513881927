"""A scalar reward per run, for comparing runs and for preference or reinforcement fine-tuning.

The reward adds what a team cares about, each term with its own weight::

    reward = checks    * (checks passed / checks run)        # 0..1, only when the run was checked
           + feedback  * mean user feedback score            # -1..1 (agentd.api.feedback.score)
           + guardrail * guardrail term                      # 0, -0.5 for a flag, -1 for a block
           - cost      * cost in US dollars
           - latency   * seconds

Terms without data (no checks, no feedback) contribute 0, so a production run with only
user feedback and an evaluation run with only checks are both scored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from agentd.api.feedback import score
from agentd.v1 import agent_pb2

# The worst verdict decides: one block outweighs any number of flags.
_VERDICT_PENALTY = {agent_pb2.VERDICT_FLAG: -0.5, agent_pb2.VERDICT_BLOCK: -1.0}


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the reward terms (a suite's ``reward:`` section, or ``--weight`` options)."""

    checks: float = 1.0
    feedback: float = 1.0
    guardrail: float = 0.5
    cost: float = 0.0  # per US dollar
    latency: float = 0.0  # per second

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], where: str = "reward") -> RewardWeights:
        """Build from a plain mapping; a ValueError names the key."""
        known = {f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for key, value in raw.items():
            if key not in known:
                raise ValueError(
                    f"{where}.{key}: unknown weight (known: {', '.join(sorted(known))})"
                )
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{where}.{key}: must be a number, got {value!r}")
            values[key] = float(value)
        return cls(**values)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class RewardTerms:
    """The inputs of one reward, kept so a reward can be explained term by term."""

    checks: float | None  # fraction of checks passed; None when the run was not checked
    feedback: float | None  # mean normalised rating; None without feedback
    guardrail: float  # 0, -0.5 or -1
    cost_usd: float
    latency_s: float

    def reward(self, weights: RewardWeights) -> float:
        total = weights.checks * (self.checks or 0.0)
        total += weights.feedback * (self.feedback or 0.0)
        total += weights.guardrail * self.guardrail
        total -= weights.cost * self.cost_usd
        total -= weights.latency * self.latency_s
        return round(total, 6)


def terms_of(
    run: agent_pb2.RunResponse,
    *,
    checks_passed: int | None = None,
    checks_total: int | None = None,
    latency_s: float | None = None,
) -> RewardTerms:
    """The reward terms of ``run``; latency defaults to the run's own duration."""
    checks = None
    if checks_total:
        checks = (checks_passed or 0) / checks_total
    ratings = [score(f.rating) for f in run.feedback]
    feedback = sum(ratings) / len(ratings) if ratings else None
    guardrail = min((_VERDICT_PENALTY.get(v.verdict, 0.0) for v in run.verdicts), default=0.0)
    if latency_s is None:
        latency_s = run.duration.ToNanoseconds() / 1e9
    return RewardTerms(checks, feedback, guardrail, run.cost_usd, latency_s)


def reward(
    run: agent_pb2.RunResponse,
    weights: RewardWeights | None = None,
    **checks: Any,
) -> float:
    """The reward of ``run`` under ``weights`` (see the module docstring)."""
    return terms_of(run, **checks).reward(weights or RewardWeights())


def parse_weights(items: list[str], base: RewardWeights | None = None) -> RewardWeights:
    """``["cost=10", "latency=0.01"]`` over ``base``; a ValueError names the bad item."""
    values: dict[str, Any] = dict((base or RewardWeights()).as_dict())
    for item in items:
        name, sep, value = item.partition("=")
        try:
            values[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"{item!r}: expected NAME=NUMBER") from None
        if not sep:
            raise ValueError(f"{item!r}: expected NAME=NUMBER")
    return RewardWeights.from_mapping(values, "weight")


def with_rewards(
    lines: Iterable[str], runs: Iterable[agent_pb2.RunResponse], weights: list[str]
) -> Iterator[str]:
    """Feedback export lines with ``reward`` and ``reward_terms`` on each run's chat record."""
    chosen = parse_weights(weights)
    by_id = {run.run_id: run for run in runs}
    for line in lines:
        record = json.loads(line)
        run = by_id.get(record.get("run_id", ""))
        if record.get("kind") == "chat" and run is not None:
            terms = terms_of(run)
            record["reward"] = terms.reward(chosen)
            record["reward_terms"] = asdict(terms)
            record["reward_weights"] = chosen.as_dict()
            line = json.dumps(record, ensure_ascii=False)
        yield line


__all__ = ["RewardTerms", "RewardWeights", "parse_weights", "reward", "terms_of", "with_rewards"]
