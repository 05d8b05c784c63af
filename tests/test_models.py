"""The offline model registry: bundled packages, checksum verification, base assembly,
resolution order and the errors a user sees when a model is missing; user models (models
add/remove/--verify, fine-tuned registrations) and models that fail to load."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import EVALDATA
from malsori import ModelIntegrityError, ModelNotFoundError, list_models, load_model, resolve_model
from malsori.errors import ModelLoadError
from malsori.models import (
    BUNDLED,
    CHECKSUMS_FILE,
    register_model,
    sha256_file,
    verify_bundled,
    verify_model_dir,
)

RunCli = Callable[..., subprocess.CompletedProcess[str]]


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
    assert "\n" not in msg  # the CLI prints it as one line
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


# --- user models: load errors, recorded checksums, registrations (issue #12, section 4) ----

TINY_EN = BUNDLED["tiny.en"]


@pytest.fixture
def user_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private models directory, cache and XDG data/cache homes, for this process and the
    CLI subprocesses it starts: the user's real registry is never touched."""
    home = tmp_path / "home"
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("MALSORI_CACHE_DIR", str(home / "malsori-cache"))
    monkeypatch.setenv("MALSORI_MODELS_DIR", str(home / "models"))
    return home / "models"


def _tiny_copy(dst: Path) -> Path:
    shutil.copytree(TINY_EN.locate(TINY_EN), dst)
    return dst


