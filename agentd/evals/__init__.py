"""Evaluations: run a task suite against agentd deployments, check and score every run.

``agentd eval SUITE --config A.toml --config B.toml`` is the command; this package is what
it uses, importable for notebooks and CI scripts.
"""

from agentd.evals.checks import CheckResult, check_run
from agentd.evals.reward import RewardTerms, RewardWeights, reward, terms_of
from agentd.evals.runner import Deployment, RunResult, evaluate, label_deployments
from agentd.evals.suite import Case, Suite, SuiteError, load_suite, parse_suite

__all__ = [
    "Case",
    "CheckResult",
    "Deployment",
    "RewardTerms",
    "RewardWeights",
    "RunResult",
    "Suite",
    "SuiteError",
    "check_run",
    "evaluate",
    "label_deployments",
    "load_suite",
    "parse_suite",
    "reward",
    "terms_of",
]
