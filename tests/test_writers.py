"""Output formats: each parses with a standard parser, timestamps are monotonic, and files
are written atomically under openai-whisper's names."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pysubs2
import pytest
import webvtt

import malsori
from malsori import FORMATS, WRITERS, transcribe, write_transcript
from malsori.subtitles.rules import ENGLISH_LINE_WIDTH, MAX_LINE_COUNT, MIN_GAP
from malsori.writers import MAX_CUE_SECONDS, cues


@pytest.fixture(scope="module")
def result(tiny_en: malsori.LoadedModel) -> malsori.Transcript:
    from conftest import EVALDATA

    # Real speech with several segments.
    return transcribe(
        EVALDATA / "en" / "picovoice_leopard_diarization_test.wav",
        tiny_en,
        word_timestamps=True,
        batch_size=1,
    )


def test_every_format_is_written(result: malsori.Transcript, tmp_path: Path) -> None:
    paths = write_transcript(result, tmp_path, "talk", "all")
    assert sorted(p.name for p in paths) == sorted(f"talk.{f}" for f in FORMATS)
    assert not list(tmp_path.glob(".*.tmp"))
    # the README's snippet into a folder that does not exist yet (it raised OutputError)
    new = tmp_path / "out" / "강의"
    assert [p.parent for p in write_transcript(result, new, "lecture", "srt,vtt,json")] == [new] * 3


def test_srt_and_vtt_parse_and_are_monotonic(result: malsori.Transcript, tmp_path: Path) -> None:
    assert len(result.segments) >= 2
    srt = pysubs2.SSAFile.from_string(WRITERS["srt"](result), format_="srt")
    (tmp_path / "t.vtt").write_text(WRITERS["vtt"](result), encoding="utf-8")
    vtt = webvtt.read(str(tmp_path / "t.vtt"))
    assert len(srt) == len(vtt) == len(cues(result))
    starts = [e.start for e in srt]
    assert starts == sorted(starts) and all(e.end > e.start for e in srt)
    vtt_starts = [c.start_in_seconds for c in vtt]
    assert vtt_starts == sorted(vtt_starts)
    assert " ".join(c.text for c in vtt).split() == " ".join(e.plaintext for e in srt).split()
    assert " ".join(e.plaintext for e in srt).split() == result.text.split()


def test_long_segments_are_split_into_readable_cues(tiny_en: malsori.LoadedModel) -> None:
    from conftest import EVALDATA

    # The batched pipeline yields windows of up to 30 s; with word timings they are cut.
    long = transcribe(
        EVALDATA / "long" / "ljspeech_LJ001-0001_to_0020_concat.wav",
        tiny_en,
        word_timestamps=True,
        batch_size=8,
    )
    assert max(s.end - s.start for s in long.segments) > MAX_CUE_SECONDS
    parts = cues(long)
    assert len(parts) > len(long.segments)
    assert all(end - start <= MAX_CUE_SECONDS + 0.01 for start, end, _ in parts)
    lines = [text.split("\n") for _, _, text in parts]
    assert all(len(cue) <= MAX_LINE_COUNT for cue in lines)
    assert all(len(line) <= ENGLISH_LINE_WIDTH for cue in lines for line in cue)
    assert max(len(cue) for cue in lines) == 2  # long text is wrapped onto two lines
    starts = [start for start, _, _ in parts]
    assert starts == sorted(starts)
    # cues never overlap and keep the 2-frame gap
    assert all(b[0] - a[1] >= MIN_GAP - 1e-9 for a, b in itertools.pairwise(parts))
    assert " ".join(text for _, _, text in parts).split() == long.text.split()


def test_json_carries_everything(result: malsori.Transcript) -> None:
    data = json.loads(WRITERS["json"](result))
    assert data["text"] == result.text
    assert data["language"] == "en" and 0 < data["language_probability"] <= 1
    assert data["model"] == "tiny.en"
    default_beam = malsori.DecodeOptions().beam_size  # 0 = automatic (greedy for English)
    assert data["options"]["beam_size"] == result.options["beam_size"] == default_beam
    words = [w for s in data["segments"] for w in s["words"]]
    assert words and all({"start", "end", "word", "probability"} <= w.keys() for w in words)
    ends = [s["end"] for s in data["segments"]]
    assert ends == sorted(ends)


def test_tsv_and_txt(result: malsori.Transcript) -> None:
    lines = WRITERS["tsv"](result).splitlines()
    assert lines[0] == "start\tend\ttext\tlanguage"
    rows = [line.split("\t") for line in lines[1:]]
    assert all(int(a) <= int(b) for a, b, _, _ in rows)
    assert [r[2] for r in rows] == [s.text.strip() for s in result.segments]
    assert [r[3] for r in rows] == [s.language or "" for s in result.segments]
    assert {r[3] for r in rows} == {"en"}
    assert WRITERS["txt"](result).split() == result.text.split()


def test_unknown_format_is_an_error(result: malsori.Transcript, tmp_path: Path) -> None:
    with pytest.raises(malsori.OptionsError, match="unknown output format 'docx'"):
        write_transcript(result, tmp_path, "x", "docx")


def test_the_name_is_a_file_name_and_overwrite_can_be_refused(
    result: malsori.Transcript, tmp_path: Path
) -> None:
    """``write_transcript(r, "out", "../escape")`` wrote outside the folder, and "" wrote
    ``out/.txt`` (a hostile tester); ``overwrite=False`` keeps a hand-made file."""
    out = tmp_path / "out"
    for stem in ("../escape", "", "a/b"):
        with pytest.raises(malsori.OptionsError, match="must be a file name"):
            write_transcript(result, out, stem, "txt")
    assert not (tmp_path / "escape.txt").exists() and not out.exists()
    # an input "..wav" has the stem ".": "..txt" is a file name like any other (a reviewer)
    assert write_transcript(result, out, ".", "txt") == [out / "..txt"]
    (out / "..txt").unlink()
    (out / "lecture.srt").write_text("MY HAND-MADE SUBTITLES\n")
    with pytest.raises(malsori.OutputError, match=r"lecture\.srt: File exists"):
        write_transcript(result, out, "lecture", "txt,srt", overwrite=False)
    assert (out / "lecture.srt").read_text() == "MY HAND-MADE SUBTITLES\n"
    assert not (out / "lecture.txt").exists()
    assert write_transcript(result, out, "lecture", "srt") == [out / "lecture.srt"]  # replaced
    assert "-->" in (out / "lecture.srt").read_text()
    # two writers at once with overwrite=False: one wins, the other is refused (both
    # "succeeded" 45 times in 50, one silently replacing the other: a hostile tester)
    import threading

    def write(stem: str, won: list[bool]) -> None:
        try:
            write_transcript(result, out, stem, "txt,srt", overwrite=False)
            won.append(True)
        except malsori.OutputError:
            won.append(False)

    for i in range(20):
        won: list[bool] = []
        threads = [threading.Thread(target=write, args=(f"race{i}", won)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(won) == [False, True], (i, won)


def test_a_set_whose_rename_fails_midway_is_rolled_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One input's formats come from one run: when the second of three renames fails (the
    disk went read-only, a share dropped), the first file gets its old content back and a
    file that did not exist before is removed; nothing temporary is left."""
    import os

    from malsori._atomic import atomic_write_many
    from malsori.errors import OutputError

    a, b, c = tmp_path / "회의.txt", tmp_path / "회의.srt", tmp_path / "회의.json"
    a.write_text("old 가\n", encoding="utf-8")
    b.write_text("old 나\n", encoding="utf-8")
    real_replace = os.replace
    calls: list[str] = []

    def flaky_replace(src: str, dst: str | Path) -> None:
        calls.append(str(dst))
        if Path(dst) == b and src.endswith(".tmp"):
            raise OSError(30, "Read-only file system")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OutputError, match=r"회의\.srt"):
        atomic_write_many([(c, "new json\n"), (a, "new 가\n"), (b, "new 나\n")])
    monkeypatch.setattr(os, "replace", real_replace)
    assert calls[:3] == [str(c), str(a), str(b)]  # two renames done before the failure
    assert a.read_text(encoding="utf-8") == "old 가\n"
    assert b.read_text(encoding="utf-8") == "old 나\n"
    assert not c.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["회의.srt", "회의.txt"]
    # and a set that goes through replaces all three, with no leftovers
    atomic_write_many([(c, "new json\n"), (a, "new 가\n"), (b, "new 나\n")])
    assert [p.read_text(encoding="utf-8") for p in (a, b, c)] == [
        "new 가\n",
        "new 나\n",
        "new json\n",
    ]
    assert len(list(tmp_path.iterdir())) == 3