def _flip_bytes(model_bin: Path, *, keep_mtime: bool) -> None:
    """Invert 100 bytes in the middle of the weights (the size stays the same)."""
    st = model_bin.stat()
    with open(model_bin, "r+b") as fh:
        for offset in range(st.st_size // 2, st.st_size // 2 + 4000, 40):
            fh.seek(offset)
            byte = fh.read(1)
            fh.seek(offset)
            fh.write(bytes([byte[0] ^ 0xFF]))
    if keep_mtime:
        os.utime(model_bin, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert model_bin.stat().st_size == st.st_size


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("malsori: error: "), proc.stderr
    return lines[0]


def test_truncated_model_is_a_one_line_error(
    user_env: Path, tmp_path: Path, window_wav: Path, run_cli: RunCli
) -> None:
    model = _tiny_copy(tmp_path / "my-tiny")
    os.truncate(model / "model.bin", 40_000_000)
    proc = run_cli("transcribe", str(window_wav), "--model", str(model))
    line = _one_line_error(proc)
    assert f"model directory {model} could not be loaded" in line
    assert "model.bin is truncated (40000000 bytes" in line and not proc.stdout
    # The same directory found by name in MALSORI_MODELS_DIR: named by its name.
    shutil.move(model, user_env / "my-tiny")
    line = _one_line_error(run_cli("transcribe", str(window_wav), "--model", "my-tiny"))
    assert "model 'my-tiny' could not be loaded: model.bin is truncated" in line
    assert str(user_env) not in line  # a name is reported as the name, not a server path
    with pytest.raises(ModelLoadError, match=r"model\.bin is truncated"):
        load_model(str(user_env / "my-tiny"))
    # ... and `models add` refuses to record checksums of a truncated file.
    line = _one_line_error(run_cli("models", "add", str(user_env / "my-tiny"), "--name", "t2"))
    assert "is truncated" in line
    assert not (user_env / "t2").exists() and not (user_env / "my-tiny" / CHECKSUMS_FILE).exists()


def test_other_unloadable_models_are_one_line_errors(
    user_env: Path, tmp_path: Path, window_wav: Path, run_cli: RunCli
) -> None:
    bad_config = _tiny_copy(tmp_path / "bad-config")
    (bad_config / "config.json").write_text("{not json")
    line = _one_line_error(run_cli("transcribe", str(window_wav), "--model", str(bad_config)))
    assert "could not be loaded: RuntimeError: " in line and "parse error" in line
    no_tokenizer = _tiny_copy(tmp_path / "no-tokenizer")
    (no_tokenizer / "tokenizer.json").unlink()
    line = _one_line_error(run_cli("transcribe", str(window_wav), "--model", str(no_tokenizer)))
    assert "is not a CTranslate2 model directory" in line and "missing: tokenizer.json" in line
    not_ct2 = _tiny_copy(tmp_path / "not-ct2")
    with open(not_ct2 / "model.bin", "r+b") as fh:
        fh.write(b"\x63")  # binary version 99
    with pytest.raises(ModelLoadError, match=r"model.bin is not a CTranslate2 model \(binary"):
        load_model(str(not_ct2))


def test_added_model_is_verified_on_every_load(
    user_env: Path, tmp_path: Path, window_wav: Path, run_cli: RunCli
) -> None:
    model = _tiny_copy(tmp_path / "downloads" / "whisper-tiny-en")
    proc = run_cli("models", "add", str(model), "--name", "mine")
    assert proc.returncode == 0, proc.stderr
    link = user_env / "mine"
    assert f"registered 'mine': {link} -> {model}" in proc.stdout  # says where it went
    assert "model.bin, config.json, tokenizer.json, vocabulary.txt" in proc.stdout
    assert "malsori models remove mine" in proc.stdout
    assert link.is_symlink() and link.resolve() == model.resolve()
    manifest = json.loads((model / CHECKSUMS_FILE).read_text())
    assert manifest["files"]["model.bin"] == {"size": TINY_EN.size, "sha256": TINY_EN.sha256}
    assert set(manifest["files"]) == {
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.txt",
    }

    proc = run_cli("transcribe", str(window_wav), "--model", "mine")
    assert proc.returncode == 0, proc.stderr
    assert "window" in proc.stdout.lower()
    rows = {r["name"]: r for r in json.loads(run_cli("models", "--json").stdout)}
    assert rows["mine"]["status"] == "user" and rows["mine"]["checksum"] == "ok"
    assert rows["mine"]["path"] == str(model.resolve())
    # a Hangul name keeps the table's columns in line (each syllable takes two columns)
    assert run_cli("models", "add", str(model), "--name", "작은영어").returncode == 0
    table = run_cli("models").stdout.splitlines()
    starts = {
        sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line[: line.index(status)])
        for line in table
        for status in ("status", "user", "bundled")
        if status in line.split()
    }
    assert len(starts) == 1, table

    _flip_bytes(model / "model.bin", keep_mtime=False)
    for name in ("mine", str(model)):  # by name and as a directory
        line = _one_line_error(run_cli("transcribe", str(window_wav), "--model", name))
        assert f"{model / 'model.bin'} is corrupted" in line
        assert f"sha256 {TINY_EN.sha256[:16]}" in line and "refusing to load it" in line
    with pytest.raises(ModelIntegrityError, match="is corrupted"):
        load_model("mine")
    # Another text file in the directory (not a model file) does not matter.
    (model / "README.txt").write_text("notes")
    assert verify_model_dir(_tiny_copy(tmp_path / "plain"), label="plain") is False


def test_verify_rehashes_every_model_despite_restored_mtime(
    user_env: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    model = _tiny_copy(tmp_path / "m")
    reg = register_model(model, "m")
    assert reg.link == user_env / "m" and not reg.unchanged and reg.replaced is None
    assert resolve_model("m").verified
    proc = run_cli("models", "--verify")
    assert proc.returncode == 0, proc.stderr
    assert "all match their checksums" in proc.stderr

    # Damaged with the modification time put back: the size/mtime cache cannot see it ...
    _flip_bytes(model / "model.bin", keep_mtime=True)
    assert resolve_model("m").verified
    # ... `--verify` hashes everything again and fails,
    proc = run_cli("models", "--verify")
    assert proc.returncode == 1, proc.stdout
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "malsori: error: 1 model(s) failed: m"
    row = next(line for line in proc.stdout.splitlines() if line.startswith("m "))
    assert "broken" in row and "mismatch" in row
    # ... and forgets the cached record, so the next load hashes and refuses it too.
    with pytest.raises(ModelIntegrityError, match="is corrupted"):
        resolve_model("m")
    rows = {r.name: r for r in list_models()}
    assert rows["m"].status == "broken" and rows["tiny.en"].checksum == "ok"


def test_verify_rehashes_bundled_models(private_cache: Path, tmp_path: Path) -> None:
    copy = _tiny_copy(tmp_path / "copy")
    verify_bundled(TINY_EN, copy)  # verified and recorded
    _flip_bytes(copy / "model.bin", keep_mtime=True)
    assert verify_bundled(TINY_EN, copy) == copy  # the cache trusts size + mtime
    with pytest.raises(ModelIntegrityError, match="is corrupted"):
        verify_bundled(TINY_EN, copy, rehash=True)
    with pytest.raises(ModelIntegrityError, match="is corrupted"):
        verify_bundled(TINY_EN, copy)  # the failed file's record is gone


def test_dangling_registration_is_listed_replaced_and_removable(
    user_env: Path, tmp_path: Path, window_wav: Path, run_cli: RunCli
) -> None:
    first = _tiny_copy(tmp_path / "run1" / "ft")
    register_model(first, "ft")
    shutil.rmtree(first)

    proc = run_cli("models")
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("ft "))
    assert "broken" in row and f"registered to {first.resolve()}, which no longer exists" in row
    assert "malsori models remove ft" in row
    line = _one_line_error(run_cli("transcribe", str(window_wav), "--model", "ft"))
    assert "model 'ft' is registered to" in line and "which no longer exists" in line

    # Registering the name again replaces the dangling link (and says so).
    second = _tiny_copy(tmp_path / "run2" / "ft")
    proc = run_cli("models", "add", str(second))
    assert proc.returncode == 0, proc.stderr
    assert f"replacing the registration of {first.resolve()}" in proc.stdout
    assert resolve_model("ft").path.resolve() == second.resolve()

    # A live registration is never replaced silently.
    third = _tiny_copy(tmp_path / "run3" / "ft")
    line = _one_line_error(run_cli("models", "add", str(third)))
    assert "a model named 'ft' already exists" in line and "malsori models remove ft" in line
    assert resolve_model("ft").path.resolve() == second.resolve()

    proc = run_cli("models", "remove", "ft")
    assert proc.returncode == 0, proc.stderr
    assert f"it pointed to {second.resolve()}" in proc.stdout
    assert not (user_env / "ft").is_symlink() and (second / "model.bin").is_file()
    assert "ft" not in {r.name for r in list_models()}
    line = _one_line_error(run_cli("models", "remove", "ft"))
    assert "no registered model named 'ft'" in line

    # A model directory stored in the models directory itself is not deleted by `remove`.
    stored = _tiny_copy(user_env / "large-v3")
    line = _one_line_error(run_cli("models", "remove", "large-v3"))
    assert "malsori does not delete model files" in line and (stored / "model.bin").is_file()
    rows = {r.name: r for r in list_models()}
    assert rows["large-v3"].status == "user" and rows["large-v3"].checksum == "unverified"
    assert "malsori models add" in rows["large-v3"].detail
    proc = run_cli("models", "add", str(stored))  # records its checksums where it is
    assert proc.returncode == 0, proc.stderr
    assert f"'large-v3' is stored in the user models directory: {stored}" in proc.stdout
    assert (stored / CHECKSUMS_FILE).is_file() and not stored.is_symlink()
    assert {r.name: r for r in list_models()}["large-v3"].checksum == "ok"


def test_add_refuses_bad_names_and_directories(
    user_env: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    model = _tiny_copy(tmp_path / "m")
    for name, message in (
        ("base", "belongs to a bundled model"),
        ("a/b", "a plain name"),
        (".hidden", "a plain name"),
    ):
        line = _one_line_error(run_cli("models", "add", str(model), "--name", name))
        assert message in line
    line = _one_line_error(run_cli("models", "add", str(tmp_path)))
    assert "is not a CTranslate2 model directory" in line
    line = _one_line_error(run_cli("models", "add", str(tmp_path / "nope")))
    assert "no such directory" in line
    assert not user_env.exists() or not any(user_env.iterdir())

    # A directory that already has checksums is verified against them, never re-recorded.
    register_model(model, "m")
    (user_env / "m").unlink()
    _flip_bytes(model / "model.bin", keep_mtime=True)
    line = _one_line_error(run_cli("models", "add", str(model)))
    assert "is corrupted" in line and not (user_env / "m").exists()


def test_finetune_registration(user_env: Path, tmp_path: Path, run_cli: RunCli) -> None:
    """The registration step of `malsori finetune` on a copied model (training is slow and
    tested in test_finetune.py)."""
    from malsori.finetune.run import FinetuneConfig, _check_output, _register

    out = _tiny_copy(tmp_path / "jargon")
    reg = _register("jargon", out)
    assert reg.link == user_env / "jargon" and reg.target == out.resolve()
    assert (out / CHECKSUMS_FILE).is_file() and resolve_model("jargon").verified
    assert _register("jargon", out).unchanged  # --resume registers the same directory again

    # The output directory deleted: the registration dangles and does not block the name.
    shutil.rmtree(out)
    cfg = FinetuneConfig(model="tiny.en", train=tmp_path / "t.tsv", output_dir=out, name="jargon")
    _check_output(cfg)
    assert _register("jargon", _tiny_copy(out)).unchanged  # the same path made again
    shutil.rmtree(out)
    elsewhere = tmp_path / "elsewhere" / "jargon"
    _check_output(replace(cfg, output_dir=elsewhere))
    again = _register("jargon", _tiny_copy(elsewhere))
    assert again.replaced == str(out.resolve()) and not again.unchanged
    assert resolve_model("jargon").path.resolve() == elsewhere.resolve()

    # A live registration of another directory stops the run before any work, in one line.
    (tmp_path / "train.tsv").write_text("path\treference\n")
    proc = run_cli(
        "finetune", "--train", str(tmp_path / "train.tsv"),
        "--output-dir", str(tmp_path / "other" / "jargon"),
    )  # fmt: skip
    line = _one_line_error(proc)
    assert "a model named 'jargon' already exists" in line and "--no-register" in line


def test_finetune_export_records_checksums(user_env: Path, tmp_path: Path) -> None:
    """`export_ct2` (the last step of `malsori finetune`) records the sha256 of every model
    file it writes, so a damaged export is refused instead of transcribing garbage."""
    pytest.importorskip("transformers")
    from malsori.finetune.export import export_ct2
    from malsori.finetune.hf_model import load_whisper

    source = TINY_EN.locate(TINY_EN)
    out = export_ct2(load_whisper(source), source, tmp_path / "export", quantization="int8")
    manifest = json.loads((out / CHECKSUMS_FILE).read_text())
    assert manifest["created_by"] == "malsori finetune"
    assert {"model.bin", "config.json", "tokenizer.json"} <= set(manifest["files"])
    for name, entry in manifest["files"].items():
        assert entry == {"size": (out / name).stat().st_size, "sha256": sha256_file(out / name)}
    assert resolve_model(str(out)).verified
    _flip_bytes(out / "model.bin", keep_mtime=False)
    with pytest.raises(ModelIntegrityError, match="is corrupted"):
        load_model(str(out))


def _fake_hf_snapshot(hub: Path, repo: str) -> Path:
    """A Hugging Face cache entry laid out as huggingface_hub writes it: files in the snapshot
    are links to blobs, a large file's blob named by its sha256."""
    root = hub / ("models--" + repo.replace("/", "--"))
    revision = "0" * 40
    snapshot = root / "snapshots" / revision
    (root / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(revision)
    source = TINY_EN.locate(TINY_EN)
    for i, name in enumerate(("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")):
        blob = TINY_EN.sha256 if name == "model.bin" else f"{i:040x}"  # git sha1 for small files
        shutil.copyfile(source / name, root / "blobs" / blob)
        (snapshot / name).symlink_to(Path("../../blobs") / blob)
    return root / "blobs" / TINY_EN.sha256


def test_hf_cache_blobs_are_verified_by_their_names(
    user_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    window_wav: Path,
    run_cli: RunCli,
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    blob = _fake_hf_snapshot(tmp_path / "hub", "Systran/faster-whisper-tiny")
    rows = {r["name"]: r for r in json.loads(run_cli("models", "--json").stdout)}
    assert rows["tiny"]["status"] == "cached" and rows["tiny"]["checksum"] == "ok"
    _flip_bytes(blob, keep_mtime=True)
    rows = {r["name"]: r for r in json.loads(run_cli("models", "--json").stdout)}
    assert rows["tiny"]["checksum"] == "ok"  # size and mtime unchanged: the cache trusts it
    proc = run_cli("models", "--verify", "--json")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["tiny"]["status"] == "broken" and rows["tiny"]["checksum"] == "mismatch"
    assert "in the Hugging Face cache is corrupted" in rows["tiny"]["detail"]
    line = _one_line_error(run_cli("transcribe", str(window_wav), "--model", "tiny"))
    assert "in the Hugging Face cache is corrupted" in line


def test_a_model_without_its_tokenizer_never_goes_online(
    user_env: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    """A copied model without tokenizer.json was accepted by `models add`; transcribing with
    it then spent 25 s retrying huggingface.co (faster-whisper fetches a tokenizer from the
    Hub, whatever local_files_only says) before failing. Refused at once, offline."""
    model = _tiny_copy(tmp_path / "notok")
    (model / "tokenizer.json").unlink()
    line = _one_line_error(run_cli("models", "add", str(model)))
    assert "is not a CTranslate2 model directory" in line and "missing: tokenizer.json" in line
    clip = EVALDATA / "en" / "jfk.wav"
    # not offline by the environment: nothing but malsori's own check keeps it off the Hub
    env = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}
    proc = run_cli("transcribe", str(clip), "--model", str(model), env=env, timeout=60)
    line = _one_line_error(proc)
    assert "is not a CTranslate2 model directory" in line and "tokenizer.json" in line, line
    a_file = tmp_path / "passwd"
    a_file.write_text("x")
    assert "is a file, not a model folder" in _one_line_error(run_cli("models", "add", str(a_file)))


def test_one_korean_name_in_two_unicode_spellings_is_one_model(
    user_env: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    """`models add --name 말소리모델` typed as NFD (a Mac) beside the NFC one made two rows
    that look the same and point at different folders."""
    nfc = unicodedata.normalize("NFC", "말소리모델")
    nfd = unicodedata.normalize("NFD", nfc)
    first, second = _tiny_copy(tmp_path / "a"), _tiny_copy(tmp_path / "b")
    assert run_cli("models", "add", str(first), "--name", nfd).returncode == 0
    assert [p.name for p in user_env.iterdir()] == [nfc]  # stored in one spelling
    line = _one_line_error(run_cli("models", "add", str(second), "--name", nfc))
    assert "already exists" in line
    assert resolve_model(nfd).path.resolve() == first.resolve()
    assert resolve_model(nfc).path.resolve() == first.resolve()
    # names that read like another, or break the listing (a hostile tester)
    for name, message in (
        ("large-v3 ", "no spaces at either end"),
        ("x\ny", "line breaks"),
        ("a\tb", "tabs"),
    ):
        assert message in _one_line_error(run_cli("models", "add", str(second), "--name", name))
    for taken, lookalike in (("Café", "café"), ("\uff23\uff21\uff26\uff25", "CAFE")):
        assert run_cli("models", "add", str(second), "--name", taken).returncode == 0
        line = _one_line_error(run_cli("models", "add", str(first), "--name", lookalike))
        assert "another Unicode spelling, width or case" in line, line
