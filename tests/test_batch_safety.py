"""Data safety of `malsori batch` and `malsori transcribe -o` under real-world conditions
(issue #12): name collisions, reruns that check the disk and the request, two runs at once,
a full disk (``ulimit -f``), a worker killed with SIGKILL, unreadable entries as a non-root
user, output permissions, pipes closed early. Real files, real subprocesses, real signals."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import EVALDATA, convert, espeak, words

LONG_EN = EVALDATA / "long" / "ljspeech_LJ001-0001_to_0020_concat.wav"
CLI = [sys.executable, "-m", "malsori.cli"]


def rows(out: Path) -> dict[str, sqlite3.Row]:
    db = sqlite3.connect(out / ".malsori-jobs.sqlite")
    db.row_factory = sqlite3.Row
    try:
        return {r["path"]: r for r in db.execute("SELECT * FROM files")}
    finally:
        db.close()


def batch(
    root: Path, out: Path, *extra: str, limit_kb: int | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if limit_kb is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_kb * 1024, limit_kb * 1024))

    return subprocess.run(
        [*CLI, "batch", str(root), "-o", str(out), "--model", "tiny.en", "-q", *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
    )


def _transcribe_o(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "transcribe", "--model", "tiny.en", "-q", *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    texts = {
        "garden": "We planted tomatoes in the garden this spring.",
        "river": "The river was too cold for swimming in April.",
        "train": "The last train to the city leaves at midnight.",
        "piano": "She practised the piano every evening after dinner.",
    }
    return {name: espeak(text, d / f"{name}.wav") for name, text in texts.items()}


def test_same_stem_in_one_folder_keeps_both(clips: dict[str, Path], tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    (root / "c").mkdir(parents=True)
    shutil.copy(clips["garden"], root / "c" / "m.wav")
    convert(clips["river"], root / "c" / "m.mp3")
    shutil.copy(clips["train"], root / "c" / "solo.wav")
    proc = batch(root, out, "-f", "txt,json")
    assert proc.returncode == 0, proc.stderr
    assert "garden" in (out / "c" / "m.wav.txt").read_text().lower()
    assert "river" in (out / "c" / "m.mp3.txt").read_text().lower()
    assert (out / "c" / "solo.txt").is_file()  # no clash: the plain name
    assert not (out / "c" / "m.txt").exists()
    # A later file that clashes with a done one renames the done one's outputs (no re-use of
    # the old name by anyone): stable names, no stale m.txt-style leftovers.
    convert(clips["piano"], root / "c" / "solo.flac")
    again = batch(root, out, "-f", "txt,json")
    assert again.returncode == 0, again.stderr
    assert "1 new" in again.stderr
    assert "train" in (out / "c" / "solo.wav.txt").read_text().lower()
    assert "dinner" in (out / "c" / "solo.flac.txt").read_text().lower()
    assert not (out / "c" / "solo.txt").exists() and not (out / "c" / "solo.json").exists()


def test_transcribe_names_like_batch_and_refuses_same_names(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    m_wav = shutil.copy(clips["garden"], tmp_path / "m.wav")
    m_mp3 = convert(clips["river"], tmp_path / "m.mp3")
    both = tmp_path / "both"
    proc = subprocess.run(
        [*CLI, "transcribe", "--model", "tiny.en", "-q", "-o", str(both), str(m_wav), str(m_mp3)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "garden" in (both / "m.wav.txt").read_text().lower()
    assert "river" in (both / "m.mp3.txt").read_text().lower()

    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    a1 = shutil.copy(clips["garden"], tmp_path / "d1" / "a.wav")
    a2 = shutil.copy(clips["river"], tmp_path / "d2" / "a.wav")
    out = tmp_path / "out"
    proc = subprocess.run(
        [*CLI, "transcribe", "--model", "tiny.en", "-o", str(out), str(a1), str(a2)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(a1) in lines[0] and str(a2) in lines[0], proc.stderr
    assert not out.exists() or not list(out.iterdir())


def test_transcribe_one_at_a_time_names_as_all_at_once(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """`for f in tt/*; do malsori transcribe "$f" -o out; done` wrote talk.wav's transcript
    as talk.txt and then refused talk.mp3 (its name too), while both on one command line
    gave talk.wav.txt and talk.mp3.txt (a tester). A recording's name counts the audio
    beside it, as batch's does, whatever else is on the command line."""
    folder, out = tmp_path / "tt", tmp_path / "out"
    folder.mkdir()
    shutil.copy(clips["garden"], folder / "talk.wav")
    convert(clips["river"], folder / "talk.mp3")
    for one in sorted(folder.iterdir()):
        proc = _transcribe_o("-o", str(out), "-f", "txt", str(one))
        assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.glob("*.txt")) == ["talk.mp3.txt", "talk.wav.txt"]
    assert "tomato" in (out / "talk.wav.txt").read_text()
    assert "river" in (out / "talk.mp3.txt").read_text()
    # All at once: the same names, nothing refused.
    proc = _transcribe_o("-o", str(out), "-f", "txt", *map(str, sorted(folder.iterdir())))
    assert proc.returncode == 0 and not (out / "talk.txt").exists(), proc.stderr
    # talk.mp3 gone: talk.wav is talk.txt again; its earlier transcript is kept and named.
    (folder / "talk.mp3").unlink()
    proc = _transcribe_o("-o", str(out), "-f", "txt", str(folder / "talk.wav"))
    assert proc.returncode == 0, proc.stderr
    assert "its earlier transcript (talk.wav.txt)" in proc.stderr, proc.stderr
    assert "tomato" in (out / "talk.txt").read_text()
    assert "tomato" in (out / "talk.wav.txt").read_text()
    # A corrected transcript left under the old name is named too, as edited (a reviewer).
    (out / "talk.txt").write_text("tomatoes, corrected by hand\n")
    convert(clips["river"], folder / "talk.mp3")
    proc = _transcribe_o("-o", str(out), "-f", "txt", str(folder / "talk.wav"))
    assert proc.returncode == 0, proc.stderr
    assert "talk.txt (edited since)" in proc.stderr, proc.stderr
    assert (out / "talk.txt").read_text() == "tomatoes, corrected by hand\n"


