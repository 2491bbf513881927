"""``make run``: the example services and agentd in one process, until Ctrl-C.

Starts the ledger (reflection v1 only) and the calculator (reflection v1alpha
only) on the addresses the config names, then agentd itself, and prints how to
call it. With no model endpoint configured agentd loads the embedded model.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from agentd.api.server import Daemon
from agentd.config import ConfigError, load_config
from agentd.telemetry import logs
from examples.calculator.server import serve as serve_calculator
from examples.ledger.server import serve as serve_ledger


def _port(target: str) -> int:
    return int(target.rpartition(":")[2])


async def main(config_path: str) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"run_all: {exc}", file=sys.stderr)
        return 2
    logs.configure(config.logging.level, config.logging.format)
    upstreams = {u.name: u for u in config.upstreams}
    ledger = await serve_ledger(_port(upstreams["ledger"].target), reflection="v1")
    calculator = await serve_calculator(_port(upstreams["calculator"].target), reflection="v1alpha")
    daemon = Daemon(config, env=dict(os.environ))
    try:
        await daemon.start()
        model = (
            f"the embedded {config.embedded.model} model"
            if config.uses_embedded_model
            else "your endpoint"
        )
        print(
            f"\nagentd is listening on {daemon.address} with {len(daemon.catalog.tools if daemon.catalog else {})} tools,"
            f" planning with {model}.\n"
            f"ledger on {ledger.address}, calculator on {calculator.address}.\n\n"
            "In another terminal:\n"
            "  .venv/bin/agentd tools\n"
            '  .venv/bin/agentd run "Evaluate the RPN expression 3 4 + 5 * with the calculator."\n'
            '  .venv/bin/agentd run "What is the phone number of vendor ven_001?" '
            '-H "authorization: Bearer demo"\n\n'
            "Ctrl-C stops everything.",
            flush=True,
        )
        await daemon.serve_forever()
    finally:
        await daemon.stop(grace=1)
        await ledger.stop(None)
        await calculator.stop(None)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="examples/agentd.toml", help="agentd config file")
    args = parser.parse_args()
    try:
        raise SystemExit(asyncio.run(main(args.config)))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
