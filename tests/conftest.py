"""Shared fixtures: real speech made with espeak-ng, the bundled tiny.en model, a CLI runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVALDATA = ROOT.parent / "shared" / "evaldata"

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SENTENCES = {
    "window": "She opened the window and listened to the birds in the garden.",
    "report": "Please send the quarterly report to the finance team before Friday.",
    "weather": "The weather will be sunny tomorrow with a light breeze in the afternoon.",
}


def espeak(text: str, path: Path, *, voice: str = "en-us", speed: int = 140) -> Path:
    """Speak ``text`` into a 16 kHz mono WAV at ``path`` with espeak-ng (+ ffmpeg)."""
    for tool in ("espeak-ng", "ffmpeg"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is missing: run scripts/setup.sh dev")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    convert(raw, path, "-ar", "16000", "-ac", "1")
    raw.unlink()
    return path


def unknown_codec_wav(path: Path) -> Path:
    """A WAV whose format tag (0x1234) FFmpeg has no decoder for: 3000 samples of silence."""
    import struct

    data = b"\x00\x00" * 3000
    fmt = struct.pack("<HHIIHH", 0x1234, 1, 16000, 32000, 2, 16)
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body) + 4 + len(data)) + body
                     + struct.pack("<I", len(data)) + data)  # fmt: skip
    return path


def convert(src: Path, dst: Path, *ffmpeg_args: str) -> Path:
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), *ffmpeg_args, str(dst)], check=True
    )
    return dst


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("speech")
    for name, text in SENTENCES.items():
        espeak(text, d / f"{name}.wav")
    return d


@pytest.fixture(scope="session")
def window_wav(speech_dir: Path) -> Path:
    return speech_dir / "window.wav"


@pytest.fixture(scope="session")
def tiny_en():  # type: ignore[no-untyped-def]
    from malsori import load_model

    return load_model("tiny.en")


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, for comparing transcripts."""
    import re

    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    return float(jiwer.wer(" ".join(words(reference)), " ".join(words(hypothesis))))


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(
        *args: str,
        stdin: bytes | None = None,
        timeout: float = 300,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "malsori.cli", *args],
            input=stdin,
            capture_output=True,
            timeout=timeout,
            env=env,
            cwd=tmp_path,
        )
        return subprocess.CompletedProcess(
            proc.args,
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )

    return run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item):  # type: ignore[no-untyped-def]
    """Expose each phase's report as item.rep_<phase> (screenshots on failure use it)."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def one_file_job(tmp_path: Path, clip: Path) -> tuple[Path, Any, Any]:
    """A batch job of one input (``in/a.wav``, a link to ``clip``) prepared as ``malsori
    batch`` prepares it, for tests that call its workers directly: (OUT, its config, its
    job store, still open: the caller closes it)."""
    from dataclasses import replace

    from malsori.batch.config import BatchConfig
    from malsori.batch.jobs import JobStore
    from malsori.batch.runner import _model_key, prepare

    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    (root / "a.wav").symlink_to(clip)
    config = BatchConfig(str(root), str(out), model="tiny.en", formats=("txt", "json"))
    key, fingerprint = _model_key(config)
    config = replace(config, model_key=key, model_sha256=fingerprint, threads=1)
    out.mkdir()
    store = JobStore(out)
    try:
        config, _ = prepare(config, store, None, 2, False)
    except BaseException:
        store.close()
        raise
    return out, config, store
