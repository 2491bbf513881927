"""`python -m examples.people`: run the example directory service until SIGINT/SIGTERM."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from examples._serving import run_main
from examples.people.server import serve


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the directory; prints `people listening on HOST:PORT` once ready."""
    return run_main("people", serve, argv, default_port=50063, default_reflection="both")


if __name__ == "__main__":
    sys.exit(main())
