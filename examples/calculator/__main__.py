"""`python -m examples.calculator`: run the example calculator service until SIGINT/SIGTERM."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from examples._serving import run_main
from examples.calculator.server import serve


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the calculator; prints `calculator listening on HOST:PORT` once ready."""
    return run_main("calculator", serve, argv, default_port=50052, default_reflection="both")


if __name__ == "__main__":
    sys.exit(main())
