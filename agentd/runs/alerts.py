"""Alerts on negative feedback, guardrail flags and blocks, and failed runs.

Each alert goes to the log and to every configured webhook as a JSON POST. Delivery runs
in the background with bounded retries and exponential backoff, so a slow or failing sink
never delays or fails a run or a feedback call.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx2
import structlog

from agentd.config import AlertsConfig

log = structlog.get_logger("agentd.runs.alerts")
_MAX_BACKOFF_S = 30.0


@dataclass
class Alert:
    run_id: str
    trace_id: str
    reason: str  # failed_run, guardrail_flag, guardrail_block, negative_feedback
    detail: str = ""
    rating: int | None = None
    time: float = field(default_factory=time.time)


async def post_json(url: str, payload: dict[str, Any], timeout_s: float) -> int:
    """POST ``payload`` to ``url``; returns the HTTP status. Raises ``httpx2.HTTPError`` (and
    ``InvalidURL``) on transport trouble. URL credentials become an Authorization header and
    the standard proxy variables apply, as with any HTTP client."""
    headers = {"User-Agent": "agentd"}
    # trust_env: HTTP(S)_PROXY / NO_PROXY (and SSL_CERT_FILE) from the environment apply.
    async with httpx2.AsyncClient(timeout=timeout_s, headers=headers, trust_env=True) as client:
        response = await client.post(url, json=payload)
    return response.status_code


class Alerter:
    """Sends alerts to the log and the webhooks, in background tasks."""

    def __init__(self, config: AlertsConfig) -> None:
        self.config = config
        self.tasks: set[asyncio.Task[None]] = set()
        self.delivered = 0  # webhook deliveries that got a 2xx (for tests and metrics)

    def send(self, alert: Alert) -> None:
        """Queue ``alert``; returns at once and never raises."""
        if self.config.log:
            log.warning("alert", **asdict(alert))
        for url in self.config.webhooks:
            task = asyncio.get_running_loop().create_task(self._deliver(url, alert))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _deliver(self, url: str, alert: Alert) -> None:
        payload = asdict(alert)
        delay = self.config.backoff_s
        for attempt in range(self.config.retries + 1):
            try:
                status = await post_json(url, payload, self.config.timeout_s)
                if 200 <= status < 300:
                    self.delivered += 1
                    return
                problem = f"HTTP {status}"
            except (httpx2.HTTPError, httpx2.InvalidURL, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < self.config.retries:
                log.info("alert delivery retried", url=url, problem=problem, attempt=attempt + 1)
                await asyncio.sleep(delay)  # backoff between attempts, not a test wait
                delay = min(delay * 2, _MAX_BACKOFF_S)
            else:
                log.error("alert not delivered", url=url, problem=problem, run_id=alert.run_id)

    async def close(self, grace_s: float = 2.0) -> None:
        """Give pending deliveries ``grace_s`` to finish, then cancel them."""
        if not self.tasks:
            return
        _, pending = await asyncio.wait(set(self.tasks), timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def run_alerts(
    config: AlertsConfig, run_id: str, trace_id: str, status: str, error: str, verdicts: list[Any]
) -> list[Alert]:
    """The alerts a finished run raises: a failure, and guardrail flags or blocks."""
    alerts: list[Alert] = []
    if config.on_failed_run and status == "failed":
        alerts.append(Alert(run_id, trace_id, "failed_run", error))
    if config.on_guardrail:
        for verdict in verdicts:
            if verdict.verdict in ("flag", "block"):
                detail = f"{verdict.stage} by {verdict.guard}: {'; '.join(verdict.reasons)}"
                alerts.append(Alert(run_id, trace_id, f"guardrail_{verdict.verdict}", detail))
    return alerts


__all__ = ["Alert", "Alerter", "post_json", "run_alerts"]
