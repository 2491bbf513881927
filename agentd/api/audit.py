"""Every AgentService call audited once, in one place: an interceptor around each handler.

One ``audit`` log line per call: who (the authenticated principal), what (the method), which
run, how it ended (never a credential). Refusals included: the handler raises a domain error
(agentd/runs/errors.py) or a bad field, and it is turned into its status here
(agentd/api/errors.py), so handlers hold no ``abort``. Calls the bearer check refuses are
audited by it (agentd/api/server.py), before any handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from agentd.api import errors
from agentd.api.identity import Authenticator, Principal
from agentd.api.requests import metadata

log = structlog.get_logger("agentd.api.service")


@dataclass
class Audit:
    """One call's audit line: who, what, which run, how it ended (never a credential)."""

    principal: Principal
    method: str
    run_id: str = ""
    outcome: str = "OK"


_current: contextvars.ContextVar[Audit] = contextvars.ContextVar("agentd_audit")


def current() -> Audit:
    """The audit of the call this handler serves."""
    return _current.get()


class Auditor(grpc.aio.ServerInterceptor):
    """Audits the calls of the methods under ``prefix`` (``/agentd.v1.AgentService/``)."""

    def __init__(self, authenticator: Authenticator, prefix: str) -> None:
        self.authenticator = authenticator
        self.prefix = prefix

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        path = details.method or ""
        if handler is None or not path.startswith(self.prefix) or handler.request_streaming:
            return handler
        method = path.rpartition("/")[2]
        if handler.unary_unary is not None:
            inner: Any = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with self._audited(method, context):
                    return await inner(request, context)

            return handler._replace(unary_unary=unary)  # type: ignore[attr-defined,no-any-return]
        if handler.unary_stream is not None:
            inner_stream: Any = handler.unary_stream

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                async with self._audited(method, context):
                    async for message in inner_stream(request, context):
                        yield message

            return handler._replace(unary_stream=stream)  # type: ignore[attr-defined,no-any-return]
        return handler

    @contextlib.asynccontextmanager
    async def _audited(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        """The call's audit, current while it runs, logged once however it ends."""
        audit = self._begin(method, context)
        try:
            yield
        except BaseException as exc:
            await self._failed(audit, exc, context)
            raise
        finally:
            _log(audit)

    def _begin(self, method: str, context: grpc.aio.ServicerContext) -> Audit:
        principal = self.authenticator.principal(
            metadata(context.invocation_metadata()), context.auth_context() or {}
        )
        audit = Audit(principal, method)
        _current.set(audit)
        return audit

    @staticmethod
    async def _failed(audit: Audit, exc: BaseException, context: grpc.aio.ServicerContext) -> None:
        """Record how the call ended; our errors become their status (and abort)."""
        if isinstance(exc, asyncio.CancelledError):
            if audit.outcome == "OK":
                audit.outcome = "CANCELLED"
            return
        found = errors.entry(exc)
        if found is not None:
            audit.outcome = found.code.name
            if not audit.run_id:
                audit.run_id = getattr(exc, "run_id", "")
            if isinstance(exc, errors.StoreUnavailable):
                # Nothing is acknowledged that the store did not keep: the caller may retry.
                log.warning("store unavailable", method=audit.method, run_id=audit.run_id or None)
            await errors.abort(context, exc)
        if audit.outcome == "OK":
            audit.outcome = getattr(context.code(), "name", None) or type(exc).__name__


def _log(audit: Audit) -> None:
    log.info(
        "audit",
        principal=audit.principal.id,
        method=audit.method,
        run_id=audit.run_id or None,
        outcome=audit.outcome,
    )