def test_a_failed_set_on_a_disk_without_hard_links_loses_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the old content cannot be kept aside (no hard links: vfat, exFAT, some shares),
    a rollback must not delete an old file: it keeps the new content instead of none."""
    import errno
    import os

    from malsori._atomic import atomic_write_many
    from malsori.errors import OutputError

    a, b, c = tmp_path / "x.txt", tmp_path / "x.srt", tmp_path / "x.json"
    a.write_text("OLD txt\n")
    b.write_text("OLD srt\n")
    real_replace = os.replace

    def no_link(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    def flaky_replace(src: str, dst: str | Path) -> None:
        if Path(dst) == b:
            raise OSError(errno.EIO, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "link", no_link)
    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OutputError, match=r"x\.srt"):
        atomic_write_many([(c, "NEW json\n"), (a, "NEW txt\n"), (b, "NEW srt\n")])
    monkeypatch.undo()
    assert a.read_text() == "NEW txt\n"  # kept, not deleted
    assert b.read_text() == "OLD srt\n"
    assert not c.exists()  # new in the set: removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.srt", "x.txt"]


def test_writes_that_never_replace_work_on_a_disk_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new file is created with a hard link (refused if the name is taken); a FAT/exFAT
    USB disk has none (EPERM): every batch file and ``transcribe -o`` write failed there (a
    reviewer). Without links the name is checked again just before the rename."""
    import errno
    import os

    from malsori._atomic import atomic_write_many
    from malsori.errors import OutputError

    def no_links(src: object, dst: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    a, b = tmp_path / "회의.txt", tmp_path / "회의.srt"
    atomic_write_many([(a, "가\n"), (b, "1\n")], replace=False)
    assert a.read_text() == "가\n" and b.read_text() == "1\n"
    with pytest.raises(OutputError, match="exists"):
        atomic_write_many([(a, "other\n")], replace=False)
    assert a.read_text() == "가\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["회의.srt", "회의.txt"]  # no .tmp
