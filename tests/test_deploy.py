"""deploy/ checked without a cluster or a Docker daemon: every manifest against the Kubernetes
API schemas (kubernetes-validate, strict), every overlay rendered by `kubectl kustomize` and
its output checked the same way plus the invariants the README promises (replicas, probes on
the health port, termination grace covering server.grace_s, both Services, the budget, Secret
references only); the Dockerfile linted by hadolint, and its Python layer's install step run
into a fresh venv as the image's build stage runs it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from agentd.config import load_config
from agentd.config.models import StorageConfig
from tests.support.deploy import (
    DEPLOY,
    OVERLAYS,
    SECRETS,
    agentd_container,
    config_of,
    documents,
    find,
    pod_env,
    render,
    tool,
)

ROOT = DEPLOY.parent
# The oldest Kubernetes the manifests are meant for (gRPC probes are GA since 1.27) and the
# newest schemas kubernetes-validate has.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def validate(doc: dict[str, Any], where: str) -> None:
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            name = f"{doc['kind']}/{doc['metadata']['name']}"
            raise AssertionError(f"{where}: {name} fails Kubernetes {version}: {exc}") from None


def kustomizations() -> list[Path]:
    return sorted(DEPLOY.rglob("kustomization.yaml"))


def test_every_listed_resource_validates_and_every_file_is_listed() -> None:
    listed: set[Path] = set()
    for kustomization in kustomizations():
        (spec,) = documents(kustomization)
        here = kustomization.parent
        for entry in spec.get("resources", []):
            path = (here / entry).resolve()
            if path.is_file():
                listed.add(path)
                for doc in documents(path):
                    validate(doc, str(path.relative_to(ROOT)))
        # Patches are partial objects: they are checked in the rendered overlays below.
        listed |= {(here / p["path"]).resolve() for p in spec.get("patches", [])}
        listed.add(kustomization.resolve())
    yaml_files = {p.resolve() for p in DEPLOY.rglob("*.yaml")}
    assert yaml_files - listed == set(), "YAML files no kustomization uses"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_valid_manifests_keeping_the_promises(overlay: str) -> None:
    docs = render(overlay)
    for doc in docs:
        validate(doc, f"kubectl kustomize deploy/overlays/{overlay}")
    assert not [d for d in docs if d["kind"] == "Secret"], "Secrets are referenced, never shipped"

    deployment = find(docs, "Deployment", "agentd")
    spec, pod = deployment["spec"], deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = agentd_container(deployment)
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0

    # The config the pods mount: the generated ConfigMap, at the path `serve --config` reads.
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    configmap = find(docs, "ConfigMap", volume["configMap"]["name"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    config_path = container["args"][container["args"].index("--config") + 1]
    assert config_path == f"{mounts[volume['name']]}/agentd.toml"
    text = configmap["data"]["agentd.toml"]
    config = config_of(text)

    # Probes: kubelet's gRPC probes on the plaintext health port agentd opens.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    health_port = int(config["server"]["health_listen"].rpartition(":")[2])
    assert ports["health"] == health_port
    assert ports["grpc"] == int(config["server"]["listen"].rpartition(":")[2])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == health_port, probe

    # SIGKILL comes only after the preStop pause and the whole drain.
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    needed = int(pre_stop[1]) + float(config["server"]["grace_s"])
    assert pod["terminationGracePeriodSeconds"] >= needed + 5, (pod, config["server"])

    # Services over the same pods: headless (client-side round_robin) and a ClusterIP.
    services = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] in
                ("agentd", "agentd-headless")]  # fmt: skip
    assert {s["spec"].get("clusterIP", "") for s in services} == {"None", ""}
    assert {s["spec"].get("type", "ClusterIP") for s in services} == {"ClusterIP"}
    for service in services:
        assert service["spec"]["selector"].items() <= labels.items()
        assert [p["targetPort"] for p in service["spec"]["ports"]] == ["grpc"]

    budget = find(docs, "PodDisruptionBudget", "agentd")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["maxUnavailable"] < spec["replicas"]

    # Every secret value is a Secret reference; TLS comes from the Secret volume.
    references = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert references <= SECRETS
    (tls,) = [v for v in pod["volumes"] if "secret" in v]
    assert tls["secret"]["secretName"] in SECRETS
    auth = config["server"]["auth"]
    for key in ("tls_cert", "tls_key"):
        assert Path(auth[key]).parent == Path(mounts[tls["name"]]), key
    assert not re.search(r"postgresql://\S+:\S+@", text), "no password in the ConfigMap"

    # $(VAR) in an env value only expands variables defined before it.
    seen: set[str] = set()
    for item in container["env"]:
        for var in re.findall(r"\$\((\w+)\)", str(item.get("value", ""))):
            assert var in seen, f"{item['name']} uses $({var}) before it is defined"
        seen.add(item["name"])

    # Traces and metrics go to a collector over OTLP.
    env = pod_env(container, {("agentd-database", "url"): "postgresql://db/agentd",
                              ("agentd-tokens", "tokens"): "t0k-alice-0123456789abcdef alice",
                              ("agentd-llm", "api-key"): "sk-test"})  # fmt: skip
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http")
    assert "k8s.pod.name=<metadata.name>" in env["OTEL_RESOURCE_ATTRIBUTES"]

    # What the pod would load is a valid config naming a model endpoint and PostgreSQL.
    loaded = load_configmap(text, env, Path(config_path))
    assert loaded.storage.url == "postgresql://db/agentd"
    assert not loaded.uses_embedded_model
    assert loaded.server.auth.bearer_tokens_env == "AGENTD_TOKENS" and "AGENTD_TOKENS" in env

    if overlay == "vllm":
        vllm = find(docs, "Deployment", "vllm")
        service = find(docs, "Service", "vllm")
        (server,) = vllm["spec"]["template"]["spec"]["containers"]
        assert (
            service["spec"]["selector"].items()
            <= vllm["spec"]["template"]["metadata"]["labels"].items()
        )
        base_url = loaded.models["planner"].base_url or ""
        assert base_url == f"http://vllm:{service['spec']['ports'][0]['port']}/v1"
        assert f"--served-model-name={loaded.models['planner'].model}" in server["args"]
        # agentd sends the key vLLM requires.
        keys = [
            e["valueFrom"]["secretKeyRef"] for e in server["env"] if e["name"] == "VLLM_API_KEY"
        ]
        assert keys == [{"name": "agentd-llm", "key": "api-key"}]


def load_configmap(text: str, env: dict[str, str], path: Path) -> Any:
    """load_config on the ConfigMap's text with the pod's environment; the TLS files, mounted
    from a Secret in the pod, are replaced by empty files here (their paths were checked)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / path.name
        config.write_text(text)
        for key in ("TLS_CERT", "TLS_KEY"):
            (Path(tmp) / key).write_text("")
            env = {**env, f"AGENTD_SERVER_AUTH_{key}": str(Path(tmp) / key)}
        return load_config(config, env)


