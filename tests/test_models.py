"""The offline model registry: bundled packages, checksum verification, base assembly,
resolution order and the errors a user sees when a model is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from malsori import ModelIntegrityError, ModelNotFoundError, list_models, resolve_model
from malsori.models import BUNDLED, sha256_file, verify_bundled


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("MALSORI_CACHE_DIR", str(cache))
    monkeypatch.setenv("MALSORI_MODELS_DIR", str(tmp_path / "models"))
    return cache


def test_bundled_tiny_en_resolves_and_verifies(private_cache: Path) -> None:
    resolved = resolve_model("tiny.en")
    assert resolved.source == "bundled"
    model_bin = resolved.path / "model.bin"
    assert model_bin.stat().st_size == BUNDLED["tiny.en"].size
    assert sha256_file(model_bin) == BUNDLED["tiny.en"].sha256
    assert (private_cache / "verified.json").is_file()  # verified once, recorded


def _corrupt_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    model_bin = dst / "model.bin"
    with open(model_bin, "r+b") as fh:
        fh.seek(model_bin.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))
    return dst


def test_corrupted_model_bin_is_refused(private_cache: Path, tmp_path: Path) -> None:
    spec = BUNDLED["tiny.en"]
    broken = _corrupt_copy(spec.locate(spec), tmp_path / "broken")
    bad_spec = replace(spec, locate=lambda _spec: broken)
    with pytest.raises(ModelIntegrityError, match=r"corrupted.*sha256.*--force-reinstall"):
        verify_bundled(bad_spec, broken)


def test_size_change_triggers_reverification(private_cache: Path, tmp_path: Path) -> None:
    spec = BUNDLED["tiny.en"]
    copy = tmp_path / "copy"
    shutil.copytree(spec.locate(spec), copy)
    verify_bundled(spec, copy)  # good copy: verified and recorded
    with open(copy / "model.bin", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelIntegrityError, match="expected 75537502 bytes"):
        verify_bundled(spec, copy)


def test_base_is_assembled_once_even_when_processes_race(private_cache: Path) -> None:
    code = "from malsori import resolve_model; print(resolve_model('base').path)"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    paths = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(paths) == 1
    model_dir = Path(paths.pop())
    assert model_dir.is_relative_to(private_cache)
    assert sha256_file(model_dir / "model.bin") == BUNDLED["base"].sha256
    assert {"config.json", "tokenizer.json", "vocabulary.txt"} <= {
        p.name for p in model_dir.iterdir()
    }
    assert not [p for p in model_dir.iterdir() if p.name.endswith(".tmp")]
    # A corrupted assembled copy is noticed (mtime changed) and re-assembled from the parts.
    with open(model_dir / "model.bin", "r+b") as fh:
        fh.write(b"XXXX")
    assert sha256_file(resolve_model("base").path / "model.bin") == BUNDLED["base"].sha256


def test_unknown_model_error_lists_every_place_tried(private_cache: Path) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("medium")
    msg = str(err.value)
    assert "'medium' is not available offline" in msg
    assert "bundled packages" in msg
    assert str(private_cache.parent / "models" / "medium") in msg
    assert "Hugging Face cache" in msg and "Systran/faster-whisper-medium" in msg
    assert "download: not attempted" in msg
    with pytest.raises(ModelNotFoundError, match="not a known model name"):
        resolve_model("gigantic")


def test_explicit_directory_and_user_models_dir(private_cache: Path, tmp_path: Path) -> None:
    spec = BUNDLED["tiny.en"]
    user_model = tmp_path / "models" / "my-tiny"
    shutil.copytree(spec.locate(spec), user_model)
    assert resolve_model(str(user_model)).source == "local"
    assert resolve_model("my-tiny").source == "user"
    names = {row.name: row for row in list_models()}
    assert names["my-tiny"].status == "user"
    assert names["tiny.en"].status == "bundled" and names["tiny.en"].checksum == "ok"
    assert names["large-v3"].status == "not available offline"
    with pytest.raises(ModelNotFoundError, match="is not a CTranslate2 model directory"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(str(tmp_path / "nope" / "model"))