def test_transcribe_output_never_overwrites_an_input_and_bad_names_fail_alone(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """``transcribe -o``: an input named like an output (rec.txt, an audio file) is not
    written over even with --overwrite; a name that is not UTF-8, or one too long for the
    disk, fails that input with one line and the next input is still transcribed."""

    run = _transcribe_o

    audio = tmp_path / "rec.txt"
    shutil.copy(clips["garden"], audio)
    before = audio.read_bytes()
    proc = run(str(audio), "-o", str(tmp_path), "-f", "txt", "--overwrite")
    assert proc.returncode == 1 and "is an input of this run" in proc.stderr, proc.stderr
    assert audio.read_bytes() == before
    bad = Path(os.fsdecode(bytes(tmp_path) + b"/bad\xff\xfe.wav"))
    long = tmp_path / ("L" * 251 + ".wav")
    for name in (bad, long):
        shutil.copy(clips["garden"], name)
        out = tmp_path / f"out-{len(name.name)}"
        proc = run(str(name), str(clips["river"]), "-o", str(out), "-f", "txt,json")
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        errors = [x for x in proc.stderr.splitlines() if x.startswith("malsori: error:")]
        assert len(errors) == 1, proc.stderr
        assert "river" in (out / "river.txt").read_text().lower()  # the next input is done
        assert not list(out.glob(".*.tmp"))


def test_rerun_checks_disk_and_request(clips: dict[str, Path], tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    for name in ("garden", "river", "train"):
        shutil.copy(clips[name], root / f"{name}.wav")
    assert batch(root, out, "-f", "txt").returncode == 0
    first = rows(out)
    good = (out / "train.txt").read_text()

    # A deleted output is redone; an edited one is kept (a hand-corrected transcript is not
    # replaced by a fresh decode: hostile tester), its file failed with the reason; the
    # untouched file is left alone.
    (out / "garden.txt").unlink()
    (out / "river.txt").write_text("edited by hand\n")
    proc = batch(root, out, "-f", "txt")
    assert proc.returncode == 1, proc.stderr
    assert "1 done file(s) redone: outputs missing, changed or renamed" in proc.stderr
    assert "1 file(s) not transcribed: their output path is taken" in proc.stderr
    assert "garden" in (out / "garden.txt").read_text().lower()
    assert (out / "river.txt").read_text() == "edited by hand\n"
    assert "was changed since this job wrote it and is kept" in rows(out)["river.wav"]["error"]
    assert rows(out)["train.wav"]["updated_at"] == first["train.wav"]["updated_at"]
    assert (out / "train.txt").read_text() == good
    # Moved away, it is redone.
    (out / "river.txt").rename(tmp_path / "river-mine.txt")
    proc = batch(root, out, "-f", "txt")
    assert proc.returncode == 0, proc.stderr
    assert "river" in (out / "river.txt").read_text().lower()

    # Another model and more formats: every file is redone, and the run says why.
    proc = batch(root, out, "-f", "txt,srt", "--model", "base")
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stderr.splitlines() if x.startswith("rerun:"))
    assert "3 done file(s) redone" in line and "formats txt -> txt,srt" in line
    assert "model tiny.en -> base" in line
    db = rows(out)
    for name in ("garden", "river", "train"):
        assert (out / f"{name}.srt").read_text().strip()
        assert json.loads(db[f"{name}.wav"]["request"])["model"] == "base"

    # The same request again: nothing to do. Fewer formats: still nothing to do.
    for fmt in ("txt,srt", "txt"):
        proc = batch(root, out, "-f", fmt, "--model", "base")
        assert proc.returncode == 0 and "rerun:" not in proc.stderr, proc.stderr
    assert {k: r["updated_at"] for k, r in rows(out).items()} == {
        k: r["updated_at"] for k, r in db.items()
    }
    # --force redoes everything.
    proc = batch(root, out, "-f", "txt", "--model", "base", "--force")
    assert "--force: 3 file(s) redone" in proc.stderr
    assert all(r["updated_at"] > db[k]["updated_at"] for k, r in rows(out).items())


def test_the_default_compute_type_keeps_jobs_of_the_old_default(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """The default compute type is ``auto`` now (int8 on a CPU, float16 on a GPU; it was
    int8), recorded as asked, so a job run from a GPU machine and a CPU one in turn, or on a
    Ray cluster of both, is not redone back and forth (a reviewer). A file made with int8,
    the old default, is kept under ``auto``; another compute type redoes it and says why."""
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    shutil.copy(clips["piano"], root / "piano.wav")
    assert batch(root, out, "-f", "txt", "--compute-type", "int8").returncode == 0
    first = rows(out)["piano.wav"]
    assert json.loads(first["request"])["compute_type"] == "int8"
    for extra in (("--compute-type", "auto"), ()):
        proc = batch(root, out, "-f", "txt", *extra)
        assert proc.returncode == 0 and "rerun:" not in proc.stderr, (extra, proc.stderr)
    assert rows(out)["piano.wav"]["updated_at"] == first["updated_at"]
    proc = batch(root, out, "-f", "txt", "--compute-type", "float32")
    assert proc.returncode == 0, proc.stderr
    assert "compute_type int8 -> float32" in proc.stderr
    proc = batch(root, out, "-f", "txt")  # the default again: asked for, recorded as asked
    assert proc.returncode == 0 and "compute_type float32 -> auto" in proc.stderr, proc.stderr
    assert json.loads(rows(out)["piano.wav"]["request"])["compute_type"] == "auto"
    proc = batch(root, out, "-f", "txt")
    assert proc.returncode == 0 and "rerun:" not in proc.stderr, proc.stderr


def test_failures_of_an_earlier_glob_do_not_fail_every_later_run(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """One run with --glob '*' took the user's notes.txt in as audio; every later plain run
    retried it and exited 1, for ever (a tester's cron job). A run retries and counts only
    the failures its --glob covers, and says which it left."""
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(clips["garden"], root / "garden.wav")
    (root / "notes.txt").write_text("my notes\n")
    out = tmp_path / "out"
    proc = batch(root, out, "-f", "json", "--glob", "*")
    assert proc.returncode == 1 and rows(out)["notes.txt"]["status"] == "failed", proc.stderr
    for _ in range(2):
        proc = batch(root, out, "-f", "json")
        assert proc.returncode == 0, proc.stderr
        assert "1 failed file(s) of an earlier run are outside what this run covers" in proc.stderr
        assert "0 retried" in proc.stderr
    assert rows(out)["notes.txt"]["attempts"] == 1
    assert (root / "notes.txt").read_text() == "my notes\n"
    proc = batch(root, out, "-f", "json", "--glob", "*")  # its own --glob retries it
    assert proc.returncode == 1 and "1 retried" in proc.stderr, proc.stderr
    assert rows(out)["notes.txt"]["attempts"] == 2


def test_glob_matches_korean_names_in_either_normal_form(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """A Korean name copied from macOS is decomposed (NFD); a pattern typed on Linux is
    composed (NFC). The two must match: the file was skipped as 'not audio by name'."""
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    nfd = unicodedata.normalize("NFD", "회의록.wav")
    shutil.copy(clips["garden"], root / nfd)
    proc = batch(root, out, "-f", "txt", "--glob", unicodedata.normalize("NFC", "회의*"))
    assert proc.returncode == 0, proc.stderr
    assert list(rows(out)) == [nfd]
    assert "garden" in (out / unicodedata.normalize("NFD", "회의록.txt")).read_text().lower()


def test_korean_names_in_two_normal_forms_never_share_an_output(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """Two Korean names that differ only in Unicode normal form look the same and are the
    same name on macOS or a normalizing share: ``회의.wav`` (NFD) and ``회의.mp3`` (NFC)
    keep their extensions like any stem twins; ``회의.wav`` in both forms (two files on
    Linux) are both refused with the reason, and the other files are done."""
    root, out = tmp_path / "in", tmp_path / "out"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    nfc, nfd = (unicodedata.normalize(form, "회의") for form in ("NFC", "NFD"))
    shutil.copy(clips["garden"], root / "a" / f"{nfd}.wav")
    convert(clips["river"], root / "a" / f"{nfc}.mp3")
    shutil.copy(clips["train"], root / "b" / f"{nfd}.wav")
    shutil.copy(clips["piano"], root / "b" / f"{nfc}.wav")
    shutil.copy(clips["piano"], root / "b" / "other.wav")
    proc = batch(root, out, "-f", "txt")
    assert proc.returncode != 0  # two files failed
    assert "garden" in (out / "a" / f"{nfd}.wav.txt").read_text().lower()
    assert "river" in (out / "a" / f"{nfc}.mp3.txt").read_text().lower()
    assert "dinner" in (out / "b" / "other.txt").read_text().lower()
    assert sorted(p.name for p in (out / "b").iterdir()) == ["other.txt"]
    status = rows(out)
    for name, mine, other in ((f"b/{nfd}.wav", "NFD", "NFC"), (f"b/{nfc}.wav", "NFC", "NFD")):
        assert status[name]["status"] == "failed"
        # which is which: the two names look the same on screen (a Korean tester)
        assert f"this one is {mine}, the other {other}" in status[name]["error"], status[name]
    # nothing changed: the rerun refuses them again instead of writing one over the other
    assert batch(root, out, "-f", "txt").returncode != 0
    assert sorted(p.name for p in (out / "b").iterdir()) == ["other.txt"]


def test_nested_output_directories_are_refused(clips: dict[str, Path], tmp_path: Path) -> None:
    """Each job locks only its own folder: ``-o out`` and ``-o out/sub`` at once overwrote
    each other's results and both said done (hostile tester). The second job is refused,
    whichever is nested and whether they run one after the other or start together."""
    one, two = tmp_path / "in1", tmp_path / "in2"
    (one / "sub").mkdir(parents=True)
    two.mkdir()
    for name in ("garden", "river"):
        shutil.copy(clips[name], one / "sub" / f"{name}.wav")  # -> out/sub/<name>.txt
    for name in ("train", "piano"):
        shutil.copy(clips[name], two / f"{name}.wav")
    out = tmp_path / "out"
    assert batch(one, out, "-f", "txt").returncode == 0
    inner = batch(two, out / "sub", "-f", "txt")
    assert inner.returncode == 1
    assert "is inside the output directory of another batch job" in inner.stderr, inner.stderr
    assert not (out / "sub" / ".malsori-jobs.sqlite").exists()
    deeper = batch(two, out / "new" / "deeper", "-f", "txt")
    assert deeper.returncode == 1 and not (out / "new").exists()  # no folder left in its OUT

    out2 = tmp_path / "out2"
    assert batch(two, out2 / "sub", "-f", "txt").returncode == 0
    outer = batch(one, out2, "-f", "txt")
    assert outer.returncode == 1 and "holds the output directory" in outer.stderr

    # Started together: at most one runs, and it says so.
    out3 = tmp_path / "out3"
    cmd = [*CLI, "batch", "--model", "tiny.en", "-q", "-f", "txt"]
    procs = [
        subprocess.Popen([*cmd, str(one), "-o", str(out3)], stderr=subprocess.PIPE, text=True),
        subprocess.Popen(
            [*cmd, str(two), "-o", str(out3 / "sub")], stderr=subprocess.PIPE, text=True
        ),
    ]
    results = [(p.wait(timeout=600), p.stderr.read() if p.stderr else "") for p in procs]
    assert sum(rc == 0 for rc, _ in results) <= 1, results
    assert any("output directory of another batch job" in err for _, err in results), results


def test_a_redone_file_leaves_no_output_of_the_old_request(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """txt and json with one request; then only txt with another (the file is decoded
    again): the json, not asked this time but still as malsori wrote it, is written again
    from the new transcript, so the two never disagree; an edited one is left alone."""
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    for name in ("garden", "river"):
        shutil.copy(clips[name], root / f"{name}.wav")
    assert batch(root, out, "-f", "txt,json", "--beam-size", "1").returncode == 0
    (out / "river.json").write_text('{"mine": true}\n')  # edited by hand: never touched
    proc = batch(root, out, "-f", "txt", "--beam-size", "2")
    assert proc.returncode == 0, proc.stderr
    assert "beam_size 1 -> 2" in proc.stderr
    garden = json.loads((out / "garden.json").read_text())
    assert garden["options"]["beam_size"] == 2  # the new request's transcript
    assert garden["text"].split() == (out / "garden.txt").read_text().split()
    assert json.loads((out / "river.json").read_text()) == {"mine": True}
    recorded = {o["path"] for o in json.loads(rows(out)["garden.wav"]["outputs"])}
    assert recorded == {"garden.txt", "garden.json"}
    proc = batch(root, out, "-f", "txt", "--beam-size", "2")  # and that is all done now
    assert proc.returncode == 0 and "rerun:" not in proc.stderr, proc.stderr


@contextlib.contextmanager
def _paused_batch(root: Path, out: Path) -> Iterator[subprocess.Popen[str]]:
    """A `malsori batch` run stopped (SIGSTOP) once its job database exists, holding its
    locks, while the block runs; continued (SIGCONT) after it."""
    run = subprocess.Popen(
        [*CLI, "batch", str(root), "-o", str(out), "--model", "tiny.en", "-q", "-f", "txt"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (out / ".malsori-jobs.sqlite").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGSTOP)
    try:
        yield run
    finally:
        run.send_signal(signal.SIGCONT)


def test_two_runs_at_once(clips: dict[str, Path], tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    for i in range(6):
        shutil.copy(clips[["garden", "river", "train"][i % 3]], root / f"f{i}.wav")
    with _paused_batch(root, out) as first:  # it holds its locks while the others try
        second = batch(root, out, "-f", "txt")
        (out / ".malsori-batch.lock").unlink()  # someone tidies OUT during the run
        third = batch(root, out, "-f", "txt")
    _, first_err = first.communicate(timeout=600)
    assert first.returncode == 0, first_err
    assert second.returncode == 1
    assert f"another batch is running on {out} (pid {first.pid})" in second.stderr
    assert third.returncode == 1 and f"another malsori run is writing into {out}" in third.stderr
    assert "Traceback" not in second.stderr + third.stderr
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in rows(out).values())


def test_other_input_dir_into_same_output_is_refused(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    a.mkdir()
    b.mkdir()
    shutil.copy(clips["garden"], a / "x.wav")
    shutil.copy(clips["river"], b / "x.wav")
    assert batch(a, out, "-f", "txt").returncode == 0
    proc = batch(b, out, "-f", "txt")
    assert proc.returncode == 1 and "holds the batch job of" in proc.stderr
    assert "garden" in (out / "x.txt").read_text().lower()  # a's result kept


def _tmp_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_disk_full_in_batch_fails_the_file_and_stops(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    shutil.copy(LONG_EN, root / "a_long.wav")  # its JSON (~70 KB) exceeds the limit below
    for name in ("garden", "river"):
        shutil.copy(clips[name], root / f"{name}.wav")
    proc = batch(root, out, limit_kb=48)  # the job database (~24 KB) still fits
    assert proc.returncode == 1, proc.stderr
    # ulimit -f stands in for a full disk; the message names the limit it really hit
    assert "malsori: error: file too large writing" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    db = rows(out)
    assert db["a_long.wav"]["status"] == "failed"
    assert "(a file-size limit)" in db["a_long.wav"]["error"]
    assert {db["garden.wav"]["status"], db["river.wav"]["status"]} == {"pending"}  # stopped
    assert not list(out.glob("a_long.*")), "no partial set of formats"
    assert not _tmp_files(out)
    # With room again, the rerun finishes everything.
    proc = batch(root, out)
    assert proc.returncode == 0, proc.stderr
    assert all(r["status"] == "done" for r in rows(out).values())
    assert len(list(out.glob("a_long.*"))) == 5


def test_disk_full_in_transcribe_one_line_no_partial_set(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    proc = subprocess.run(
        [
            *CLI,
            *("transcribe", "--model", "tiny.en", "-q", "-o", str(out)),
            *(str(clips["garden"]), str(clips["river"])),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit,
    )
    assert proc.returncode == 1
    assert "malsori: error: file too large writing" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) <= 3
    assert not list(out.glob("garden.*")), "a file's formats appear together or not at all"
    assert not _tmp_files(out)
    # the decoded transcript is kept under TMPDIR, in each format that fits (txt at least)
    saved = re.search(r"the transcript was saved to (\S+garden\.txt)", proc.stderr)
    assert saved, proc.stderr
    assert "garden" in Path(saved[1]).read_text().lower()
    shutil.rmtree(Path(saved[1]).parent)


def test_the_job_database_never_appears_without_its_tables(tmp_path: Path) -> None:
    """The job database was created empty and given its tables a moment later: a reader
    (`batch status`, a second run, a test) that came in between failed with "no such table:
    files" (9 times in 10 here). It is now made whole and linked into place."""
    for i in range(6):
        root, out = tmp_path / f"in{i}", tmp_path / f"out{i}"
        root.mkdir()
        (root / "a.wav").symlink_to(LONG_EN)
        db = out / ".malsori-jobs.sqlite"
        proc = subprocess.Popen(
            [*CLI, "batch", str(root), "-o", str(out), "--model", "tiny.en", "-q", "-f", "txt"],
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            while not db.exists() and proc.poll() is None and time.monotonic() < deadline:
                pass  # no sleep: look as soon as the name is there
            assert db.exists(), "the run made no job database"
            reader = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
            try:
                reader.execute("SELECT * FROM files").fetchall()
                reader.execute("SELECT * FROM meta").fetchall()
            finally:
                reader.close()
        finally:
            proc.kill()
            proc.wait()


def test_a_file_written_into_out_while_decoding_is_kept(tmp_path: Path) -> None:
    """The output path is checked when the run starts *and* just before the rename: notes
    saved as talk.txt while talk.wav was being transcribed were replaced silently."""
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    (root / "talk.wav").symlink_to(LONG_EN)
    proc = subprocess.Popen(
        [*CLI, "batch", str(root), "-o", str(out), "--model", "tiny.en", "-q", "-f", "txt"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if (out / ".malsori-jobs.sqlite").exists() and any(
            r["status"] == "running" for r in rows(out).values()
        ):
            break
    (out / "talk.txt").write_text("MY HAND-WRITTEN NOTES\n")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err
    assert (out / "talk.txt").read_text() == "MY HAND-WRITTEN NOTES\n"
    row = rows(out)["talk.wav"]
    assert row["status"] == "failed" and "while this file was being transcribed" in row["error"]
    assert not list(out.glob(".talk.txt.*"))  # no temporary left either


def test_an_input_folder_emptied_for_a_while_loses_nothing(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """An unmounted share looks like an empty folder: nothing is dropped then. A file moved
    away and back is dropped and comes back: its old outputs, still as written, are
    replaced (they were failed as 'not written by this job' for ever)."""
    root, out, away = tmp_path / "in", tmp_path / "out", tmp_path / "away"
    _job_with(clips, root, {"a.wav": "garden", "b.wav": "river"})
    assert batch(root, out, "-f", "txt").returncode == 0
    away.mkdir()
    for name in ("a.wav", "b.wav"):
        (root / name).rename(away / name)
    empty = batch(root, out, "-f", "txt")
    assert empty.returncode == 0, empty.stderr
    assert "nothing is dropped" in empty.stderr and set(rows(out)) == {"a.wav", "b.wav"}
    (away / "a.wav").rename(root / "a.wav")  # one back: b.wav is now really gone
    partly = batch(root, out, "-f", "txt")
    assert partly.returncode == 0 and "1 file(s) no longer in the input" in partly.stderr
    assert set(rows(out)) == {"a.wav"}
    (away / "b.wav").rename(root / "b.wav")
    back = batch(root, out, "-f", "txt")
    assert back.returncode == 0, back.stderr
    assert {r["status"] for r in rows(out).values()} == {"done"}
    assert "river" in (out / "b.txt").read_text().lower()
    # a loose output that was edited meanwhile is still never replaced
    (root / "b.wav").rename(away / "b.wav")
    assert batch(root, out, "-f", "txt").returncode == 0
    (out / "b.txt").write_text("MY CORRECTION\n")
    (away / "b.wav").rename(root / "b.wav")
    edited = batch(root, out, "-f", "txt")
    assert edited.returncode == 1 and (out / "b.txt").read_text() == "MY CORRECTION\n"


def test_a_run_killed_between_writing_and_recording_is_redone(tmp_path: Path) -> None:
    """SIGKILL just after the outputs appear (before the job database records them): the
    next run must redo the file, not fail it as 'not written by this job' for ever. The
    kill lands in that gap often but not always; every outcome must end the same."""
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    for name, text in (("p", "one two three"), ("q", "four five six")):
        espeak(f"{text}.", root / f"{name}.wav")
    for _ in range(2):
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.Popen(
            [*CLI, "batch", str(root), "-o", str(out), "--model", "tiny.en", "-q", "-f", "txt"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while proc.poll() is None:
            if out.is_dir() and any(n.endswith(".tmp") for n in os.listdir(out)):
                time.sleep(0.002)
                proc.kill()
                break
            time.sleep(0.0003)
        proc.wait()
        again = batch(root, out, "-f", "txt")
        assert again.returncode == 0, again.stderr
        assert {r["status"] for r in rows(out).values()} == {"done"}


def test_killed_worker_is_noticed_and_its_file_requeued(tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    for i in range(4):
        (root / f"f{i}.wav").symlink_to(LONG_EN)
    proc = subprocess.Popen(
        [
            *CLI,
            *("batch", str(root), "-o", str(out), "--model", "tiny.en", "-q", "-f", "txt"),
            *("--workers", "2", "--retries", "1"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    victim = None
    deadline = time.monotonic() + 300
    while victim is None and time.monotonic() < deadline:
        time.sleep(0.1)
        if (out / ".malsori-jobs.sqlite").exists():
            running = [r for r in rows(out).values() if r["status"] == "running"]
            if running:
                victim = running[0]
    assert victim is not None, "no file started"
    pid = int(victim["worker"].rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    warnings = [x for x in err.splitlines() if "died" in x]
    assert len(warnings) == 1 and f"pid {pid} died (SIGKILL)" in warnings[0], err
    assert victim["path"] in warnings[0] and "goes back to the queue" in warnings[0]
    assert "4 done, 0 failed, 0 pending, 0 running" in err
    db = rows(out)
    assert db[victim["path"]]["attempts"] == 2  # the killed attempt counts
    assert all(r["status"] == "done" for r in db.values())
    assert "Traceback" not in err


def test_temporaries_of_a_killed_run_are_swept_and_nothing_else(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """A run killed while writing leaves ``.name.XXXXXXXX.tmp`` (and, mid-rollback,
    ``.name.XXXXXXXX.old``) beside its outputs. The next run removes exactly those: files
    of that shape for its own output names, never a user's look-alike."""
    root, out = tmp_path / "in", tmp_path / "out"
    _job_with(clips, root, {"회의.wav": "garden", "b.wav": "river"})
    assert batch(root, out, "-f", "txt,srt").returncode == 0
    leftovers = []
    for name, suffix in (("회의.txt", ".tmp"), ("b.srt", ".tmp")):
        fd, path = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=out)
        os.write(fd, b"half a transcr")
        os.close(fd)
        leftovers.append(Path(path))
    leftovers.append(out / ".b.txt.0badc0de.old")
    leftovers[-1].write_text("old")
    decoys = [
        out / ".notes.txt.abcdefgh.tmp",  # not an output of this job
        out / ".b.txt.tmp",  # not the temporary-file shape
        out / ".b.txt.abcdefghi.tmp",  # 9 characters
        out / "b.txt.abcdefgh.tmp",  # no leading dot
    ]
    for d in decoys:
        d.write_text("mine")
    again = batch(root, out, "-f", "txt,srt")
    assert again.returncode == 0, again.stderr
    assert "removed 3 temporary file(s)" in again.stderr, again.stderr
    assert not any(p.exists() for p in leftovers)
    assert all(d.read_text() == "mine" for d in decoys)
    assert "garden" in (out / "회의.txt").read_text().lower()
    quiet = batch(root, out, "-f", "txt,srt")
    assert "temporary" not in quiet.stderr
    # transcribe -o does the same for the files it is about to write (under its lock)
    solo = tmp_path / "solo"
    solo.mkdir()
    (solo / ".b.txt.abcd1234.tmp").write_text("half")
    (solo / ".notes.txt.abcd1234.tmp").write_text("mine")
    proc = subprocess.run(
        [*CLI, "transcribe", "--model", "tiny.en", "-q", str(root / "b.wav"), "-o", str(solo)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert not (solo / ".b.txt.abcd1234.tmp").exists()
    assert (solo / ".notes.txt.abcd1234.tmp").read_text() == "mine"


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's tmp dirs are 0700)."""
    d = Path(tempfile.mkdtemp(prefix="malsori-perm-", dir="/tmp"))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root")
def test_unreadable_entries_are_reported_as_nobody(clips: dict[str, Path], world_dir: Path) -> None:
    root, out = world_dir / "in", world_dir / "out"
    (root / "open").mkdir(parents=True)
    (root / "closed").mkdir()
    shutil.copy(clips["garden"], root / "open" / "ok.wav")
    shutil.copy(clips["river"], root / "open" / "secret.wav")
    shutil.copy(clips["train"], root / "closed" / "hidden.wav")
    (root / "open" / "secret.wav").chmod(0o000)
    (root / "closed").chmod(0o000)
    for p in (root, root / "open", root / "open" / "ok.wav"):
        p.chmod(p.stat().st_mode | stat.S_IROTH | stat.S_IXOTH)
    env = dict(os.environ, XDG_CACHE_HOME=str(world_dir / "cache"), HOME=str(world_dir))
    cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    proc = subprocess.run(
        [*cmd, *CLI, "batch", str(root), "-o", str(out), "--model", "tiny.en", "-q", "-f", "txt"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 1, proc.stderr
    assert "open/secret.wav" in proc.stderr and "closed/" in proc.stderr
    db = rows(out)
    assert db["open/ok.wav"]["status"] == "done"
    assert db["open/secret.wav"]["status"] == "failed"
    assert "Permission denied" in db["open/secret.wav"]["error"]
    assert db["closed/"]["status"] == "failed"
    assert "cannot read directory" in db["closed/"]["error"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_result_files_follow_the_umask(
    clips: dict[str, Path], tmp_path: Path, umask: int, mode: int
) -> None:
    out = tmp_path / "out"
    subprocess.run(
        [*CLI, "transcribe", "--model", "tiny.en", "-q", "-o", str(out), str(clips["garden"])],
        check=True,
        capture_output=True,
        timeout=120,
        preexec_fn=lambda: os.umask(umask),
    )
    files = list(out.glob("garden.*"))
    assert len(files) == 5
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {mode}


def test_closed_pipe_exits_quietly(clips: dict[str, Path], tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    shutil.copy(clips["garden"], root / "a.wav")
    assert batch(root, out, "-f", "txt").returncode == 0
    cli = " ".join(CLI)
    for command in (f"batch status {out}", f"batch report {out}", "models"):
        # `true` exits without reading: every write to the pipe fails with EPIPE.
        proc = subprocess.run(
            f"{cli} {command} | true; echo ${{PIPESTATUS[0]}}",
            shell=True,
            executable="/bin/bash",
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.stderr == "", (command, proc.stderr)
        assert proc.stdout.strip() in ("0", "141"), (command, proc.stdout)


def test_batch_subcommands_are_unambiguous(clips: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "status"  # a folder named like a sub-command
    folder.mkdir()
    shutil.copy(clips["garden"], folder / "a.wav")
    out = tmp_path / "out"
    run = subprocess.run(
        [
            *CLI,
            "batch",
            "run",
            str(folder),
            "-o",
            str(out),
            "--model",
            "tiny.en",
            "-q",
            "-f",
            "txt",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert "garden" in (out / "a.txt").read_text().lower()
    status = subprocess.run(
        [*CLI, "batch", "status", str(out)], capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0 and "1 total, 1 done" in status.stdout
    usage = subprocess.run(
        [*CLI, "batch", "status"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert usage.returncode == 2 and "OUT" in usage.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--retries", "-1"), "--retries: must be >= 0"),
        (("--workers", "0"), "--workers: must be >= 1"),
    ],
)
def test_bad_numbers_are_refused(
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    proc = run_cli("batch", str(tmp_path), "-o", str(tmp_path / "out"), *args)
    assert proc.returncode == 2 and message in proc.stderr


def test_several_inputs_to_stdout_are_labelled(clips: dict[str, Path]) -> None:
    proc = subprocess.run(
        [*CLI, "transcribe", "--model", "tiny.en", "-q", str(clips["garden"]), str(clips["river"])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    parts = proc.stdout.split(f"==> {clips['river']} <==")
    assert len(parts) == 2 and parts[0].startswith(f"==> {clips['garden']} <==")
    assert "garden" in words(parts[0]) and "river" in words(parts[1])


def test_subtitle_flags_reach_batch_workers_and_reruns(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    (root / "long.wav").symlink_to(LONG_EN)
    proc = batch(root, out, "-f", "srt", "--max-line-width", "24", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    srt = out / "long.srt"
    lines = [x for x in srt.read_text().splitlines() if x and not x[0].isdigit()]
    assert lines and max(len(x) for x in lines) <= 24
    check = subprocess.run(
        [*CLI, "subtitles", "check", str(srt), "--language", "en", "--max-line-width", "24"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # Other subtitle limits are another request: redone, and the run says why.
    again = batch(root, out, "-f", "srt")
    assert "subtitles max_line_width=24 -> defaults" in again.stderr
    assert max(len(x) for x in srt.read_text().splitlines()) > 24


def test_output_inside_input_is_not_scanned(clips: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(clips["garden"], root / "a.wav")
    out = root / "out"
    for _ in range(2):  # the second run sees the first run's outputs inside INPUT_DIR
        proc = batch(root, out, "-f", "txt,json", "--glob", "*")
        assert proc.returncode == 0, proc.stderr
    assert list(rows(out)) == ["a.wav"]
    assert "0 new, 0 changed, 1 unchanged" in proc.stderr
    assert "out/ is the output folder: not scanned" in proc.stderr  # said, not silent


# -- found by a hostile-user session (issue #12 follow-ups) ------------------------------


def _job_with(clips: dict[str, Path], root: Path, names: dict[str, str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for filename, clip in names.items():
        shutil.copy(clips[clip], root / filename)


def test_another_archive_cannot_take_over_when_the_first_is_gone(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    usb, home, out = tmp_path / "usb" / "REC", tmp_path / "home" / "REC", tmp_path / "tr"
    _job_with(clips, usb, {"REC001.wav": "garden", "REC002.wav": "river"})
    _job_with(clips, home, {"REC001.wav": "train"})
    assert batch(usb, out, "-f", "txt").returncode == 0
    usb.parent.rename(tmp_path / "usb-unplugged")
    proc = batch(home, out, "-f", "txt")
    assert proc.returncode == 1 and "another archive" in proc.stderr
    assert "garden" in (out / "REC001.txt").read_text().lower()  # not overwritten
    # One file in common is not enough when another known name has other content (REC002
    # here is another recording: its transcript, the only one left, was overwritten).
    _job_with(clips, home, {"REC001.wav": "garden", "REC002.wav": "piano"})
    proc = batch(home, out, "-f", "txt")
    assert proc.returncode == 1 and "have other content there" in proc.stderr, proc.stderr
    assert "river" in (out / "REC002.txt").read_text().lower()
    # The same archive, really moved, resumes.
    moved = batch(tmp_path / "usb-unplugged" / "REC", out, "-f", "txt")
    assert moved.returncode == 0 and "the input moved from" in moved.stderr


def test_name_that_is_not_utf8_fails_alone(clips: dict[str, Path], tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    shutil.copy(clips["garden"], os.fsdecode(bytes(root) + b"/caf\xe9.wav"))
    shutil.copy(clips["river"], root / "ok.wav")
    proc = batch(root, out, "-f", "txt")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    db = rows(out)
    assert db["ok.wav"]["status"] == "done"
    assert db["caf\\xe9.wav"]["error"] == "the file name is not valid UTF-8; rename it"


def test_output_dir_equal_to_input(clips: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "rec"
    _job_with(clips, root, {"a.wav": "garden"})
    for glob in ("*.wav", "*"):  # '*' also sees a.txt: the job's own output, never an input
        proc = batch(root, root, "-f", "txt", "--glob", glob)
        assert proc.returncode == 0, proc.stderr
    assert list(rows(root)) == ["a.wav"]
    assert "garden" in (root / "a.txt").read_text().lower()


def test_removed_inputs_leave_the_job(clips: dict[str, Path], tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    _job_with(clips, root, {"a.wav": "garden"})
    (root / "garbage.mp3").write_bytes(os.urandom(3000))
    assert batch(root, out, "-f", "txt").returncode == 1
    (root / "garbage.mp3").unlink()
    proc = batch(root, out, "-f", "txt")
    assert proc.returncode == 0, proc.stderr
    assert "1 file(s) no longer in the input" in proc.stderr
    assert list(rows(out)) == ["a.wav"]


def test_a_new_request_gives_failed_files_their_retries_back(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    _job_with(clips, root, {"a.wav": "garden"})
    (out / "a.txt").mkdir(parents=True)  # in the way of the one format asked
    for _ in range(3):
        batch(root, out, "-f", "txt")
    assert rows(out)["a.wav"]["status"] == "failed"
    proc = batch(root, out, "-f", "json")  # another request
    assert proc.returncode == 0, proc.stderr
    assert "failed file(s) get their retries again" in proc.stderr


def test_swapped_files_with_same_size_and_mtime_are_noticed(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    for name, clip in (("a.wav", "garden"), ("b.wav", "river")):
        subprocess.run(["sox", str(clips[clip]), str(root / name), "trim", "0", "2.0"], check=True)
        os.utime(root / name, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    assert batch(root, out, "-f", "txt").returncode == 0
    (root / "a.wav").rename(root / "t.wav")
    (root / "b.wav").rename(root / "a.wav")
    (root / "t.wav").rename(root / "b.wav")
    proc = batch(root, out, "-f", "txt")
    assert "2 changed" in proc.stderr
    assert "garden" in (out / "b.txt").read_text().lower()


def test_files_malsori_did_not_write_are_never_overwritten(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    _job_with(clips, root, {"notes.wav": "garden"})
    out.mkdir()
    (out / "notes.txt").write_text("IMPORTANT: my own notes\n")
    proc = batch(root, out, "-f", "txt")
    assert proc.returncode == 1
    assert (out / "notes.txt").read_text() == "IMPORTANT: my own notes\n"
    assert "was not written by this job" in rows(out)["notes.wav"]["error"]
    # Edited output of another input, whose name a new file now takes: kept too.
    root2, out2 = tmp_path / "in2", tmp_path / "out2"
    root2.mkdir()
    convert(clips["garden"], root2 / "x.wav.mp3")
    assert batch(root2, out2, "-f", "txt").returncode == 0
    (out2 / "x.wav.txt").write_text("MY HAND-CORRECTED TRANSCRIPT\n")
    shutil.copy(clips["river"], root2 / "x.wav")  # x.wav and x.mp3 now share a stem, so
    convert(clips["train"], root2 / "x.mp3")  # x.wav's outputs are named x.wav.*
    batch(root2, out2, "-f", "txt")
    assert (out2 / "x.wav.txt").read_text() == "MY HAND-CORRECTED TRANSCRIPT\n"
    assert "was edited since it was written" in rows(out2)["x.wav"]["error"]


def test_longest_legal_names(clips: dict[str, Path], tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    _job_with(clips, root, {"a" * 245 + ".wav": "garden", "가" * 82 + ".wav": "river"})
    proc = batch(root, out, "-f", "txt")
    assert proc.returncode == 0, proc.stderr
    assert (out / ("가" * 82 + ".txt")).read_text().strip()
    # one byte more: that file fails, naming the output it could not write
    _job_with(clips, root, {"b" * 251 + ".wav": "train"})
    proc = batch(root, out, "-f", "txt,json")
    assert proc.returncode == 1
    error = rows(out)["b" * 251 + ".wav"]["error"]
    assert error == f"cannot write {out / ('b' * 251 + '.json')}: File name too long", error


def test_stdout_past_the_file_size_limit_is_an_error(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))

    with open(tmp_path / "t.json", "wb") as sink:
        proc = subprocess.run(
            [*CLI, "transcribe", "--model", "tiny.en", "-q", "-f", "json", str(clips["garden"])],
            stdout=sink,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            preexec_fn=limit,
        )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "malsori: error: cannot write the output: File too large"


def test_a_rerun_for_another_format_keeps_what_the_others_had(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """-f srt,json then -f txt: txt is new, so the file is decoded again and its srt/json
    are rewritten from the new transcript; they lost their word timings (srt cues timed by
    segment, json without words). And a format written before, asked again alone, redoes
    nothing ("Asking for fewer formats redoes nothing")."""
    root, out = tmp_path / "in", tmp_path / "out"
    _job_with(clips, root, {"a.wav": "garden"})
    assert batch(root, out, "-f", "srt,json").returncode == 0
    srt = (out / "a.srt").read_text()
    assert json.loads((out / "a.json").read_text())["segments"][0]["words"]
    again = batch(root, out, "-f", "txt")
    assert again.returncode == 0 and "1 done file(s) redone" in again.stderr, again.stderr
    assert json.loads((out / "a.json").read_text())["segments"][0]["words"]
    assert (out / "a.srt").read_text() == srt
    assert "garden" in (out / "a.txt").read_text().lower()
    for formats in ("srt", "txt", "json,txt"):  # all written last time: nothing to redo
        quiet = batch(root, out, "-f", formats)
        assert quiet.returncode == 0 and "redone" not in quiet.stderr, (formats, quiet.stderr)


def test_report_destinations(clips: dict[str, Path], tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "out"
    _job_with(clips, root, {"a.wav": "garden", "b.wav": "river"})
    assert batch(root, out, "-f", "txt,json").returncode == 0
    (root / "b.wav").unlink()  # b.wav leaves the job; its transcripts stay
    assert batch(root, out, "-f", "txt,json").returncode == 0
    transcript, kept = (out / "a.json").read_bytes(), (out / "b.json").read_bytes()
    for dest, message in (
        (str(tmp_path / "nope" / "r.csv"), "no folder"),
        (str(out / ".malsori-jobs.sqlite"), "one of the batch job's own files"),
        (str(tmp_path / "r.xlsx"), "written as .csv or .json"),
        (str(out / "a.json"), "is a transcript of this job"),
        (str(out / "b.json"), "is a transcript of this job"),
        (str(out), "is a folder"),
    ):
        proc = subprocess.run(
            [*CLI, "batch", "report", str(out), "-o", dest],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert (out / "a.json").read_bytes() == transcript and (out / "b.json").read_bytes() == kept
    assert batch(root, out, "-f", "txt,json").returncode == 0  # the job database is intact
    through = subprocess.run(
        [*CLI, "batch", "report", str(out), "-o", "/dev/stdout"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert through.stdout.startswith("path,") and Path("/dev/stdout").is_symlink()
    # a .csv file opens in Excel with its Korean names intact: UTF-8 with a byte-order mark
    _job_with(clips, root, {"회의록.wav": "river"})
    assert batch(root, out, "-f", "txt,json").returncode == 0
    proc = subprocess.run(
        [*CLI, "batch", "report", str(out), "-o", str(tmp_path / "r.csv")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    raw = (tmp_path / "r.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfpath,")
    with open(tmp_path / "r.csv", encoding="utf-8-sig", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert {r["path"] for r in table} == {"a.wav", "회의록.wav"}
    assert any("회의록.txt" in r["outputs"] for r in table)  # not \\uD68C escapes
    # an existing file (a user's own, or a finished transcript of another run) is replaced
    # only when asked: a tester's report went over both with exit 0
    mine = tmp_path / "mine.csv"
    mine.write_text("my numbers\n")
    report = [*CLI, "batch", "report", str(out), "-o", str(mine)]
    proc = subprocess.run(report, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "exists; pass --overwrite" in proc.stderr, proc.stderr
    assert mine.read_text() == "my numbers\n"
    proc = subprocess.run([*report, "--overwrite"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and mine.read_bytes().startswith(b"\xef\xbb\xbfpath,")
    # an input of the job (--glob '*' takes any file): never, even with --overwrite
    notes = root / "notes.json"
    notes.write_text('{"mine": true}\n')
    batch(root, out, "-f", "txt,json", "--glob", "*")  # notes.json fails: not audio
    proc = subprocess.run(
        [*CLI, "batch", "report", str(out), "-o", str(notes), "--overwrite"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1 and "is an input of this job" in proc.stderr, proc.stderr
    assert notes.read_text() == '{"mine": true}\n'


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root")
def test_read_only_output(clips: dict[str, Path], tmp_path: Path) -> None:
    # Root without the capabilities that bypass file permissions: a user's view.
    user = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    user += ["--inh-caps=-dac_override,-dac_read_search"]
    root, ro = tmp_path / "in", tmp_path / "ro"
    _job_with(clips, root, {"a.wav": "garden"})
    ro.mkdir()
    ro.chmod(0o555)
    proc = subprocess.run(
        [*user, *CLI, "batch", str(root), "-o", str(ro), "--model", "tiny.en", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"malsori: error: cannot write to output directory {ro}: " + (
        "Permission denied"
    )
    # A finished job made read-only: status and report still read it.
    done = tmp_path / "done"
    assert batch(root, done, "-f", "txt").returncode == 0
    for p in done.iterdir():
        p.chmod(0o444)
    done.chmod(0o555)
    for sub in ("status", "report"):
        proc = subprocess.run(
            [*user, *CLI, "batch", sub, str(done)], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        assert "a.wav" in proc.stdout or "1 done" in proc.stdout
    done.chmod(0o755)


def test_an_english_only_model_is_refused_before_anything_is_recorded(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """Before: every file of the archive was recorded as failed, one by one."""
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    shutil.copy(clips["garden"], root / "garden.wav")
    for extra, message in (
        (("--language", "ko"), "cannot transcribe language 'ko'"),
        (("--task", "translate"), "cannot translate"),
    ):
        proc = batch(root, out, *extra)
        assert proc.returncode != 0 and message in proc.stderr and "tiny.en" in proc.stderr
        assert "Traceback" not in proc.stderr and not out.exists()
    done = batch(root, out, "--language", "en")  # the same job, asked right, just works
    assert done.returncode == 0, done.stderr
    assert "tomato" in (out / "garden.txt").read_text()


def test_another_input_never_takes_the_transcript_a_dropped_input_left(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """talk.wav is transcribed, then deleted, and talk.mp3 (another recording) appears: the
    run that says the dropped input's outputs stay wrote talk.mp3's text over them."""
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    shutil.copy(clips["garden"], root / "talk.wav")
    assert batch(root, out, "-f", "txt").returncode == 0
    first = (out / "talk.txt").read_bytes()
    (root / "talk.wav").unlink()
    convert(clips["river"], root / "talk.mp3")
    proc = batch(root, out, "-f", "txt")
    assert proc.returncode == 1
    assert (out / "talk.txt").read_bytes() == first  # the only transcript of talk.wav
    assert "holds the transcript of talk.wav" in rows(out)["talk.mp3"]["error"]
    # The recording it was written for comes back: it may replace it (and talk.mp3, whose
    # name now takes the extension, is written beside it).
    shutil.copy(clips["garden"], root / "talk.wav")
    proc = batch(root, out, "-f", "txt")
    assert proc.returncode == 0, proc.stderr
    assert "tomato" in (out / "talk.wav.txt").read_text()
    assert "river" in (out / "talk.mp3.txt").read_text()


def test_transcribe_o_waits_for_no_batch_and_a_batch_for_no_transcribe(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """A batch job and `transcribe -o` writing x.txt into one folder at once: the later
    writer replaced the other's result and both said they were done (a hostile tester)."""
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    for i in range(4):
        shutil.copy(clips["garden"], root / f"f{i}.wav")
    other = shutil.copy(clips["river"], tmp_path / "f0.wav")
    with _paused_batch(root, out) as first:
        proc = _transcribe_o("-o", str(out), "-f", "txt", str(other))
        below = _transcribe_o("-o", str(out / "sub"), "-f", "txt", str(other))
    assert below.returncode == 1 and f"whose output folder {out} holds" in below.stderr
    assert not (out / "sub").exists()  # refused before the folder is made (a tester)
    assert proc.returncode == 1
    assert f"a batch job is running on {out} (pid {first.pid})" in proc.stderr, proc.stderr
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert all("tomato" in (out / f"f{i}.txt").read_text() for i in range(4))
    # Once the batch has ended, transcribe -o refuses the batch's own transcript by name.
    proc = _transcribe_o("-o", str(out), "-f", "txt", str(other))
    assert proc.returncode == 1 and "was not written by malsori" in proc.stderr


def test_transcribe_o_killed_while_renaming_is_rerun_cleanly(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """A run stopped between two renames of one input's set left txt from one model and
    json from another, and the same command then refused with "changed since malsori
    wrote it". The ledger now lists a set before renaming it, and an interrupt rolls the
    set back."""
    from malsori._atomic import atomic_write_many
    from malsori._ledger import Ledger, input_id

    audio = shutil.copy(clips["garden"], tmp_path / "a.wav")
    out = tmp_path / "out"
    assert _transcribe_o("-o", str(out), "-f", "txt,json", str(audio)).returncode == 0
    before = {p.name: p.read_bytes() for p in out.glob("a.*")}
    # Ctrl-C between the two renames of a new set: the set is rolled back.
    files = [(out / "a.txt", "new text\n"), (out / "a.json", "{}\n")]
    real_replace, calls = os.replace, []

    def interrupted(src: str, dst: Any) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_replace(src, dst)

    os.replace = interrupted  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            atomic_write_many(files)
    finally:
        os.replace = real_replace
    assert {p.name: p.read_bytes() for p in out.glob("a.*")} == before
    assert not [p for p in out.iterdir() if p.name.endswith((".tmp", ".old"))]
    # kill -9 after the ledger listed a new set and one file of it was renamed: the same
    # command just runs again.
    ledger = Ledger(out)
    with ledger.locked():
        ledger.record(files, input_id(str(audio)))
    (out / "a.txt").write_text("new text\n")
    proc = _transcribe_o("-o", str(out), "-f", "txt,json", str(audio))
    assert proc.returncode == 0, proc.stderr
    assert (out / "a.txt").read_bytes() == before["a.txt"]  # a whole set of this run
    assert json.loads((out / "a.json").read_text())["text"] == "".join(
        before["a.txt"].decode().split("\n")
    )


def test_transcribe_o_refuses_a_name_that_looks_the_same_as_one_there(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """회의.wav in NFC, then another 회의.wav in NFD, into one folder: two 회의.txt that a Mac
    or an SMB share takes for one (a hostile tester)."""
    nfc, nfd = unicodedata.normalize("NFC", "회의"), unicodedata.normalize("NFD", "회의")
    (tmp_path / "n1").mkdir()
    (tmp_path / "n2").mkdir()
    a = shutil.copy(clips["garden"], tmp_path / "n1" / f"{nfc}.wav")
    b = shutil.copy(clips["river"], tmp_path / "n2" / f"{nfd}.wav")
    out = tmp_path / "out"
    assert _transcribe_o("-o", str(out), "-f", "txt", str(a)).returncode == 0
    for extra in ((), ("--overwrite",)):
        proc = _transcribe_o("-o", str(out), "-f", "txt", *extra, str(b))
        assert proc.returncode == 1 and "Unicode normal form" in proc.stderr, proc.stderr
    assert [p.name for p in out.glob("*.txt")] == [f"{nfc}.txt"]
    assert "tomato" in (out / f"{nfc}.txt").read_text()


def test_a_linked_folder_inside_out_is_never_written_through(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """OUT/sub a link to another job's folder: job A wrote into job B's results, and B's
    advice (--force) then destroyed A's. OUT/sub a link to OUT itself: x.wav and sub/x.wav
    wrote the same file (a hostile tester)."""
    in_a, out_a, in_b, out_b = (tmp_path / n for n in ("inA", "oA", "inB", "oB"))
    (in_a / "sub").mkdir(parents=True)
    shutil.copy(clips["garden"], in_a / "sub" / "x.wav")
    shutil.copy(clips["river"], in_a / "x.wav")
    in_b.mkdir()
    shutil.copy(clips["train"], in_b / "x.wav")
    assert batch(in_b, out_b, "-f", "txt").returncode == 0
    theirs = (out_b / "x.txt").read_bytes()
    out_a.mkdir()
    for link in (Path("../oB"), Path(".")):
        (out_a / "sub").unlink(missing_ok=True)
        (out_a / "sub").symlink_to(link)
        proc = batch(in_a, out_a, "-f", "txt")
        assert proc.returncode == 1
        error = rows(out_a)["sub/x.wav"]["error"]
        assert f"{out_a / 'sub'} is a symbolic link" in error, error
        assert "tomato" not in (out_a / "x.txt").read_text()  # not sub/x.wav's text
        assert "river" in (out_a / "x.txt").read_text()
        assert (out_b / "x.txt").read_bytes() == theirs


def test_transcribe_o_rerun_for_fewer_formats_names_the_older_files(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """All formats, then `-f txt` with other settings (`--model base` in the report): txt
    came from the new run while srt and json were the old one's, with no notice (a hostile
    tester). They are not rewritten unasked (they may hold speakers or a larger model's
    text: a reviewer), but named."""
    audio = shutil.copy(clips["garden"], tmp_path / "k.wav")
    out = tmp_path / "out"
    assert _transcribe_o("-o", str(out), str(audio)).returncode == 0
    kept = {p.name: p.read_bytes() for p in out.glob("k.*") if p.suffix != ".txt"}
    edited = out / "k.vtt"
    edited.write_text(edited.read_text() + "\nNOTE hand-made\n")
    proc = _transcribe_o("--beam-size", "2", "-o", str(out), "-f", "txt", str(audio))
    assert proc.returncode == 0, proc.stderr
    assert "its srt, tsv, json in" in proc.stderr and "earlier run" in proc.stderr, proc.stderr
    assert "vtt" not in proc.stderr.split("note:")[1].split("in")[0]  # edited: not malsori's
    assert all((out / n).read_bytes() == data for n, data in kept.items() if n != "k.vtt")
    assert "hand-made" in edited.read_text()


def test_out_moved_during_the_run_is_not_recreated(clips: dict[str, Path], tmp_path: Path) -> None:
    """OUT renamed mid-run: the workers recreated OUT with part of the outputs and no job
    database, and the run said all was lost (a hostile tester). The job moves with it."""
    root, out, moved = tmp_path / "in", tmp_path / "out", tmp_path / "moved"
    root.mkdir()
    for i in range(4):
        shutil.copy(clips[["garden", "river"][i % 2]], root / f"f{i}.wav")
    with _paused_batch(root, out) as first:
        out.rename(moved)
    _, err = first.communicate(timeout=600)
    assert first.returncode != 0
    assert "was moved or deleted during the run" in err, err
    assert not out.exists()  # not recreated with part of the results
    proc = batch(root, moved, "-f", "txt")  # the job goes on where it is now
    assert proc.returncode == 0, proc.stderr
    assert all(r["status"] == "done" for r in rows(moved).values())
    assert sorted(p.name for p in moved.glob("*.txt")) == [f"f{i}.txt" for i in range(4)]


def test_hidden_files_and_folders_are_not_inputs(clips: dict[str, Path], tmp_path: Path) -> None:
    """A `.Trash-1000/x.wav` or `.git/...` was transcribed although the README says hidden
    files are never taken (a hostile tester)."""
    root, out = tmp_path / "in", tmp_path / "out"
    (root / ".Trash-1000").mkdir(parents=True)
    _job_with(clips, root, {"a.wav": "garden", ".b.wav": "river", ".Trash-1000/c.wav": "train"})
    for pattern in ((), ("--glob", "*")):
        proc = batch(root, out, "-f", "txt", *pattern)
        assert proc.returncode == 0, proc.stderr
        assert list(rows(out)) == ["a.wav"]


def test_status_and_report_read_a_job_database_of_an_older_malsori(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """`batch report` opens the database read-only, without adding new columns: on a job
    from before this session's loose_outputs.input it failed with a traceback (reviewer)."""
    root, out = tmp_path / "in", tmp_path / "out"
    _job_with(clips, root, {"a.wav": "garden"})
    assert batch(root, out, "-f", "txt").returncode == 0
    for older in ("ALTER TABLE loose_outputs DROP COLUMN input", "DROP TABLE loose_outputs"):
        db = sqlite3.connect(out / ".malsori-jobs.sqlite")
        db.execute(older)
        db.commit()
        db.close()
        for command in ("status", "report"):
            proc = subprocess.run(
                [*CLI, "batch", command, str(out)], capture_output=True, text=True, timeout=60
            )
            assert proc.returncode == 0 and "Traceback" not in proc.stderr, (older, proc.stderr)
            assert "a.wav" in proc.stdout or command == "status"


def test_force_with_a_glob_redoes_only_what_the_glob_matches(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """`--force --glob 'a*'` redid every file of the job and failed the one outside the
    glob ("b.txt was written or changed while ...", its output untouched; a hostile tester)."""
    root, out = tmp_path / "in", tmp_path / "out"
    _job_with(clips, root, {"a.wav": "garden", "b.wav": "river"})
    assert batch(root, out, "-f", "txt").returncode == 0
    before = (out / "b.txt").stat().st_mtime_ns, rows(out)["b.wav"]["updated_at"]
    proc = batch(root, out, "-f", "txt", "--force", "--glob", "a*")
    assert proc.returncode == 0, proc.stderr
    assert "--force: 1 file(s) redone" in proc.stderr, proc.stderr
    assert "1 other file(s) not matched by --glob" in proc.stderr, proc.stderr
    db = rows(out)
    assert db["a.wav"]["status"] == db["b.wav"]["status"] == "done", dict(db["b.wav"])
    assert ((out / "b.txt").stat().st_mtime_ns, db["b.wav"]["updated_at"]) == before
    assert "garden" in (out / "a.txt").read_text().lower()

    # A file outside the glob that is pending again (its edited output blocked it, and a
    # later run retries it): --force does not reach it, its correction stays (a reviewer).
    (out / "b.txt").write_text("MY HAND CORRECTION\n")
    assert batch(root, out, "-f", "txt", "--beam-size", "1").returncode == 1  # b blocked
    proc = batch(root, out, "-f", "txt", "--beam-size", "1", "--force", "--glob", "a*")
    assert (out / "b.txt").read_text() == "MY HAND CORRECTION\n", proc.stderr
    assert "changed since this job wrote it and is kept" in rows(out)["b.wav"]["error"]


def test_a_new_input_never_writes_beside_a_look_alike_kept_transcript(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """회의.wav transcribed, deleted; another recording arrives as 회의.wav in NFD (from a
    Mac): its 회의.txt went beside the kept one, two files that look the same holding
    different recordings (one file on macOS or a normalizing share; a hostile tester)."""
    root, out = tmp_path / "in", tmp_path / "out"
    nfc, nfd = "회의", unicodedata.normalize("NFD", "회의")
    _job_with(clips, root, {f"{nfc}.wav": "garden"})
    assert batch(root, out, "-f", "txt").returncode == 0
    (root / f"{nfc}.wav").unlink()
    shutil.copy(clips["river"], root / f"{nfd}.wav")
    proc = batch(root, out, "-f", "txt")
    assert proc.returncode == 1, proc.stderr
    error = rows(out)[f"{nfd}.wav"]["error"]
    assert "would look the same as" in error and "Unicode normal form" in error, error
    assert f"{nfd}.txt (NFD) would look the same as" in error and "(NFC)" in error, error
    assert [p.name for p in out.glob("*.txt")] == [f"{nfc}.txt"]
    assert "garden" in (out / f"{nfc}.txt").read_text().lower()


def test_an_input_beside_a_folder_named_like_its_output_keeps_its_extension(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """x.wav beside a folder x.txt/ (holding y.wav): x.wav's x.txt was the mirrored folder,
    and it failed on every run with advice that could not help (a hostile tester)."""
    root, out = tmp_path / "in", tmp_path / "out"
    _job_with(clips, root, {"x.wav": "garden"})
    _job_with(clips, root / "x.txt", {"y.wav": "river"})
    proc = batch(root, out, "-f", "txt,srt")
    assert proc.returncode == 0, proc.stderr
    assert all(r["status"] == "done" for r in rows(out).values()), proc.stderr
    assert "garden" in (out / "x.wav.txt").read_text().lower()
    assert "river" in (out / "x.txt" / "y.txt").read_text().lower()


def test_an_edited_transcript_left_under_an_old_name_is_pointed_out(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """m.txt corrected by hand, then m.mp3 added: m.wav's outputs take the name m.wav.txt;
    the corrections stayed in m.txt without a word and the run said only "outputs missing,
    changed or renamed" (a hostile tester). They are kept, and the run says where."""
    root, out = tmp_path / "in", tmp_path / "out"
    _job_with(clips, root, {"m.wav": "garden"})
    assert batch(root, out, "-f", "txt").returncode == 0
    (out / "m.txt").write_text("corrected by hand\n")
    shutil.copy(clips["river"], root / "m.mp3")
    proc = subprocess.run(
        [*CLI, "batch", str(root), "-o", str(out), "--model", "tiny.en", "-f", "txt"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"{out / 'm.txt'} was edited since it was written and is kept" in proc.stderr
    assert f"m.wav's transcript now goes to {out / 'm.wav.txt'}" in proc.stderr, proc.stderr
    assert (out / "m.txt").read_text() == "corrected by hand\n"
    assert "garden" in (out / "m.wav.txt").read_text().lower()


def test_a_playlist_disguised_as_audio_is_not_followed(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """talk.mp3 holding "ffconcat version 1.0 / file private/secret.dat": batch and the
    library followed it and transcribed the other file (the CLI and server refused it; a
    reviewer). Only audio and video containers are opened, on every path."""
    import malsori

    root, out = tmp_path / "in", tmp_path / "out"
    (root / "private").mkdir(parents=True)
    shutil.copy(clips["garden"], root / "private" / "secret.dat")  # not audio by name
    (root / "talk.mp3").write_text("ffconcat version 1.0\nfile private/secret.dat\n")
    assert batch(root, out, "-f", "txt").returncode == 1
    error = rows(out)["talk.mp3"]["error"]
    assert "not an audio or video format malsori reads" in error, error
    assert not list(out.glob("talk*"))
    with pytest.raises(malsori.AudioError, match="not an audio or video format"):
        malsori.transcribe(root / "talk.mp3", "tiny.en")


def test_batch_never_writes_beside_a_look_alike_it_did_not_write(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """transcribe -o wrote 회의_1.txt from a Mac's NFD name; batch then wrote the NFC
    회의_1.txt beside it: two names that look the same (a new user)."""
    root, out = tmp_path / "in", tmp_path / "out"
    nfd = unicodedata.normalize("NFD", "회의_1")
    mac = tmp_path / f"{nfd}.wav"
    shutil.copy(clips["garden"], mac)
    proc = subprocess.run(
        [*CLI, "transcribe", str(mac), "--model", "tiny.en", "-o", str(out), "-f", "txt"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    _job_with(clips, root, {"회의_1.wav": "river"})
    proc = batch(root, out, "-f", "txt")
    assert proc.returncode == 1, proc.stderr
    error = rows(out)["회의_1.wav"]["error"]
    assert "would look the same as" in error, error
    assert [p.name for p in out.glob("*.txt")] == [f"{nfd}.txt"]


def test_a_new_output_never_replaces_a_file_made_after_the_check(
    speech_dir: Path, tmp_path: Path
) -> None:
    """The check that an output path is free comes before the write; a file made there in
    between (another worker's output whose name differs only in case, on a Mac or Windows
    share where ``m.wav.txt`` and ``M.wav.txt`` are one file; notes saved meanwhile) was
    replaced. New outputs are now created with no-replace links: the file fails, the other
    file is kept, and none of this file's outputs is written."""
    from conftest import one_file_job
    from malsori.batch.worker import process_file
    from malsori.engine import load_model
    from malsori.errors import MalsoriError

    out, config, store = one_file_job(tmp_path, speech_dir / "window.wav")
    store.close()

    def meanwhile(records: list[dict[str, object]], rel: str) -> None:
        (out / "a.json").write_text("another writer's json")

    with pytest.raises(MalsoriError, match=r"a\.json"):
        process_file(config, load_model("tiny.en"), "a.wav", meanwhile)
    assert (out / "a.json").read_text() == "another writer's json"
    assert not (out / "a.txt").exists()
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_another_model_exported_into_the_same_folder_redoes_the_files(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """The model folder's path is the same, its model is not (a fine-tuned model exported
    again to the same --output-dir): a tester's rerun said '1 unchanged' and kept tiny.en's
    English for Korean speech."""
    from malsori.models import resolve_model

    root, out, folder = tmp_path / "in", tmp_path / "out", tmp_path / "my-model"
    _job_with(clips, root, {"a.wav": "garden"})
    shutil.copytree(resolve_model("tiny.en").path, folder)
    assert batch(root, out, "-f", "txt", "--model", str(folder)).returncode == 0
    first = json.loads(rows(out)["a.wav"]["request"])
    same = batch(root, out, "-f", "txt", "--model", str(folder))
    assert same.returncode == 0 and "redone" not in same.stderr, same.stderr
    shutil.rmtree(folder)
    shutil.copytree(resolve_model("base").path, folder)
    again = batch(root, out, "-f", "txt", "--model", str(folder))
    assert again.returncode == 0, again.stderr
    assert "1 done file(s) redone" in again.stderr and "model.bin changed" in again.stderr
    second = json.loads(rows(out)["a.wav"]["request"])
    assert first["model"] == second["model"] == str(folder.resolve())
    assert first["model_sha256"] != second["model_sha256"]


def test_the_file_in_progress_when_out_is_moved_stays_pending(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """OUT moved while a file was being decoded: that file was marked failed (an attempt
    used up), so the rerun the message asks for, with --retries 0, never did it (a tester)."""
    from conftest import EVALDATA

    root, out, moved = tmp_path / "in", tmp_path / "out", tmp_path / "moved"
    root.mkdir()
    shutil.copy(EVALDATA / "long" / "ljspeech_LJ001-0001_to_0020_concat.wav", root / "long.wav")
    command = [*CLI, "batch", str(root), "--model", "tiny.en", "-q", "-f", "txt", "--retries", "0"]
    run = subprocess.Popen([*command, "-o", str(out)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # until the file is being decoded
        with contextlib.suppress(sqlite3.Error, OSError):
            if (out / ".malsori-jobs.sqlite").exists() and any(
                r["status"] == "running" for r in rows(out).values()
            ):
                break
        time.sleep(0.1)
    out.rename(moved)
    _, err = run.communicate(timeout=600)
    assert run.returncode != 0 and "was moved or deleted during the run" in err, err
    assert rows(moved)["long.wav"]["status"] == "pending"
    again = subprocess.run(
        [*command, "-o", str(moved)], capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr
    assert rows(moved)["long.wav"]["status"] == "done"
    assert "printing" in (moved / "long.txt").read_text().lower()
