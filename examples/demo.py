"""``make demo``: start everything on free ports, run a few tasks, show them, stop.

Uses the model the config names (the embedded one by default). Each task is sent
through ``RunStream`` and printed as ``agentd run`` prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import tempfile
import time

import grpc

from agentd import logs
from agentd.cli import show_event, show_final
from agentd.config import load_config
from agentd.server import Daemon
from agentd.v1 import agent_pb2, agent_pb2_grpc
from examples.calculator.server import serve as serve_calculator
from examples.ledger.server import serve as serve_ledger

TASKS = [
    ("Evaluate the RPN expression 3 4 + 5 * with the calculator.", ["CalculatorService_*"]),
    ("Get the vendor with id ven_001 and tell me its phone number.", ["LedgerService_GetVendor"]),
    ("Find vendors matching 'coffee'.", ["LedgerService_SearchVendors"]),
]


async def main(config_path: str) -> int:
    config = load_config(config_path)
    logs.configure("warning", config.logging.format)
    ledger = await serve_ledger(0, reflection="v1")
    calculator = await serve_calculator(0, reflection="v1alpha")
    addresses = {"ledger": ledger.address, "calculator": calculator.address}
    upstreams = tuple(
        dataclasses.replace(u, target=addresses.get(u.name, u.target)) for u in config.upstreams
    )
    with tempfile.TemporaryDirectory() as tmp:
        config = dataclasses.replace(
            config,
            upstreams=upstreams,
            server=dataclasses.replace(config.server, listen="127.0.0.1:0"),
            storage=dataclasses.replace(config.storage, path=f"{tmp}/demo.db"),
        )
        daemon = Daemon(config, env=dict(os.environ))
        started = time.perf_counter()
        await daemon.start()
        print(f"agentd up in {time.perf_counter() - started:.1f} s on {daemon.address}\n")
        try:
            async with grpc.aio.insecure_channel(daemon.address) as channel:
                stub = agent_pb2_grpc.AgentServiceStub(channel)
                for task, tools in TASKS:
                    print(f"━━ {task}")
                    request = agent_pb2.RunRequest(task=task, tools=tools)
                    metadata = (("authorization", "Bearer demo-user"),)
                    async for event in stub.RunStream(request, metadata=metadata, timeout=300):
                        if event.HasField("final"):
                            show_final(event.final)
                        else:
                            show_event(event)
                    print()
        finally:
            await daemon.stop(grace=0)
            await ledger.stop(None)
            await calculator.stop(None)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="examples/agentd.toml", help="agentd config file")
    raise SystemExit(asyncio.run(main(parser.parse_args().config)))
