"""Subtitles people can read (issue #15): the cue builder on real speech, checked by the
linter (``malsori subtitles check``) with the default and custom limits; hand-made bad
files trigger every rule; Korean lines break only between eojeol."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pysubs2
import pytest

import malsori
from malsori import transcribe
from malsori.cli._args import add_subtitle_arguments, subtitle_options_from_args
from malsori.subtitles import SubtitleOptions, build_cues
from malsori.subtitles.breaks import Unit, wrap
from malsori.subtitles.lint import RULES, Violation, lint_file, lint_text, parse, read
from malsori.subtitles.rules import (
    ENGLISH_CPS,
    ENGLISH_LINE_WIDTH,
    KOREAN_CPS,
    KOREAN_LINE_WIDTH,
    MAX_CUE_DURATION,
    rules_for,
    text_width,
)
from malsori.transcript import Segment, Transcript, Word
from malsori.writers import (
    WRITERS,
    cues,
    options_for_formats,
    render_srt,
    render_vtt,
    using_subtitle_options,
)

EN_LONG = "long/ljspeech_LJ001-0001_to_0020_concat.wav"
KO_LONG = "long/emotiontts_ava00001_to_ava00025_concat.wav"
EN_SHORT = ("en/jfk.wav", "en/picovoice_leopard_diarization_test.wav", "en/ljspeech_LJ001-0002.wav")
KO_SHORT = (
    "ko/emotiontts_ada00005.wav",  # the lone `발생하였다.` orphan of the issue
    "ko/emotiontts_kih00001.wav",
    "ko/emotiontts_pfc00026.wav",
    "ko/picovoice_leopard_test_ko.wav",
)

#: Custom limits per language, tighter than the defaults in every dimension but reading
#: speed (a limit below the speaker's own rate cannot be met without dropping words).
CUSTOM = {
    "en": SubtitleOptions(
        max_line_width=32,
        max_cue_duration=5,
        min_cue_duration=1.0,
        max_cps=22,
        split_on_pause=0.6,
    ),
    "ko": SubtitleOptions(
        max_line_width=20, max_line_count=1, max_cue_duration=4, max_cps=15, split_on_pause=0.8
    ),
}


def _transcribe(path: str, model: malsori.LoadedModel, language: str) -> Transcript:
    """A file transcribed the way the CLI does for srt/vtt (default decoding, word timings)."""
    from conftest import EVALDATA

    options = options_for_formats(malsori.DecodeOptions(language=language), ["srt", "vtt"])
    return transcribe(EVALDATA / path, model, options=options)


@pytest.fixture(scope="session")
def base_model() -> malsori.LoadedModel:
    return malsori.load_model("base")


@pytest.fixture(scope="session")
def en_long(tiny_en: malsori.LoadedModel) -> Transcript:
    return _transcribe(EN_LONG, tiny_en, "en")


@pytest.fixture(scope="session")
def ko_long(base_model: malsori.LoadedModel) -> Transcript:
    return _transcribe(KO_LONG, base_model, "ko")


@pytest.fixture(scope="session")
def long_files(en_long: Transcript, ko_long: Transcript) -> dict[str, Transcript]:
    return {"en": en_long, "ko": ko_long}


def _report(violations: list[Violation]) -> str:
    return "\n".join(str(v) for v in violations)


# --- real speech ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
@pytest.mark.parametrize("language", ["en", "ko"])
@pytest.mark.parametrize("limits", ["default", "custom"])
def test_long_files_break_no_rule(
    long_files: dict[str, Transcript], language: str, fmt: str, limits: str
) -> None:
    result = long_files[language]
    assert result.language == language and result.duration > 140
    options = CUSTOM[language] if limits == "custom" else None
    text = (render_srt if fmt == "srt" else render_vtt)(result, options)
    violations = lint_text(text, fmt, options, language)
    assert violations == [], _report(violations)
    events = parse(text, fmt)
    assert len(events) > 25
    # the text is all there, in order
    said = " ".join(line for ev in events for line in ev.lines).split()
    assert said == result.text.split()


def test_default_writers_follow_the_language(long_files: dict[str, Transcript]) -> None:
    """WRITERS (what write_transcript, the CLI and the server use) applies each language's
    limits: Korean lines of at most 16 (Latin half), English of at most 42."""
    for language, width in (("ko", KOREAN_LINE_WIDTH), ("en", ENGLISH_LINE_WIDTH)):
        events = parse(WRITERS["srt"](long_files[language]), "srt")
        half = language == "ko"
        widths = [text_width(line, half=half) for ev in events for line in ev.lines]
        assert max(widths) <= width
        assert max(len(ev.lines) for ev in events) == 2  # long text is wrapped, not one line
        assert max(ev.duration for ev in events) <= MAX_CUE_DURATION * 1000
    assert lint_text(WRITERS["srt"](long_files["ko"]), "srt", language="en") != []


@pytest.mark.parametrize("language", ["en", "ko"])
@pytest.mark.parametrize("options", [None, "custom"])
def test_no_cue_crosses_a_pause(
    long_files: dict[str, Transcript], language: str, options: str | None
) -> None:
    result = long_files[language]
    opts = CUSTOM[language] if options else SubtitleOptions()
    pause = opts.limits(language).split_on_pause
    built = build_cues(result, opts)
    inside = [
        b.start - a.end for cue in built for a, b in zip(cue.units, cue.units[1:], strict=False)
    ]
    assert inside and max(inside) <= pause
    between = [b.units[0].start - a.units[-1].end for a, b in itertools.pairwise(built)]
    if language == "ko" or options:  # (the English file's longest pause is 0.84 s)
        assert max(between) > pause  # the file has such pauses, and cues end at them
    # every word's speech lies inside its cue's display time (within the 0.5 s allowance)
    for cue in built:
        assert cue.start <= cue.units[0].start + 0.5 and cue.end >= cue.units[-1].end - 0.5


def test_korean_lines_never_split_an_eojeol(ko_long: Transcript) -> None:
    eojeol = [w.word.strip() for w in ko_long.words]
    assert all(w.word[:1] == " " for w in ko_long.words[1:])  # Whisper marks eojeol starts
    for options in (None, CUSTOM["ko"], SubtitleOptions(max_line_width=8)):
        lines = [line for cue in build_cues(ko_long, options) for line in cue.lines]
        assert all(line == line.strip() and "  " not in line for line in lines)
        assert [w for line in lines for w in line.split(" ")] == eojeol


@pytest.mark.parametrize("clip", EN_SHORT + KO_SHORT)
def test_short_clips_break_no_rule(
    clip: str, tiny_en: malsori.LoadedModel, base_model: malsori.LoadedModel
) -> None:
    language = clip[:2]
    result = _transcribe(clip, tiny_en if language == "en" else base_model, language)
    for options in (None, CUSTOM[language]):
        for fmt in ("srt", "vtt"):
            text = (render_srt if fmt == "srt" else render_vtt)(result, options)
            violations = lint_text(text, fmt, options, language)
            assert violations == [], f"{clip} {options}:\n{_report(violations)}"
    events = parse(render_srt(result), "srt")
    assert " ".join(line for ev in events for line in ev.lines).split() == result.text.split()


def test_korean_sentence_end_is_not_an_orphan(base_model: malsori.LoadedModel) -> None:
    """The issue's example: `발생하였다.` stood alone for 0.94 s; now it ends a cue of its
    sentence."""
    result = _transcribe("ko/emotiontts_ada00005.wav", base_model, "ko")
    built = build_cues(result)
    assert all(len(cue.units) > 2 for cue in built)
    last = built[-1].lines[-1]
    assert last.endswith("다.") and len(last.split()) >= 2


def test_segments_without_word_timings(en_long: Transcript, ko_long: Transcript) -> None:
    """The server's old path: 28 s segments without words still give readable cues."""
    for result, language in ((en_long, "en"), (ko_long, "ko")):
        bare = dataclasses.replace(
            result, segments=[dataclasses.replace(s, words=None) for s in result.segments]
        )
        assert max(s.end - s.start for s in bare.segments) > 20
        text = render_srt(bare)
        violations = lint_text(text, "srt", language=language)
        assert violations == [], _report(violations)
        said = " ".join(line for ev in parse(text, "srt") for line in ev.lines).split()
        assert said == bare.text.split()


