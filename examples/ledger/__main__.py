"""`python -m examples.ledger`: run the example ledger service until SIGINT/SIGTERM."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from examples._serving import run_main
from examples.ledger.server import serve


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the ledger; prints `ledger listening on HOST:PORT` once ready."""
    return run_main("ledger", serve, argv, default_port=50051, default_reflection="both")


if __name__ == "__main__":
    sys.exit(main())