# --- the Dockerfile ---------------------------------------------------------------------------

DOCKERFILE = DEPLOY / "Dockerfile"


def test_dockerfile_lints_clean_and_runs_agentd_unprivileged() -> None:
    result = subprocess.run(
        [tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = DOCKERFILE.read_text()
    final = text.rsplit("\nFROM ", 1)[1]  # the image's own stage
    assert re.search(r"^USER 10001:10001$", final, re.M)
    assert "libgomp1" in final
    config = config_of((DEPLOY / "base" / "agentd.toml").read_text())
    health_port = config["server"]["health_listen"].rpartition(":")[2]
    assert f'"agentd", "health", "--target", "127.0.0.1:{health_port}"' in final
    assert f"AGENTD_SERVER_HEALTH_LISTEN=0.0.0.0:{health_port} " in final
    assert re.search(rf"^EXPOSE 50051 {health_port}$", final, re.M)


def test_the_image_declares_the_one_path_agentd_writes_and_which_model_it_has() -> None:
    """Without hadolint: a read-only root still runs because the SQLite store's default path
    (relative) lands in WORKDIR, which is a VOLUME; the image tells agentd which model it has."""
    final = DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]
    (workdir,) = re.findall(r"^WORKDIR (\S+)$", final, re.M)
    assert re.search(rf'^VOLUME \["{re.escape(workdir)}"\]$', final, re.M)
    default_path = StorageConfig().path
    assert not Path(default_path).is_absolute(), default_path
    assert "path" not in config_of((DEPLOY / "base" / "agentd.toml").read_text())["storage"]
    assert "AGENTD_IMAGE_MODEL=${EMBEDDED_MODEL:-none}" in final
    assert "AGENTD_EMBEDDED_MODEL=/opt/agentd/models/${EMBEDDED_MODEL" in final


def build_stage_copies() -> list[str]:
    build = DOCKERFILE.read_text().split("\nFROM ")[1]
    return [line.split()[1] for line in build.splitlines() if line.startswith("COPY ")]


def test_the_images_python_layer_installs_into_a_fresh_venv(tmp_path: Path) -> None:
    """What the build stage does, here: copy what it COPYs, run deploy/install.sh (no embedded
    model), then use the result: the package (not this checkout) with the PostgreSQL store,
    no llama.cpp, `agentd config check` of the ConfigMap's file and `agentd health`."""
    if shutil.which("python3") is None:
        pytest.skip("python3 is not on PATH")
    src = tmp_path / "src"
    for item in build_stage_copies():
        target = src / item
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / item).is_dir():
            shutil.copytree(ROOT / item, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / item, target)
    venv = tmp_path / "opt" / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PYTHON"] = sys.base_prefix + "/bin/python3"  # the interpreter, not this test's venv
    result = subprocess.run(
        ["sh", str(src / "deploy" / "install.sh"), str(venv)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    python = venv / "bin" / "python"
    probe = (
        "import importlib.util, agentd, psycopg_pool; print(agentd.__file__); "
        "print(importlib.util.find_spec('xllamacpp') is None)"
    )
    out = subprocess.run(
        [str(python), "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0].startswith(str(venv)), out  # installed, not a link to this checkout
    assert out[1] == "True"  # slim: no llama.cpp without EMBEDDED_MODEL

    tls = {}
    for key in ("TLS_CERT", "TLS_KEY"):
        (tmp_path / key).write_text("")
        tls[f"AGENTD_SERVER_AUTH_{key}"] = str(tmp_path / key)
    check = subprocess.run(
        [str(venv / "bin" / "agentd"), "config", "check", str(DEPLOY / "base" / "agentd.toml")],
        env={**env, **tls, "AGENTD_LLM_BASE_URL": "http://vllm:8000/v1", "AGENTD_LLM_MODEL": "m"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert "bearer tokens" in check.stderr and "TLS" in check.stderr
    unreachable = subprocess.run(
        [str(venv / "bin" / "agentd"), "health", "--target", "127.0.0.1:1", "--timeout", "2"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert unreachable.returncode == 3, unreachable.stderr  # the HEALTHCHECK sees "unhealthy"
    assert "unreachable" in unreachable.stderr

    # The wheel ships agentd's own packages only: no top-level `examples` (a name that collides
    # with anything), and the API's commented descriptors that reflection serves.
    site = Path(out[0]).parent.parent
    assert not (site / "examples").exists()
    assert (site / "agentd" / "v1" / "agent.binpb").is_file()
    # The `fast` extra the README recommends for less CPU per run.
    fast = "import uvloop, orjson, aiohttp; print('fast')"
    ran = subprocess.run([str(python), "-c", fast], env=env, capture_output=True, text=True)
    assert ran.stdout == "fast\n", ran.stderr

    # No model in the image and no [llm] base_url: the error says what to do in an image.
    bare = tmp_path / "bare.toml"
    bare.write_text(f'[storage]\npath = "{tmp_path / "runs.db"}"\n')
    serve = subprocess.run(
        [str(venv / "bin" / "agentd"), "serve", "--config", str(bare)],
        env={**env, "AGENTD_IMAGE_MODEL": "none", "AGENTD_EMBEDDED_MODEL": "/nowhere/none.gguf"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert serve.returncode == 2, serve.stderr
    (line,) = serve.stderr.strip().splitlines()
    assert "llm.base_url" in line and "--build-arg EMBEDDED_MODEL=" in line, line
    assert "pip install" not in line and "make setup" not in line, line

    # A model the image's install left beside the venv (VENV/../models/NAME.gguf, verified at
    # build) is reported installed, with its file, though its wheels are not kept.
    from agentd.llm.bundled import MODELS

    smallest = min(MODELS.values(), key=lambda m: m.size)
    models = venv.parent / "models"
    models.mkdir(exist_ok=True)
    with (models / f"{smallest.name}.gguf").open("wb") as sparse:
        sparse.truncate(smallest.size)
    listed = subprocess.run(
        [str(venv / "bin" / "agentd"), "models"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (row,) = [r for r in listed.splitlines() if r.startswith(smallest.name + " ")]
    assert " installed " in row and str(models / f"{smallest.name}.gguf") in row, listed
    others = [r for r in listed.splitlines() if not r.startswith(smallest.name + " ")]
    assert others and all("not installed" in r for r in others), listed


UNWRITABLE = {
    "a directory": lambda tmp: tmp,
    "under a file": lambda tmp: tmp / "file" / "agentd.db",
    "a read-only file system": lambda tmp: Path("/proc/agentd-test.db"),
}


@pytest.mark.parametrize("where", UNWRITABLE)
def test_serve_with_an_unwritable_sqlite_path_fails_in_one_line_naming_storage_path(
    tmp_path: Path, where: str
) -> None:
    """What a read-only root with the default SQLite store meets: one line naming the key and
    the fixes, exit 2, no traceback."""
    (tmp_path / "file").write_text("")
    path = UNWRITABLE[where](tmp_path)
    config = tmp_path / "agentd.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:0"\n[llm]\nbase_url = "http://127.0.0.1:9/v1"\n'
        f'model = "m"\n[storage]\npath = "{path}"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "agentd", "serve", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("agentd: cannot start: storage.path: "), line
    assert str(path) in line and "writable" in line and "storage.url" in line, line


def test_the_wheel_ships_agentd_and_toolgen_only(tmp_path: Path) -> None:
    """`pip wheel` of a checkout (examples/ included): no top-level `examples` package in it,
    and the commented descriptors reflection serves are."""
    src = tmp_path / "src"
    src.mkdir()
    for item in ("pyproject.toml", "README.md", "toolgen", "agentd", "examples"):
        if (ROOT / item).is_dir():
            shutil.copytree(ROOT / item, src / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / item, src / item)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(src),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("agentd-*.whl")
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.startswith("agentd-")}
    assert tops == {"agentd", "toolgen"}, tops
    assert "agentd/v1/agent.binpb" in names
