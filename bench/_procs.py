"""Child processes for benchmarks: start, wait for their readiness line, stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

_ADDRESS = re.compile(r"listening on (\S+:\d+)")
ROOT = Path(__file__).resolve().parent.parent


@contextlib.asynccontextmanager
async def child(
    args: Sequence[str],
    *,
    ready_timeout_s: float = 60.0,
    stderr_path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """Run ``python ARGS`` until it prints "... listening on HOST:PORT"; yields (proc, address)."""
    stderr = stderr_path.open("wb") if stderr_path else subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    try:
        assert proc.stdout is not None
        address = ""
        async with asyncio.timeout(ready_timeout_s):
            while not address:
                line = await proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"{' '.join(args)} exited before it was ready")
                match = _ADDRESS.search(line.decode(errors="replace"))
                if match:
                    address = match.group(1)
        yield proc, address
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if stderr_path and not isinstance(stderr, int):
            stderr.close()
