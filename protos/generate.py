"""Generate the Python code for every .proto under protos/ (run by `make protos`).

The output lands beside the packages that use it: `protos/agentd/v1/agent.proto`
becomes `agentd/v1/agent_pb2.py`, and so on. The generated code is committed, so
users never need protoc; `--check` regenerates into a temporary folder and fails
when the committed files differ, which is how CI catches a forgotten `make protos`.
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
DESCRIPTOR_SET = Path("examples/descriptors.binpb")
# agentd's own API with its comments (source_code_info), which the generated code leaves out:
# agentd serves it over reflection so grpcurl and other reflection clients show the docs.
AGENTD_DESCRIPTOR_SET = Path("agentd/v1/agent.binpb")


def _include_dirs() -> list[str]:
    tools_spec = importlib.util.find_spec("grpc_tools")
    assert tools_spec and tools_spec.submodule_search_locations
    well_known = Path(tools_spec.submodule_search_locations[0]) / "_proto"
    # googleapis-common-protos ships google/api/*.proto and google/type/*.proto.
    api_spec = importlib.util.find_spec("google.api")
    assert api_spec and api_spec.submodule_search_locations
    googleapis = Path(api_spec.submodule_search_locations[0]).parent.parent
    return [str(PROTOS), str(well_known), str(googleapis)]


def generate(out: Path) -> list[Path]:
    sources = sorted(p.relative_to(PROTOS) for p in PROTOS.rglob("*.proto"))
    args = ["grpc_tools.protoc", *(f"-I{d}" for d in _include_dirs())]
    args += [f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}"]
    args += [str(s) for s in sources]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    # The example services' descriptors with their comments: Python servers send none over
    # reflection, so examples/agentd.toml names this file to give the tools descriptions.
    examples = [str(s) for s in sources if s.parts[0] == "examples"]
    descriptor_set = out / DESCRIPTOR_SET
    descriptor_set.parent.mkdir(parents=True, exist_ok=True)
    set_args = ["grpc_tools.protoc", *(f"-I{d}" for d in _include_dirs())]
    set_args += ["--include_imports", "--include_source_info"]
    set_args += [f"--descriptor_set_out={descriptor_set}", *examples]
    if protoc.main(set_args) != 0:
        raise SystemExit("protoc failed on the examples' descriptor set")
    # Only agentd's own files: their imports (well-known types) come from the runtime's pool.
    own = [str(s) for s in sources if s.parts[0] == "agentd"]
    own_args = ["grpc_tools.protoc", *(f"-I{d}" for d in _include_dirs())]
    own_args += ["--include_source_info", f"--descriptor_set_out={out / AGENTD_DESCRIPTOR_SET}"]
    if protoc.main([*own_args, *own]) != 0:
        raise SystemExit("protoc failed on agentd's descriptor set")
    generated = sorted(p.relative_to(out) for p in out.rglob("*_pb2*.py*"))
    return [*generated, DESCRIPTOR_SET, AGENTD_DESCRIPTOR_SET]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp))
        stale = [
            f
            for f in files
            if not (ROOT / f).exists() or not filecmp.cmp(Path(tmp) / f, ROOT / f, shallow=False)
        ]
        if ns.check:
            if stale:
                print(
                    "generated code is stale, run `make protos`: " + ", ".join(map(str, stale)),
                    file=sys.stderr,
                )
                return 1
            print(f"generated code is up to date ({len(files)} files)")
            return 0
        for f in files:
            (ROOT / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(tmp) / f, ROOT / f)
            init = (ROOT / f).parent / "__init__.py"
            if f.suffix != ".binpb" and not init.exists():
                init.touch()
        print(f"wrote {len(files)} files ({len(stale)} changed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
