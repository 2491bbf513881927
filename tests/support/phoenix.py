"""A throwaway Arize Phoenix server on 127.0.0.1, from its own venv (`make phoenix`).

arize-phoenix has a few hundred dependencies, so it lives in ``.venv-phoenix`` and never shares
agentd's: the tests start ``phoenix serve`` from there as a child process with free ports and
a temporary working dir (its SQLite database), and talk to it only over HTTP: OTLP in, its REST
and GraphQL APIs out. ``AGENTD_PHOENIX_VENV`` names another venv holding arize-phoenix.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx  # the HTTP client the openai SDK uses (httpx's API)

ROOT = Path(__file__).resolve().parents[2]


def phoenix_command() -> list[str] | None:
    """``phoenix serve`` of the Phoenix venv, or None when that venv is absent."""
    venv = Path(os.environ.get("AGENTD_PHOENIX_VENV") or ROOT / ".venv-phoenix")
    binary = venv / "bin" / "phoenix"
    return [str(binary), "serve"] if binary.exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Phoenix:
    command: list[str]
    workdir: Path
    port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / "phoenix.log"

    def start(self, timeout_s: float = 180) -> None:
        """Start the server and wait until /healthz answers (its first start migrates a DB)."""
        env = {
            **os.environ,
            "PHOENIX_WORKING_DIR": str(self.workdir),
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.port),
            "PHOENIX_GRPC_PORT": str(self.grpc_port),
            "PHOENIX_TELEMETRY_ENABLED": "false",  # no usage pings from a test
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",  # its UI loads no web fonts
        }
        # Our own OTEL_* settings are for agentd, not for Phoenix's server.
        env = {k: v for k, v in env.items() if not k.startswith("OTEL_")}
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, env=env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"phoenix exited {self.process.returncode}: {self.tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"phoenix did not answer in {timeout_s} s: {self.tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def spans(self, project: str, trace_id: str) -> list[dict[str, Any]]:
        """Every span of ``trace_id`` as Phoenix stored it (REST ``/v1/projects/.../spans``)."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"trace_id": trace_id, "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            response = httpx.get(f"{self.url}/v1/projects/{project}/spans", params=params)
            if response.status_code == 404:  # no span of the project has arrived yet
                return []
            response.raise_for_status()
            body = response.json()
            found += body["data"]
            cursor = body.get("next_cursor")
            if not cursor:
                return found

    def wait_for_spans(
        self, project: str, trace_id: str, names: set[str], timeout_s: float = 60
    ) -> list[dict[str, Any]]:
        """The trace's spans once all of ``names`` are there (Phoenix inserts in batches)."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.spans(project, trace_id)
            if names <= {s["name"] for s in spans} or time.monotonic() > deadline:
                return spans
            time.sleep(0.5)

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=30
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        assert not body.get("errors"), body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    def project_id(self, name: str) -> str:
        response = httpx.get(f"{self.url}/v1/projects/{name}")
        response.raise_for_status()
        return str(response.json()["data"]["id"])

    def trace_url(self, project: str, trace_id: str, selected_span: str = "") -> str:
        """The UI's trace view (the span tree, ``selected_span`` opened on the right)."""
        url = f"{self.url}/projects/{self.project_id(project)}/traces/{trace_id}"
        return f"{url}?selectedSpanNodeId={selected_span}" if selected_span else url


def screenshot(url: str, path: Path, *, width: int = 1600, height: int = 1000) -> None:
    """A PNG of ``url`` from headless Chromium (Debian's ``chromium`` package)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise RuntimeError("no chromium on PATH: apt-get install chromium")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                "--no-first-run", "--disable-background-networking", f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                # --no-sandbox: Chromium will not sandbox as root. Virtual time runs until the page's requests settle (or 20 s of it pass).
                "--virtual-time-budget=20000", f"--screenshot={path}", url,
            ],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
