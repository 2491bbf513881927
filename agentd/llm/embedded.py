"""The embedded default model: llama.cpp in-process (``xllamacpp``) serving a bundled GGUF.

With no endpoint configured, agentd starts llama.cpp's own OpenAI-compatible HTTP server inside
the daemon process on 127.0.0.1, so the rest of agentd talks to it exactly like to any other
endpoint. Which weights it loads is ``[embedded] model`` (see ``agentd.llm.bundled``). Native
tool calls never come back from these small models, so it is always used in ``structured``
mode, where every reply is decoded under a grammar compiled from a JSON Schema.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import httpx2

from agentd.llm.bundled import DEFAULT_MODEL, ModelFileError, resolve_model

__all__ = [
    "DEFAULT_MODEL",
    "EmbeddedModel",
    "EmbeddedModelError",
    "default_threads",
]

_INSTALL_HINT = (
    "install the runtime with `pip install xllamacpp==2026.10.11549` (or `make setup`), "
    "or set llm.base_url to an OpenAI-compatible endpoint"
)


# In agentd's image built without EMBEDDED_MODEL (deploy/Dockerfile sets AGENTD_IMAGE_MODEL=none)
# pip and make are the wrong advice: the image is rebuilt, or pointed at an endpoint.
_IMAGE_HINT = (
    "this image was built without a model: set llm.base_url (AGENTD_LLM_BASE_URL) to an "
    "OpenAI-compatible endpoint, or build the image with "
    "`--build-arg EMBEDDED_MODEL=NAME` (a name of `agentd models`)"
)


def install_hint() -> str:
    """What to do when llama.cpp's runtime is missing, where agentd runs."""
    return _IMAGE_HINT if os.environ.get("AGENTD_IMAGE_MODEL") == "none" else _INSTALL_HINT


class EmbeddedModelError(RuntimeError):
    """The embedded model cannot start; the message says what to install or change."""


def default_threads() -> int:
    """Two llama.cpp threads where there are two cores (one on one core).

    Measured on 2 cores (bench embedded_decoding, six ledger dev cases, 2026-12-07, quiet):
    median run 8.5 s with 2 threads against 14.8 s with 1. The cost: llama.cpp's threads meet
    at a barrier after every op, so on a machine whose cores are busy with other work a call
    can stall (seen: 5-100 s with 2 threads where 1 took 0.7 s); set ``[embedded] threads = 1``
    there.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(2, cores or 1))


class EmbeddedModel:
    """llama.cpp's server on 127.0.0.1 with a free port, loaded with a bundled or local GGUF.

    Use ``async with EmbeddedModel() as model:`` or ``await start()`` / ``await stop()``;
    ``base_url`` and ``model`` are what an OpenAI client needs. ``model`` is a name from
    ``agentd.llm.bundled.MODELS`` or the path of a ``.gguf`` file.

    ``parallel`` slots each keep their own prompt cache: the planner, executor and responder
    prompts start differently, and llama.cpp sends a request to the slot whose cached prompt
    shares the longest prefix with it, so with one slot per role the planner's static prefix
    (instructions and catalog) stays cached between runs.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        threads: int | None = None,
        n_ctx: int = 4096,
        parallel: int = 3,
        ready_timeout_s: float = 60.0,
    ) -> None:
        self.requested = model
        self.model = model  # the alias llama.cpp answers to; a file's stem for a path
        self.model_path: Path | None = None
        self.threads = threads or default_threads()
        self.n_ctx = n_ctx
        self.parallel = parallel
        self.ready_timeout_s = ready_timeout_s
        self.load_time_s: float | None = None
        self._server: Any = None
        self._address = ""

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` once started."""
        if not self._address:
            raise EmbeddedModelError("the embedded model is not started")
        return f"{self._address}/v1"

    @property
    def running(self) -> bool:
        """True between a successful ``start`` and ``stop``."""
        return self._server is not None

    async def start(self) -> None:
        """Load the model and wait until ``/health`` answers 200 (bounded by ready_timeout_s)."""
        if self._server is not None:
            return
        started = time.perf_counter()
        # Server() blocks while the weights load; keep the event loop free meanwhile.
        self._server = await asyncio.to_thread(self._create_server)
        self._address = str(self._server.listening_address).rstrip("/")
        try:
            await _wait_healthy(self._address, started + self.ready_timeout_s)
        except BaseException:
            await self.stop()
            raise
        self.load_time_s = time.perf_counter() - started

    async def stop(self) -> None:
        """Shut the server down; dropping the last reference stops llama.cpp's main loop."""
        holder = [self._server] if self._server is not None else []
        self._server = None
        self._address = ""
        if holder:
            # Hand over the only reference so the destructor joins its threads off the loop.
            await asyncio.to_thread(holder.clear)

    async def __aenter__(self) -> EmbeddedModel:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _create_server(self) -> Any:
        try:
            import xllamacpp
        except ImportError as exc:
            raise EmbeddedModelError(f"cannot import xllamacpp ({exc}): {install_hint()}") from exc
        try:
            self.model, path = resolve_model(self.requested)
        except ModelFileError as exc:
            raise EmbeddedModelError(str(exc)) from exc
        self.model_path = path
        try:
            return xllamacpp.Server(self._params(xllamacpp, path))
        except Exception as exc:
            raise EmbeddedModelError(f"llama.cpp could not load {path}: {exc}") from exc

    def _params(self, xllamacpp: Any, path: Path) -> Any:
        """llama.cpp's server parameters (bench/decoding.py varies them)."""
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.model_alias = {self.model}
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # the OS picks a free port
        params.n_ctx = self.n_ctx * self.parallel  # llama.cpp splits n_ctx across slots
        params.n_parallel = self.parallel
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.verbosity = -1  # llama.cpp logs every request to stderr otherwise
        return params


async def _wait_healthy(address: str, deadline: float) -> None:
    """Poll ``GET /health`` until 200: ``/v1/models`` answers 503 while the model loads."""
    delay = 0.01
    last = "no answer"
    async with httpx2.AsyncClient(base_url=address, timeout=2.0, trust_env=False) as client:
        while True:
            try:
                status = (await client.get("/health")).status_code
                if status == 200:
                    return
                last = f"HTTP {status}"
            except httpx2.HTTPError as exc:
                last = repr(exc)
            if time.perf_counter() + delay > deadline:
                raise EmbeddedModelError(
                    f"the embedded model at {address} was not ready before the deadline "
                    f"(last /health: {last})"
                )
            await asyncio.sleep(delay)  # readiness poll with backoff, bounded by the deadline
            delay = min(delay * 2, 0.5)