def test_highlight_words_underlines_each_word(en_long: Transcript, ko_long: Transcript) -> None:
    for result, language in ((en_long, "en"), (ko_long, "ko")):
        options = SubtitleOptions(highlight_words=True)
        text = render_vtt(result, options)
        assert lint_text(text, "vtt", options, language) == []
        raw = pysubs2.SSAFile.from_string(text, format_="vtt")
        underlined = [re.findall(r"\{\\u1\}(.*?)\{\\u0\}", ev.text) for ev in raw]
        assert all(len(u) == 1 for u in underlined)
        # every word is underlined once, in order (a word shorter than 1 ms may be skipped)
        words = [u[0] for u in underlined]
        assert len(words) >= 0.95 * len(result.text.split())
        assert len(parse(text, "vtt")) == len(build_cues(result))


def test_cues_api_and_defaults(ko_long: Transcript) -> None:
    parts = cues(ko_long)
    assert parts == [(c.start, c.end, c.text) for c in build_cues(ko_long)]
    assert all(b[0] - a[1] >= 0.084 - 1e-9 for a, b in itertools.pairwise(parts))
    limits = SubtitleOptions().limits("ko")
    assert (limits.max_line_width, limits.max_cps) == (KOREAN_LINE_WIDTH, KOREAN_CPS)
    assert SubtitleOptions().limits("en").max_cps == ENGLISH_CPS
    assert rules_for("ja").max_line_width == 13 and rules_for("zh").max_cps == 9
    assert rules_for("fr").name == "generic"


# --- the CLI ------------------------------------------------------------------------------


