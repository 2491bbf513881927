"""`python -m examples.helpdesk`: run the example helpdesk service until SIGINT/SIGTERM."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from examples._serving import run_main
from examples.helpdesk.server import serve


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the helpdesk; prints `helpdesk listening on HOST:PORT` once ready."""
    return run_main("helpdesk", serve, argv, default_port=50064, default_reflection="both")


if __name__ == "__main__":
    sys.exit(main())
