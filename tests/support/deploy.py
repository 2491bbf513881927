"""Reading deploy/: the kustomize base as files, rendered overlays, and what a pod would run.

The deploy tests and the two-replica test both take the config and the environment of agentd's
container from here, so they test the shape the manifests really have.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BASE = DEPLOY / "base"
OVERLAYS = sorted(p.name for p in (DEPLOY / "overlays").iterdir() if p.is_dir())
# The Secrets the manifests reference (README "Deploying"); none is created by them.
SECRETS = {"agentd-database", "agentd-tokens", "agentd-tls", "agentd-llm", "vllm-hf-token"}


def tool(name: str) -> str:
    """The pinned binary from `make deploy-tools` (this venv's bin), else one on PATH; or skip
    naming the missing tool."""
    pinned = Path(sys.executable).parent / name
    if pinned.is_file() and os.access(pinned, os.X_OK):
        return str(pinned)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed: `make deploy-tools` installs it (CI does)")
    return found


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def render(overlay: str) -> list[dict[str, Any]]:
    """`kubectl kustomize deploy/overlays/OVERLAY`, as the documents it prints."""
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(DEPLOY / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def agentd_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert container["name"] == "agentd"
    return container


def base_deployment() -> dict[str, Any]:
    (deployment,) = documents(BASE / "deployment.yaml")
    return deployment


def base_config_text() -> str:
    return (BASE / "agentd.toml").read_text()


def config_of(text: str) -> dict[str, Any]:
    return tomllib.loads(text)


def pod_env(container: dict[str, Any], secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: literal values with $(VAR)
    expanded from earlier entries, Secret keys from ``secrets`` (a missing optional one is
    left out), downward-API fields as placeholders."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            env[name] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), str(item["value"]))
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            key = (ref["name"], ref["key"])
            if key in secrets:
                env[name] = secrets[key]
            elif not ref.get("optional", False):
                raise KeyError(f"{name}: the test gives no value for Secret {key}")
        elif "fieldRef" in source:
            env[name] = f"<{source['fieldRef']['fieldPath']}>"
    return env
