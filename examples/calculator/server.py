"""The example `CalculatorService`: RPN arithmetic over grpc.aio."""

from __future__ import annotations

from typing import Any

import grpc

from examples._serving import Reflection, RunningServer, abort, invalid, start_server
from examples.calculator.rpn import RpnError, evaluate
from examples.calculator.v1 import calculator_pb2, calculator_pb2_grpc

SERVICE_NAME: str = calculator_pb2.DESCRIPTOR.services_by_name["CalculatorService"].full_name
DEFAULT_PRECISION = 6
MAX_PRECISION = 20


class CalculatorServicer(calculator_pb2_grpc.CalculatorServiceServicer):
    """Evaluates RPN expressions; malformed input fails with INVALID_ARGUMENT."""

    async def Evaluate(
        self,
        request: calculator_pb2.EvaluateRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> calculator_pb2.EvaluateResponse:
        """Evaluate `expression` and format it with `precision` digits (6 when unset)."""
        precision = request.precision if request.HasField("precision") else DEFAULT_PRECISION
        if not 0 <= precision <= MAX_PRECISION:
            await abort(
                context,
                invalid(f"precision must be between 0 and {MAX_PRECISION}, got {precision}"),
            )
        try:
            result = evaluate(request.expression)
        except RpnError as error:
            await abort(context, invalid(f"expression: {error}"))
        return calculator_pb2.EvaluateResponse(
            value=result.value,
            formatted=f"{result.value:.{precision}f}",
            steps=result.steps,
        )


class CalculatorServer(RunningServer[CalculatorServicer]):
    """A started calculator server."""


async def serve(
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    reflection: Reflection = "both",
    latency_s: float = 0.0,
    require_token: str | None = None,
) -> CalculatorServer:
    """Start the calculator with health checking and reflection; returns once serving."""
    return await start_server(
        CalculatorServer,
        CalculatorServicer(),
        service_name=SERVICE_NAME,
        add_to_server=calculator_pb2_grpc.add_CalculatorServiceServicer_to_server,
        port=port,
        host=host,
        reflection=reflection,
        latency_s=latency_s,
        require_token=require_token,
    )
