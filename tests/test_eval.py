"""malsori eval: metrics on known strings, manifest problems with line numbers, and an
end-to-end evaluation on tiny.en with real speech."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import malsori
from conftest import EVALDATA
from malsori import errors
from malsori._extras import require_extra
from malsori.evaluate import ManifestError, read_manifest, score
from malsori.evaluate.metrics import normalize

Run = Callable[..., subprocess.CompletedProcess[str]]


def test_english_normalizer_and_counts() -> None:
    s = score(
        "Mr. Quilter is the apostle of the middle classes",
        "mister quilter is apostle of the the middle glasses",
        "en",
    )
    assert (s.ref_words, s.substitutions, s.insertions, s.deletions) == (9, 1, 1, 1)
    assert s.wer == pytest.approx(3 / 9)
    assert s.diff == "mister quilter is [-the] apostle of the [+the] middle [classes→glasses]"
    assert score("It's 10 o'clock.", "it is ten o'clock", "en").wer == 0.0
    assert score("Hello, World!", "hello world", "en").raw_wer == pytest.approx(1.0)


def test_korean_cer_ignores_spacing() -> None:
    s = score("방자 차돌이 놈과 구경 갔다가", "방자 차돌이놈과 구경 갔다가.", "ko")
    assert s.cer == 0.0 and s.wer > 0  # spacing differs, characters identical
    s = score("안녕하세요", "안녕하세오", "ko")
    assert s.char_errors == 1 and s.ref_chars == 5 and s.cer == pytest.approx(0.2)
    assert normalize("  Hello,   WORLD!! ", "de") == "hello world"


def test_empty_hypothesis_and_reference() -> None:
    assert score("hello there", "", "en").wer == 1.0
    assert score("hello there", "", "en").deletions == 2


def _manifest(tmp_path: Path, body: str, header: str = "path\tlanguage\treference") -> Path:
    clip = tmp_path / "clip.wav"
    shutil.copy(EVALDATA / "en" / "jfk.wav", clip)
    path = tmp_path / "m.tsv"
    path.write_text(header + "\n" + body, encoding="utf-8")
    return path


def test_manifest_problems_carry_line_numbers(tmp_path: Path) -> None:
    path = _manifest(
        tmp_path,
        "clip.wav\ten\tAnd so my fellow Americans\n"
        "missing.wav\ten\tsomething\n"
        "clip.wav\ten\t\n"
        "clip.wav\txx\ttext\n"
        "clip.wav\ten\n"
        "clip.wav\ten\ttext\tage\textra\n",
        header="path\tlanguage\treference\tspeaker_age",
    )
    rows, problems = read_manifest(path)
    assert [r.line for r in rows] == [2]
    messages = {p.line: p.message for p in problems}
    assert "unknown column 'speaker_age'" in messages[1]
    assert "audio file not found" in messages[3]
    assert "empty reference" in messages[4]
    assert "unknown language code 'xx'" in messages[5]
    assert "empty reference" in messages[6]
    assert "expected 4 tab-separated fields, got 5" in messages[7]


def test_manifest_without_required_columns(tmp_path: Path) -> None:
    path = tmp_path / "m.tsv"
    path.write_text("file\ttext\nclip.wav\thello\n")
    with pytest.raises(ManifestError, match="line 1: missing column"):
        read_manifest(path)
    with pytest.raises(ManifestError, match="no such manifest"):
        read_manifest(tmp_path / "none.tsv")


def test_eval_end_to_end_on_tiny_en(run_cli: Run, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    proc = run_cli(
        "eval",
        str(EVALDATA / "manifest.tsv"),
        "--model",
        "tiny.en",
        "--beam-size",
        "1",
        "--beam-size",
        "5",
        "--limit",
        "3",
        "-o",
        str(report),
        "--plot",
        "-q",
    )
    # Korean rows are skipped for the English-only model (and say so), hence exit 1.
    data = json.loads(report.read_text())
    labels = [c["config"]["label"] for c in data["configs"]]
    assert labels == ["tiny.en int8 beam1", "tiny.en int8 beam5"], proc.stderr
    for cfg in data["configs"]:
        utts = cfg["utterances"]
        assert len(utts) + len(cfg["skipped"]) == 3
        assert all(u["language"] == "en" for u in utts)
        assert cfg["totals"]["wer"] < 0.1 and cfg["totals"]["rtf"] > 0
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert proc.returncode == 0, proc.stderr  # the first 3 rows are English: nothing skipped
    md = run_cli(
        "eval",
        str(EVALDATA / "manifest.tsv"),
        "--model",
        "tiny.en",
        "--language",
        "ko",
        "--limit",
        "1",
        "-q",
    )
    assert md.returncode == 1 and "English-only" in md.stdout
    assert "1 row(s) could not be scored" in md.stderr


def test_eval_reports_bad_rows_and_still_scores_good_ones(run_cli: Run, tmp_path: Path) -> None:
    path = _manifest(
        tmp_path,
        "clip.wav\ten\tAnd so, my fellow Americans, ask not what your "
        "country can do for you, ask what you can do for your country.\n"
        "gone.wav\ten\tx\n",
    )
    proc = run_cli("eval", str(path), "--model", "tiny.en", "-q")
    assert proc.returncode == 1
    assert "line 3: audio file not found" in proc.stderr
    # the default configuration is the product default (issue 14)
    assert "| tiny.en int8 beam-auto | en | 1 | **0.00%**" in proc.stdout


def test_every_error_class_is_in_the_drawn_tree_and_exported() -> None:
    classes = [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, Exception) and c.__module__ == errors.__name__
    ]
    assert len(classes) >= 13
    for cls in classes:
        assert issubclass(cls, errors.MalsoriError), cls
        assert cls.__name__ in (errors.__doc__ or "").split(), f"{cls.__name__} not drawn"
        assert getattr(malsori, cls.__name__) is cls, f"{cls.__name__} not exported"
    from malsori.evaluate.manifest import ManifestError as old_path

    assert old_path is ManifestError is errors.ManifestError


def test_require_extra_is_one_line_naming_the_extra() -> None:
    message = (
        r"'malsori eval' needs the eval extra \(no_such_module_x is not installed\): "
        r"pip install -e '\.\[eval\]'"
    )
    with pytest.raises(errors.MissingExtraError, match=message):
        require_extra("eval", "'malsori eval'", ("no_such_module_x",))
    require_extra("eval", "'malsori eval'", ("jiwer", "whisper_normalizer"))  # installed


def test_eval_reports_never_replace_the_manifest_or_files_they_did_not_make(
    run_cli: Run, tmp_path: Path
) -> None:
    """`eval m.tsv -o m.tsv` wrote a Markdown report over the manifest, `--plot m.tsv` a
    PNG, `-o r.md --plot r.md` the plot over the report, `-o` any existing file; and
    `-o nodir/r.md` failed with a traceback after the whole evaluation. Checked first now."""
    manifest = _manifest(
        tmp_path,
        "clip.wav\ten\tAnd so, my fellow Americans, ask not what your country can do for "
        "you, ask what you can do for your country.\n",
    )
    as_csv = tmp_path / "data.csv"
    shutil.copy(manifest, as_csv)
    original = manifest.read_bytes()
    notes = tmp_path / "notes.md"
    notes.write_text("my notes\n")
    for target, args, message in (
        (manifest, ("-o", str(manifest)), "is the input"),
        (as_csv, ("-o", str(as_csv)), "is the input"),
        (manifest, ("--plot", str(manifest)), "ending in .png"),
        (manifest, ("-o", str(tmp_path / "r.md"), "--plot", str(tmp_path / "r.md")), ".png"),
        (manifest, ("-o", str(notes)), "exists; pass --overwrite"),
        (manifest, ("-o", str(tmp_path / "r.png")), "the plot is --plot"),
        # an audio file the manifest lists: never, even with --overwrite (a tester's audio
        # became a Markdown report)
        (manifest, ("-o", str(tmp_path / "clip.wav"), "--overwrite"), "is the input"),
        (manifest, ("-o", str(tmp_path / "talk.wav")), "cannot tell the report format"),
    ):
        proc = run_cli("eval", str(target), "--model", "tiny.en", "-q", *args)
        assert proc.returncode == 1, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert "WER" not in proc.stderr  # refused before any work
    assert manifest.read_bytes() == original and as_csv.read_bytes() == original
    assert (tmp_path / "clip.wav").read_bytes() == (EVALDATA / "en" / "jfk.wav").read_bytes()
    assert not (tmp_path / "talk.wav").exists()
    assert notes.read_text() == "my notes\n" and not (tmp_path / "r.md").exists()
    bad = tmp_path / "bad.tsv"
    bad.write_text("path\tlanguage\treference\ngone.wav\ten\tx\n")
    proc = run_cli("eval", str(bad), "--model", "tiny.en", "-q", "-o", str(tmp_path / "d" / "r.md"))
    assert proc.returncode == 1 and not (tmp_path / "d").exists()  # no folder left behind
    deep = tmp_path / "new" / "folder" / "r.md"
    proc = run_cli("eval", str(manifest), "--model", "tiny.en", "-q", "-o", str(deep), "--plot")
    assert proc.returncode == 0, proc.stderr
    assert "tiny.en" in deep.read_text() and deep.with_suffix(".png").is_file()
    proc = run_cli("eval", str(manifest), "--model", "tiny.en", "-q", "-o", str(notes),
                   "--overwrite")  # fmt: skip
    assert proc.returncode == 0 and "tiny.en" in notes.read_text(), proc.stderr


def test_an_evaluation_that_cannot_be_written_is_kept(tmp_path: Path) -> None:
    """`eval -o r.md --plot` on a full disk threw the whole evaluation away, and a plot
    that failed after the report left the old plot beside the new report (a tester). Now
    the summary is printed first, the report and plot are replaced together or not at all,
    and what cannot be written is saved under the temporary folder, named in the error."""
    import os
    import resource
    import sys

    manifest = _manifest(
        tmp_path,
        "clip.wav\ten\tAnd so, my fellow Americans, ask not what your country can do for "
        "you, ask what you can do for your country.\n",
    )
    report, plot = tmp_path / "r.md", tmp_path / "r.png"
    report.write_text("old report\n")
    plot.write_bytes(b"old plot")
    spare = tmp_path / "tmp"
    spare.mkdir()

    def limit() -> None:  # the report (~2 KB) fits, the plot (~30 KB) does not
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))

    # Once without the limit, so that the caches a first run writes (matplotlib's fonts,
    # the model's checksum record) exist and only the report and plot meet it.
    warm = tmp_path / "warm"
    proc = subprocess.run(
        [sys.executable, "-m", "malsori.cli", "eval", str(manifest), "--model", "tiny.en",
         "-o", str(warm / "r.md"), "--plot"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TMPDIR": str(spare)},
    )  # fmt: skip
    assert proc.returncode == 0 and (warm / "r.png").stat().st_size > 8192, proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "malsori.cli", "eval", str(manifest), "--model", "tiny.en",
         "-o", str(report), "--plot", "--overwrite"],
        capture_output=True, text=True, timeout=300, preexec_fn=limit,
        env={**os.environ, "TMPDIR": str(spare)},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "tiny.en int8 beam-auto [en]: WER 0.00%" in proc.stderr  # the summary
    assert "file too large writing" in proc.stderr and "r.png" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert report.read_text() == "old report\n" and plot.read_bytes() == b"old plot"
    (kept,) = spare.glob("malsori-*/r.md")
    assert str(kept) in proc.stderr
    assert "| tiny.en int8 beam-auto | en | 1 | **0.00%**" in kept.read_text()


def test_plot_without_matplotlib_is_refused_before_the_work(tmp_path: Path) -> None:
    """--plot with matplotlib missing was found after the whole evaluation, as a traceback,
    and the report was lost with it (a reviewer). It is checked first now."""
    import sys

    manifest = _manifest(tmp_path, "clip.wav\ten\tAnd so, my fellow Americans.\n")
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from malsori.cli import main\n"
        f"sys.exit(main(['eval', {str(manifest)!r}, '--model', 'tiny.en', '-o', "
        f"{str(tmp_path / 'r.md')!r}, '--plot']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "--plot needs the eval extra (matplotlib is not installed)" in proc.stderr, proc.stderr
    assert "WER" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r.md").exists()
