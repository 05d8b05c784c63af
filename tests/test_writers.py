"""Output formats: each parses with a standard parser, timestamps are monotonic, and files
are written atomically under openai-whisper's names."""

from __future__ import annotations

import json
from pathlib import Path

import pysubs2
import pytest
import webvtt

import malsori
from malsori import FORMATS, WRITERS, transcribe, write_transcript


@pytest.fixture(scope="module")
def result(tiny_en: malsori.LoadedModel) -> malsori.Transcript:
    from conftest import EVALDATA

    # Real speech with several segments.
    return transcribe(
        EVALDATA / "en" / "picovoice_leopard_diarization_test.wav", tiny_en, word_timestamps=True
    )


def test_every_format_is_written(result: malsori.Transcript, tmp_path: Path) -> None:
    paths = write_transcript(result, tmp_path, "talk", "all")
    assert sorted(p.name for p in paths) == sorted(f"talk.{f}" for f in FORMATS)
    assert not list(tmp_path.glob(".*.tmp"))


def test_srt_and_vtt_parse_and_are_monotonic(result: malsori.Transcript, tmp_path: Path) -> None:
    assert len(result.segments) >= 2
    srt = pysubs2.SSAFile.from_string(WRITERS["srt"](result), format_="srt")
    (tmp_path / "t.vtt").write_text(WRITERS["vtt"](result), encoding="utf-8")
    vtt = webvtt.read(str(tmp_path / "t.vtt"))
    assert len(srt) == len(vtt) == len([s for s in result.segments if s.text.strip()])
    starts = [e.start for e in srt]
    assert starts == sorted(starts) and all(e.end > e.start for e in srt)
    vtt_starts = [c.start_in_seconds for c in vtt]
    assert vtt_starts == sorted(vtt_starts)
    assert " ".join(c.text for c in vtt).split() == " ".join(e.plaintext for e in srt).split()
    assert srt[0].plaintext.strip() == result.segments[0].text.strip()


def test_json_carries_everything(result: malsori.Transcript) -> None:
    data = json.loads(WRITERS["json"](result))
    assert data["text"] == result.text
    assert data["language"] == "en" and 0 < data["language_probability"] <= 1
    assert data["model"] == "tiny.en"
    assert data["options"]["beam_size"] == 5
    words = [w for s in data["segments"] for w in s["words"]]
    assert words and all({"start", "end", "word", "probability"} <= w.keys() for w in words)
    ends = [s["end"] for s in data["segments"]]
    assert ends == sorted(ends)


def test_tsv_and_txt(result: malsori.Transcript) -> None:
    lines = WRITERS["tsv"](result).splitlines()
    assert lines[0] == "start\tend\ttext"
    rows = [line.split("\t") for line in lines[1:]]
    assert all(int(a) <= int(b) for a, b, _ in rows)
    assert [r[2] for r in rows] == [s.text.strip() for s in result.segments]
    assert WRITERS["txt"](result).split() == result.text.split()


def test_unknown_format_is_an_error(result: malsori.Transcript, tmp_path: Path) -> None:
    with pytest.raises(malsori.OptionsError, match="unknown output format 'docx'"):
        write_transcript(result, tmp_path, "x", "docx")