def test_cli_check_passes_malsori_output_and_fails_old_output(
    en_long: Transcript,
    tmp_path: Path,
    run_cli: Callable[..., CompletedProcess[str]],
) -> None:
    good = tmp_path / "good.srt"
    malsori.write_transcript(en_long, tmp_path, "good", "srt,vtt")
    proc = run_cli("subtitles", "check", str(good), str(tmp_path / "good.vtt"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK" in proc.stdout and "English limits" in proc.stdout
    # one cue per 28 s segment, as the server wrote without word timings before
    old = tmp_path / "old.srt"
    subs = pysubs2.SSAFile()
    for seg in en_long.segments:
        subs.append(
            pysubs2.SSAEvent(
                start=round(seg.start * 1000), end=round(seg.end * 1000), text=seg.text.strip()
            )
        )
    old.write_text(subs.to_string("srt"), encoding="utf-8")
    proc = run_cli("subtitles", "check", str(old))
    assert proc.returncode == 1
    assert re.search(r"old\.srt:2: cue 1: max-duration: \d+\.\d+ s", proc.stdout)
    assert "line-width" in proc.stdout and "violation(s)" in proc.stdout
    # the same file is fine with limits that allow it
    proc = run_cli(
        "subtitles",
        "check",
        str(old),
        "--max-line-width",
        "600",
        "--max-line-count",
        "1",
        "--max-cue-duration",
        "40",
        "--max-cps",
        "40",
    )
    assert proc.returncode == 0, proc.stdout
    proc = run_cli("subtitles", "check", str(tmp_path / "missing.srt"))
    assert proc.returncode == 2 and "cannot read" in proc.stderr


def test_cli_check_korean_limits(
    tmp_path: Path, run_cli: Callable[..., CompletedProcess[str]]
) -> None:
    bad = tmp_path / "ko.vtt"
    bad.write_text(
        "WEBVTT\n\n1\n00:00:01.000 --> 00:00:04.000\n"
        "여태껏 무슨 큰 원수가 지대하던 오시형의 아버지가\n",
        encoding="utf-8",
    )
    proc = run_cli("subtitles", "check", str(bad))
    assert proc.returncode == 1 and "Korean limits: 16 per line" in proc.stdout
    assert "cue 1: line-width: line 1 is 24 wide (maximum 16)" in proc.stdout
    proc = run_cli("subtitles", "check", "--language", "en", str(bad))
    assert proc.returncode == 0, proc.stdout


# --- hand-made bad files: each rule --------------------------------------------------------


def _srt(*cues: tuple[str, str, str]) -> str:
    return "".join(f"{n}\n{a} --> {b}\n{text}\n\n" for n, (a, b, text) in enumerate(cues, 1))


OK = ("00:00:10,000", "00:00:12,000", "A line that is fine.")
BAD_FILES: dict[str, tuple[str, str, int]] = {
    # rule: (srt text, language, cue number expected to break it)
    "empty": (_srt(OK, ("00:00:13,000", "00:00:14,000", "<i></i>")), "en", 2),
    "order": (_srt(OK, ("00:00:05,000", "00:00:07,000", "Earlier than the first.")), "en", 2),
    "timing": (_srt(OK, ("00:00:15,000", "00:00:14,000", "Ends before it starts.")), "en", 2),
    "overlap": (_srt(OK, ("00:00:11,500", "00:00:14,000", "Starts too soon.")), "en", 2),
    "gap": (_srt(OK, ("00:00:12,040", "00:00:14,000", "One frame after.")), "en", 2),
    "min-duration": (_srt(OK, ("00:00:13,000", "00:00:13,500", "Blink.")), "en", 2),
    "max-duration": (
        _srt(("00:00:01,000", "00:00:09,000", "Eight seconds on screen."), OK),
        "en",
        1,
    ),
    "line-count": (_srt(OK, ("00:00:13,000", "00:00:17,000", "One\nTwo\nThree")), "en", 2),
    "line-width": (
        _srt(
            OK,
            (
                "00:00:13,000",
                "00:00:18,000",
                "This single line is far wider than the forty-two characters a line may have",
            ),
        ),
        "en",
        2,
    ),
    "one-line": (_srt(OK, ("00:00:13,000", "00:00:16,000", "Short text\non two lines.")), "en", 2),
    "line-break": (
        _srt(
            OK,
            (
                "00:00:13,000",
                "00:00:17,000",
                "We walked together into the\ngarden behind the old house.",
            ),
        ),
        "en",
        2,
    ),
    "whitespace": (
        _srt(
            OK, ("00:00:13,000", "00:00:17,000", "그는 이리저리 피하면서\n 길 한 옆으로 걸어갔다.")
        ),
        "ko",
        2,
    ),
    "reading-speed": (
        _srt(OK, ("00:00:13,000", "00:00:14,000", "Far too many words to read in one second.")),
        "en",
        2,
    ),
    "orphan": (
        _srt(
            ("00:00:01,000", "00:00:03,000", "She opened the window"),
            ("00:00:03,084", "00:00:04,000", "and listened."),
        ),
        "en",
        2,
    ),
}


def test_every_rule_has_a_bad_file() -> None:
    assert set(BAD_FILES) == set(RULES)


@pytest.mark.parametrize("rule", sorted(BAD_FILES))
def test_bad_file_triggers_its_rule(rule: str) -> None:
    text, language, number = BAD_FILES[rule]
    violations = lint_text(text, "srt", language=language)
    assert (number, rule) in {(v.cue, v.rule) for v in violations}, _report(violations)
    # and the good cue breaks nothing
    assert all(v.cue == number for v in violations), _report(violations)


def test_a_space_at_either_end_of_a_cue_is_found_in_srt_and_vtt() -> None:
    """The parser strips a cue's text at both ends, so a space before its first line or
    after its last (and in WebVTT, any) was never reported (a subtitler)."""
    for fmt, text in (
        ("srt", _srt(OK, ("00:00:13,000", "00:00:17,000", " 안녕하세요 여러분\n오늘은 "))),
        ("vtt", "WEBVTT\n\n00:00:10.000 --> 00:00:12.000\nA line that is fine.\n\n"
                "00:00:13.000 --> 00:00:17.000\n leading space on line one\n"),
    ):  # fmt: skip
        violations = lint_text(text, fmt, language="ko" if fmt == "srt" else "en")
        assert (2, "whitespace") in {(v.cue, v.rule) for v in violations}, (fmt, violations)
        assert all(v.cue == 2 for v in violations), _report(violations)


def test_after_a_cue_out_of_order_the_gap_is_measured_on_the_timeline() -> None:
    """After a cue out of order, the next cue's gap was measured against the stray cue, so
    a 50 ms gap after the cue really before it went unreported; a 0-length cue was also
    said to need 23000 characters per second (a subtitler)."""
    text = _srt(
        OK,  # 10.000-12.000
        ("00:00:05,000", "00:00:07,000", "Earlier than the first."),
        ("00:00:12,050", "00:00:14,000", "Fifty milliseconds after."),
        ("00:00:20,000", "00:00:20,000", "Zero."),
    )
    found = {(v.cue, v.rule) for v in lint_text(text, "srt", language="en")}
    assert {(2, "order"), (3, "gap"), (4, "min-duration")} <= found, found
    assert (4, "reading-speed") not in found, found


def test_korean_width_counts_latin_half() -> None:
    text = "방자 차돌이 CD 17장"  # 6 Hangul + 3 spaces + 2 Latin + 2 digits
    assert text_width(text, half=True) == 6 + 0.5 * 7
    assert text_width(text, half=False) == len(text)
    line = "가" * 14 + " AB"  # 14 + 1.5 = 15.5: fits a 16-wide Korean line
    ok = _srt(("00:00:01,000", "00:00:04,000", line))
    assert lint_text(ok, "srt", language="ko") == []
    wide = _srt(("00:00:01,000", "00:00:04,000", line + "CD"))  # 16.5
    assert [v.rule for v in lint_text(wide, "srt", language="ko")] == ["line-width"]


def test_karaoke_runs_count_as_one_cue() -> None:
    text = _srt(
        ("00:00:01,000", "00:00:01,500", "<u>Hello</u> world"),
        ("00:00:01,500", "00:00:02,200", "Hello <u>world</u>"),
    )
    assert len(parse(text, "srt")) == 1
    assert lint_text(text, "srt", language="en") == []
    # The same cue twice, back to back ("No." said twice) is two cues, each measured: merged,
    # the second one's 0.2 s hid behind the first's (a hostile tester).
    twice = _srt(
        ("00:00:01,000", "00:00:02,000", "No."),
        ("00:00:02,000", "00:00:02,200", "No."),
    )
    assert [(ev.start, ev.end) for ev in parse(twice, "srt")] == [(1000, 2000), (2000, 2200)]
    found = {(v.cue, v.rule) for v in lint_text(twice, "srt", language="en")}
    assert (2, "min-duration") in found and (1, "min-duration") not in found, found
    # WebVTT karaoke marks its word with a class span, which pysubs2 drops from the text:
    # still one run (a reviewer), also given as a string that starts with a BOM.
    vtt = (
        "\ufeffWEBVTT\n\n00:00:01.000 --> 00:00:01.400\n<c.hl>Hi</c> there you\n\n"
        "00:00:01.400 --> 00:00:01.800\nHi <c.hl>there</c> you\n\n"
        "00:00:01.800 --> 00:00:03.000\nHi there <c.hl>you</c>\n"
    )
    assert len(parse(vtt, "vtt")) == 1
    assert lint_text(vtt, "vtt", language="en") == []


def test_a_cue_that_ends_before_it_starts_is_named_so() -> None:
    text = _srt(("00:00:05,000", "00:00:04,500", "Backwards in time."))
    violations = lint_text(text, "srt", language="en")
    assert [v.rule for v in violations] == ["timing"], violations
    assert "ends 500 ms before it starts" in violations[0].message


def test_vtt_notes_and_ids_are_not_text() -> None:
    text = (
        "WEBVTT\n\nNOTE made by hand\n\nintro\n00:00:01.000 --> 00:00:03.000 align:center\n"
        "<c.yellow>Hello</c> there\n\n00:00:03.084 --> 00:00:06.000\nGeneral Kenobi.\n"
    )
    events = parse(text, "vtt")
    assert [ev.lines for ev in events] == [("Hello there",), ("General Kenobi.",)]


# --- line breaking ------------------------------------------------------------------------


def _units(text: str) -> list[Unit]:
    return [Unit(w, 0.0, 0.0) for w in text.split()]


def test_english_lines_break_at_natural_points() -> None:
    limits = SubtitleOptions().limits("en")

    def lines(text: str) -> list[str]:
        units = _units(text)
        return [" ".join(units[k].text for k in part) for part in wrap(units, limits)]

    assert lines("Short enough for one line.") == ["Short enough for one line."]
    # after punctuation first
    assert lines("When the rain stopped, we walked together into the old garden.") == [
        "When the rain stopped,",
        "we walked together into the old garden.",
    ]
    # before a conjunction or a preposition, never between an article and its noun
    two = lines("She opened the window and listened to the birds in the garden.")
    assert len(two) == 2 and two[1].split()[0] in {"and", "to"}, two
    for text in (
        "We spent the whole afternoon reading about the history of the Netherlands.",
        "I think that the quarterly report should go to the finance team today.",
    ):
        out = lines(text)
        assert len(out) == 2 and all(len(line) <= 42 for line in out)
        assert out[0].split()[-1].lower() not in {"a", "an", "the", "of", "to"}, out


def test_korean_lines_break_between_eojeol() -> None:
    limits = SubtitleOptions().limits("ko")
    text = "수화물 찾을 때, 항공편 정보와 수화물 수취대 번호가 전광판에서 나오니까 참고하세요."
    units = _units(text)[:6]
    lines = [" ".join(units[k].text for k in part) for part in wrap(units, limits)]
    assert lines == ["수화물 찾을 때,", "항공편 정보와 수화물"]  # after the comma
    # a bound noun stays with the word before it: "할 수" is never split
    units = _units("우리는 내일 아침까지 그 일을 끝낼 수 있을 것입니다")
    lines = [" ".join(units[k].text for k in part) for part in wrap(units, limits)]
    assert all(not line.startswith("수 ") for line in lines), lines
    assert all(not line.endswith(" 그") for line in lines), lines


def test_a_pause_never_cuts_a_korean_determiner_from_its_noun() -> None:
    """On the long Korean file a cue ended "...돌탑 앞에서 두" and the next began "소년
    소년은" (and "흰 | 바탕에"): a pause after the determiner made the cut look good (a new
    user). Timed words with a 0.4 s pause after 두 and after 흰."""
    from malsori.subtitles.cues import group_units

    limits = SubtitleOptions().limits("ko")
    words = (
        "그날 아침 마을 입구의 오래된 돌탑 앞에서 두 소년이 흰 바탕에 금실로 수놓은 깃발을 "
        "들고 서 있었다"
    )
    units, t = [], 0.0
    for word in words.split():
        units.append(Unit(word, t, t + 0.35))
        t += 0.35 + (0.4 if word in ("두", "흰") else 0.05)
    cues = group_units(units, limits)
    assert len(cues) >= 2, cues
    ends = [cue[-1].text for cue in cues[:-1]]
    assert "두" not in ends and "흰" not in ends, [[u.text for u in cue] for cue in cues]


def test_korean_modifiers_and_numbers_keep_their_noun() -> None:
    """On the long Korean file a line ended "그 순간 잔인한" (its noun 마음이 on the next
    line: the balance of the lines outweighed the modifier), and a cue ended "명령서가
    다섯" with "개의 불상 중." 84 ms later (a Korean tester). Timed words, no pauses."""
    from malsori.subtitles.cues import group_units

    limits = SubtitleOptions().limits("ko")
    for text, word in (
        ("그것을 별로 애처롭다고도 생각하지 않았지만 사실은 애처롭던 그 순간 잔인한 마음이 "
         "나의 가슴에 떠올랐다.", "잔인한"),
        ("악마의 명령서가 다섯 개의 불상 중 실나 중협에 주조되었다는 좌상관은", "다섯"),
    ):  # fmt: skip
        timed, t = [], 0.0
        for token in text.split():
            timed.append(Unit(token, t, t + 0.4))
            t += 0.45
        cues = group_units(timed, limits)
        shown = [[u.text for u in cue] for cue in cues]
        assert len(cues) >= 2, shown
        for cue in cues:
            lines = [[cue[k].text for k in part] for part in wrap(cue, limits)]
            assert all(line[-1] != word for line in lines), (lines, shown)


def test_korean_verbs_keep_their_auxiliary() -> None:
    """A line ended "어느 나를 살고" with "계십니까?" on the next (a Korean tester): 계시다,
    the honorific of 있다, and the auxiliaries after a verb's -아/-어 form (적어 놓다, 읽어
    보다) stay with their verb; a subject particle of the same vowel does not (아버지가 /
    보낸)."""
    from malsori.subtitles.breaks import P_DEFAULT, P_NAME, break_penalty

    limits = SubtitleOptions().limits("ko")
    for text, verb in (
        ("당신은 지금 어느 나를 살고 계십니까?", "살고"),
        ("그 긴 편지를 책상 위에다 적어 놓았습니다", "적어"),
        ("이번 주말에는 그 두꺼운 책을 꼭 읽어 보세요", "읽어"),
    ):
        units = [Unit(w, i, i + 0.5) for i, w in enumerate(text.split())]
        lines = [[units[k].text for k in part] for part in wrap(units, limits)]
        assert len(lines) == 2 and all(line[-1] != verb for line in lines), lines
    assert break_penalty("해", "드릴게요", "ko") == P_NAME
    assert break_penalty("도와", "주셔서", "ko") == P_NAME
    assert break_penalty("그리고", "계속", "ko") < P_NAME  # 계속 is no auxiliary
    assert break_penalty("아버지가", "보낸", "ko") == P_DEFAULT
    assert break_penalty("학교에서", "보았다", "ko") < P_NAME


def test_cli_flags_make_options() -> None:
    parser = argparse.ArgumentParser()
    add_subtitle_arguments(parser)
    args = parser.parse_args(
        [
            "--max-line-width",
            "30",
            "--max-cps",
            "15",
            "--split-on-pause",
            "0.7",
            "--highlight-words",
        ]
    )
    options = subtitle_options_from_args(args)
    assert options == SubtitleOptions(
        max_line_width=30, max_cps=15, split_on_pause=0.7, highlight_words=True
    )
    assert SubtitleOptions(**options.to_dict()) == options
    assert subtitle_options_from_args(parser.parse_args([])) == SubtitleOptions()
    with pytest.raises(malsori.OptionsError, match="max_line_count must be positive"):
        subtitle_options_from_args(parser.parse_args(["--max-line-count", "0"]))


def test_write_transcript_uses_the_context_options(ko_long: Transcript, tmp_path: Path) -> None:
    """The CLI sets the options once; write_transcript (not changed) picks them up."""
    narrow = SubtitleOptions(max_line_width=10, max_line_count=3)
    with using_subtitle_options(narrow):
        (srt,) = malsori.write_transcript(ko_long, tmp_path, "narrow", "srt")
    (plain,) = malsori.write_transcript(ko_long, tmp_path, "plain", "srt")
    narrow_lines = [line for ev in read(srt) for line in ev.lines]
    assert max(text_width(line, half=True) for line in narrow_lines) <= 10
    assert max(len(ev.lines) for ev in read(srt)) == 3
    assert lint_file(srt, narrow, "ko") == []
    assert max(text_width(line, half=True) for ev in read(plain) for line in ev.lines) > 10
    assert lint_file(plain, language="ko") == []


def test_options_are_checked() -> None:
    with pytest.raises(malsori.OptionsError, match="max_line_width must be positive"):
        SubtitleOptions(max_line_width=0)
    with pytest.raises(malsori.OptionsError, match="exceeds max_cue_duration"):
        SubtitleOptions(min_cue_duration=3, max_cue_duration=2)
    # NaN passed every check and crashed after the whole decode (a hostile tester)
    for field in ("min_cue_duration", "max_cue_duration", "max_cps", "split_on_pause"):
        with pytest.raises(malsori.OptionsError, match=field):
            SubtitleOptions(**{field: float("nan")})
        # and infinity: --max-cue-duration inf crashed (OverflowError) after the whole
        # decode, writing no file at all (a subtitler)
        with pytest.raises(malsori.OptionsError, match=f"{field} must be a finite number"):
            SubtitleOptions(**{field: float("inf")})


def test_unspaced_languages_without_words() -> None:
    """Japanese text without word timings: width-proportional units, 13 per line."""
    seg = Segment(0, 0.0, 12.0, "今日はとても良い天気ですね。公園に散歩に行きましょう。" * 2)
    result = Transcript([seg], "ja", 1.0, 12.0)
    limits = SubtitleOptions().limits("ja")
    built = build_cues(result)
    assert "".join("".join(c.lines) for c in built) == seg.text
    assert all(
        text_width(line, half=True) <= limits.max_line_width for c in built for line in c.lines
    )


def test_words_stacked_at_one_instant_get_reading_time() -> None:
    """Whisper sometimes stacks repeated words at one instant with zero duration (seen at
    the end of a 30 s AMI meeting window); the cues still get a readable duration."""
    words = [Word(0.5 + 0.3 * k, 0.8 + 0.3 * k, " hello", 0.9) for k in range(5)]
    words += [Word(2.5, 2.5, " yeah,", 0.1) for _ in range(30)]
    text = "".join(w.word for w in words)
    result = Transcript([Segment(0, 0.5, 2.5, text, words=words)], "en", 1.0, 2.6)
    srt = render_srt(result)
    violations = lint_text(srt, "srt", language="en")
    assert violations == [], _report(violations)
    events = parse(srt, "srt")
    assert " ".join(line for ev in events for line in ev.lines).split() == text.split()
    assert min(ev.duration for ev in events) >= 833


def test_a_one_word_file_gets_the_minimum_duration() -> None:
    """A 0.75 s Korean file of one word ("네") got a 0.78 s cue, under the 5/6 s minimum,
    which `subtitles check` then reported (a subtitler): the last cue may run past the end
    of the audio for the minimum duration."""
    words = [Word(0.0, 0.28, " 네", 0.9)]
    result = Transcript([Segment(0, 0.0, 0.28, " 네", words=words)], "ko", 1.0, 0.753)
    srt = render_srt(result)
    violations = lint_text(srt, "srt", language="ko")
    assert violations == [], _report(violations)
    (event,) = parse(srt, "srt")
    assert event.start == 0 and event.duration >= 833, event


def test_a_file_that_changes_language_gets_each_stretchs_limits(
    base_model: malsori.LoadedModel,
) -> None:
    """The English/Korean conversation, no language given: its English cues were cut to
    Korean widths (16) because the file's language was Korean (hostile tester). Each
    stretch now gets its own language's limits, no cue spans a change of language, and
    ``subtitles check`` judges each cue by its script."""
    from conftest import EVALDATA
    from malsori.subtitles.lint import guess_language, lint_events

    options = options_for_formats(malsori.DecodeOptions(), ["srt"])
    audio = malsori.load_audio(EVALDATA / "diarization" / "dev04_mix_4spk.wav")
    result = transcribe(audio[: 40 * 16000], base_model, options=options)  # en, ko, en
    assert {s.language for s in result.segments} >= {"en", "ko"}
    built = build_cues(result)
    hangul = re.compile(r"[\uac00-\ud7a3]")
    english = [c for c in built if not hangul.search("".join(c.lines))]
    korean = [c for c in built if hangul.search("".join(c.lines))]
    assert english and korean
    assert max(len(line) for c in english for line in c.lines) > 16  # not Korean widths
    # no cue spans a change of the segments' language
    language_at = [(s.start, s.end, s.language) for s in result.segments]
    for cue in built:
        langs = {
            lang
            for a, b, lang in language_at
            for u in cue.units
            if a <= u.start < b or a < u.end <= b
        }
        assert len(langs) == 1, (cue.lines, langs)
    events = parse(render_srt(result), "srt")
    per_cue = lint_events(events, lambda ev: SubtitleOptions().limits(guess_language(ev.lines)))
    assert not [v for v in per_cue if v.rule == "line-width"], _report(per_cue)


def test_no_overlap_where_the_language_changes() -> None:
    """A short English "Hi." 0.45 s before Korean speech: the English cue, stretched to its
    minimum duration, overlapped the Korean one (reviewer). The runs meet with the gap."""
    segs = [
        Segment(id=0, start=0.0, end=0.3, text=" Hi.", language="en"),
        Segment(id=1, start=0.45, end=3.0, text=" 안녕하세요 여러분 반갑습니다", language="ko"),
    ]
    t = Transcript(segs, "en", 1.0, 12.0)
    built = build_cues(t)
    assert [c.lines for c in built] == [("Hi.",), ("안녕하세요 여러분 반갑습니다",)]
    gap = SubtitleOptions().limits("ko").min_gap
    assert built[0].end + gap <= built[1].start + 1e-6, built
    violations = lint_text(render_srt(t), "srt", language="ko")
    assert not [v for v in violations if v.rule == "overlap"], _report(violations)


@pytest.mark.parametrize(
    ("spoken", "language"),
    [
        (" Johnson & Johnson and Procter & Gamble, Q&A.", "en"),
        (" Tom & Jerry - the movie - is « fun » @ home # 1.", "en"),
        (" 그는 - 아마도 - 내일 올 거예요.", "ko"),
    ],
)
def test_a_symbol_with_a_space_before_it_stays_apart(spoken: str, language: str) -> None:
    """Whisper's words ' &' and ' -' were glued onto the word before them in srt/vtt
    ("Johnson& Johnson", "그는- 아마도"), so the subtitles said something else than the
    transcript (a hostile tester). Punctuation without a space still joins its word."""
    pieces = re.findall(r" ?[^ ]+", spoken)
    pieces = [p for q in pieces for p in re.split(r"(?<=Q)(?=&)|(?<=&)(?=A)", q) if p]
    words = [Word(0.4 * k, 0.4 * k + 0.35, p, 0.9) for k, p in enumerate(pieces)]
    result = Transcript(
        [Segment(0, 0.0, 0.4 * len(words), spoken, words=words)], language, 1.0, 9.0
    )
    for render in (render_srt, render_vtt):
        events = parse(render(result), "srt" if render is render_srt else "vtt")
        shown = " ".join(line for ev in events for line in ev.lines)
        assert shown.split() == spoken.split(), (shown, spoken)


def test_vtt_writes_markup_characters_as_references() -> None:
    """WebVTT cue text is markup: '<y and y>' was written raw and a player hid it as a tag
    (a hostile tester). srt keeps the characters as they are."""
    spoken = " if x <y and y> z then stop & go"
    result = Transcript([Segment(0, 0.0, 3.0, spoken)], "en", 1.0, 3.0)
    vtt = render_vtt(result)
    assert "x &lt;y and y&gt; z then stop &amp; go" in vtt
    shown = " ".join(line for ev in parse(vtt, "vtt") for line in ev.lines)
    assert shown.split() == spoken.split()
    assert "<y and y>" in render_srt(result)


def test_check_reads_what_it_can_and_says_what_it_cannot(
    tmp_path: Path, run_cli: Callable[..., CompletedProcess[str]]
) -> None:
    """`subtitles check` said "OK, 1 cue(s)" for a file whose other cue had a malformed
    time, and "OK, 0 cue(s)" for plain text; Korean saved in NFD (a Mac) was measured 1.7x
    as wide; UTF-16 files (Windows tools) were refused (a hostile tester)."""
    bad = tmp_path / "bad.srt"
    bad.write_text(
        "1\n00:00:01,000 --> 00:00:0x,000\nhello\n\n2\n00:00:04,000 --> 00:00:06,000\nbye\n"
    )
    text = tmp_path / "notes.srt"
    text.write_text("hello, this is not a subtitle file\n")
    empty = tmp_path / "empty.srt"
    empty.write_text("")
    cues = "1\n00:00:01,000 --> 00:00:03,000\n안녕하세요 여러분 오늘은 날씨가 좋습니다\n"
    nfc, nfd, utf16 = tmp_path / "nfc.srt", tmp_path / "nfd.srt", tmp_path / "u16.srt"
    nfc.write_text(cues, encoding="utf-8")
    nfd.write_text(unicodedata.normalize("NFD", cues), encoding="utf-8")
    utf16.write_text(cues, encoding="utf-16")
    proc = run_cli("subtitles", "check", str(bad), str(text), str(empty))
    assert proc.returncode == 2
    assert f"{bad}:2: malformed timing line: '00:00:01,000 --> 00:00:0x,000'" in proc.stderr
    assert f"{text}: no cues found" in proc.stderr, proc.stderr
    assert f"{empty}: OK, 0 cue(s)" in proc.stdout  # our own output for silence
    reports = [run_cli("subtitles", "check", str(p)).stdout for p in (nfc, nfd, utf16)]
    widths = [re.search(r"is (\d+) wide", r) for r in reports]
    assert all(widths) and {w.group(1) for w in widths if w} == {"20"}, reports
    # older Korean subtitles are CP949: the refusal says so and how to convert
    cp949 = tmp_path / "cp949.srt"
    cp949.write_bytes(cues.encode("cp949"))
    proc = run_cli("subtitles", "check", str(cp949))
    assert proc.returncode == 2 and "iconv -f cp949 -t utf-8" in proc.stderr, proc.stderr


def test_check_refuses_what_is_not_webvtt_and_cues_it_cannot_read(
    tmp_path: Path, run_cli: Callable[..., CompletedProcess[str]]
) -> None:
    """Plain text or JSON saved as .vtt was "OK, 0 cue(s)", and a cue whose timing line had
    "->" vanished from the check with its violations (a hostile tester)."""
    files = {
        "text.vtt": "hello world\n",
        "json.vtt": '{"segments": []}\n',
        "typo.vtt": "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\nok cue\n\n"
        "00:00:05.000 -> 00:00:09.000\na cue with a mistyped timing line\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    proc = run_cli("subtitles", "check", *(str(tmp_path / n) for n in files))
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    assert proc.stderr.count("not WebVTT: a WebVTT file starts with the line WEBVTT") == 2
    assert f"{tmp_path / 'typo.vtt'}:6: a block with no timing line" in proc.stderr
    good = tmp_path / "good.vtt"  # still read: a BOM, an identifier, a NOTE
    good.write_text("\ufeffWEBVTT\n\nNOTE hi\n\nc1\n00:00:01.000 --> 00:00:03.000\nHello there.\n")
    proc = run_cli("subtitles", "check", str(good))
    assert proc.returncode == 0 and "OK, 1 cue(s)" in proc.stdout, (proc.stdout, proc.stderr)


def test_cues_are_named_as_the_file_numbers_them(
    tmp_path: Path, run_cli: Callable[..., CompletedProcess[str]]
) -> None:
    """An excerpt numbered from 41 (or WebVTT cues with identifiers): messages name cue 42,
    not "cue 2", and give the line of its timing (FILE:LINE:, as compilers do)."""
    srt = tmp_path / "excerpt.srt"
    srt.write_text(
        "41\n00:10:00,000 --> 00:10:02,000\n첫 번째 자막입니다.\n\n"
        "42\n00:10:01,500 --> 00:10:03,000\n두 번째 자막이 너무 일찍 시작합니다.\n",
        encoding="utf-8",
    )
    vtt = tmp_path / "excerpt.vtt"
    vtt.write_text(
        "WEBVTT\n\nNOTE two cues\n\nintro\n00:00:01.000 --> 00:00:03.000\nHello.\n\n"
        "00:00:02.000 --> 00:00:04.000\nToo soon.\n",
        encoding="utf-8",
    )
    proc = run_cli("subtitles", "check", str(srt), str(vtt))
    assert proc.returncode == 1, proc.stderr
    assert f"{srt}:6: cue 42: overlap: starts 500 ms before cue 41 ends" in proc.stdout
    assert f"{vtt}:9: cue 2: overlap: starts 1000 ms before cue intro ends" in proc.stdout
    assert "cue 1:" not in proc.stdout


def test_check_reads_windows_line_ends_and_names_the_broken_line(
    tmp_path: Path, run_cli: Callable[..., CompletedProcess[str]]
) -> None:
    """A file saved with Windows line ends (CRLF) was checked with the "\\r" as text (a
    space at each line's end, a wider line, an extra line in the cue); a cue whose time was
    malformed (``00:00:AA``), or a block without a timing line, was read as more text of
    the cue before it, and a WebVTT minute 99 as 99 s (a hostile tester). CRLF now reads
    as LF; the broken line is named (FILE:LINE:) with exit status 2."""
    ours = "1\n00:00:01,000 --> 00:00:03,500\n안녕하세요 여러분\n오늘은 날씨가 좋습니다\n\n"
    ours += "2\n00:00:03,584 --> 00:00:07,000\nThis is a perfectly normal subtitle.\n"
    lf, crlf = tmp_path / "lf.srt", tmp_path / "crlf.srt"
    lf.write_bytes(ours.encode())
    crlf.write_bytes(ours.replace("\n", "\r\n").encode())
    reports = [run_cli("subtitles", "check", str(p)) for p in (lf, crlf)]
    assert [r.returncode for r in reports] == [0, 0], [r.stdout for r in reports]
    assert reports[0].stdout.replace(str(lf), "F") == reports[1].stdout.replace(str(crlf), "F")
    broken = {
        "letters.srt": ("1\n00:00:01,000 --> 00:00:03,000\nhello there\n\n"
                        "2\n00:00:AA,000 --> 00:00:06,000\nsecond\n", 6, "malformed timing line"),
        "missing.srt": ("1\n00:00:01,000 --> 00:00:03,000\nhello there\n\n"
                        "2\nsecond cue text\n", 5, "a block with no timing line"),
        "minute.vtt": ("WEBVTT\n\n00:99.000 --> 01:00.000\nhello\n", 3, "malformed timing line"),
        # no empty line before the next cue: its timing line was read as text (a reviewer)
        "joined.srt": ("1\n00:00:01,000 --> 00:00:03,000\nhello there\n"
                       "2\n00:00:0A,000 --> 00:00:06,000\nsecond\n", 5,
                       "malformed timing line inside the cue before it"),
    }  # fmt: skip
    for name, (text, line, message) in broken.items():
        path = tmp_path / name
        path.write_text(text)
        proc = run_cli("subtitles", "check", str(path))
        assert proc.returncode == 2 and proc.stdout == "", (name, proc.stdout)
        assert f"{path}:{line}: {message}" in proc.stderr, (name, proc.stderr)
