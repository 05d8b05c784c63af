"""Speaker diarization on real speech: short cuts of the dev conversations in
../shared/evaldata/diarization (English and Korean, two speakers each), scored against their
reference RTTM; the CLI's RTTM/JSON, every transcript format with speakers, the server's
``diarized_json`` through the official ``openai`` client, and awkward input (silence, one
speaker, 8 kHz, stereo, bad options)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from openai.types.audio import TranscriptionDiarized

from conftest import EVALDATA
from server_util import Server, running_server

pytest.importorskip("torch")

from malsori.audio import load_audio
from malsori.diarize import DiarizeOptions, Turn, assign_speakers, parse_rttm
from malsori.diarize.pipeline import Diarizer
from malsori.errors import ModelIntegrityError
from malsori.evaluate.der import diarization_error
from malsori.subtitles.lint import lint_text
from malsori.transcript import Segment, Transcript, Word

DIAR = EVALDATA / "diarization"
#: (source conversation, seconds kept): two speakers each, turns inside the cut.
CUTS = {"en2": ("dev01_en_2spk", 27.0), "ko2": ("dev02_ko_2spk", 20.0)}
CLI = Callable[..., subprocess.CompletedProcess[str]]


def _ffmpeg(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), *args, str(dst)],
        check=True,
        timeout=60,
    )
    return dst


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("diarize")
    made = {
        name: _ffmpeg(DIAR / f"{src}.wav", out / f"{name}.wav", "-t", str(seconds))
        for name, (src, seconds) in CUTS.items()
    }
    made["en2_8k"] = _ffmpeg(made["en2"], out / "en2_8k.wav", "-ar", "8000")
    made["en2_stereo"] = _ffmpeg(
        made["en2"], out / "en2_stereo.m4a", "-ac", "2", "-ar", "44100", "-c:a", "aac"
    )
    return made


def reference(name: str) -> list[Turn]:
    """The reference turns of a cut, clipped to its length."""
    src, seconds = CUTS[name]
    turns = next(iter(parse_rttm((DIAR / f"{src}.rttm").read_text()).values()))
    return [Turn(t.start, min(t.end, seconds), t.speaker) for t in turns if t.start < seconds - 0.3]


@pytest.fixture(scope="module")
def diarizer() -> Diarizer:
    return Diarizer()


def test_cli_writes_valid_rttm_and_json_with_low_der(clips: dict[str, Path], run_cli: CLI) -> None:
    out = clips["en2"].parent / "cli-out"
    proc = run_cli("diarize", str(clips["en2"]), str(clips["ko2"]), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    for name in ("en2", "ko2"):
        rttm = (out / f"{name}.rttm").read_text()
        lines = rttm.splitlines()
        assert lines
        for line in lines:
            fields = line.split()
            assert len(fields) == 10 and fields[0] == "SPEAKER" and fields[1] == name
            assert fields[2] == "1" and fields[5:7] == ["<NA>", "<NA>"]
            assert float(fields[3]) >= 0 and float(fields[4]) > 0
            assert fields[7].startswith("SPEAKER_") and fields[8:] == ["<NA>", "<NA>"]
        hyp = parse_rttm(rttm)[name]
        score = diarization_error(reference(name), hyp)
        assert score.hyp_speakers == 2, (name, score)
        assert score.der < 0.15, (name, score)
        data = json.loads((out / f"{name}.speakers.json").read_text())
        assert data["speakers"] == ["SPEAKER_1", "SPEAKER_2"]
        assert len(data["turns"]) == len(lines)


def test_a_failed_write_keeps_the_finished_diarization(
    clips: dict[str, Path], run_cli: CLI, tmp_path: Path
) -> None:
    """Under a file-size limit (or on a full disk) the old files were kept, but the result
    just computed was dropped, and the message said "no space left" for a size limit. The
    result is saved under the temporary directory now, or printed when that fails too."""
    import resource

    clip = clips["en2"]
    plain = run_cli("diarize", str(clip), "-o", str(tmp_path / "plain"))
    assert plain.returncode == 0, plain.stderr
    rttm = (tmp_path / "plain" / "en2.rttm").read_text()
    data = (tmp_path / "plain" / "en2.speakers.json").read_text()
    limit = (len(rttm.encode()) + len(data.encode())) // 2  # the RTTM fits, the JSON not
    assert len(rttm.encode()) < limit < len(data.encode())
    rescue_root = tmp_path / "tmp"
    rescue_root.mkdir()

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [sys.executable, "-m", "malsori.cli", "diarize", str(clip), "-o", str(tmp_path / "out")],
        capture_output=True, text=True, preexec_fn=small_files, timeout=300,
        env={**os.environ, "TMPDIR": str(rescue_root)},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "file too large writing" in proc.stderr and "Traceback" not in proc.stderr
    assert "the result was saved to" in proc.stderr, proc.stderr
    (folder,) = rescue_root.iterdir()
    assert (folder / "en2.rttm").read_text() == rttm
    assert data.strip() in proc.stderr  # the JSON could not be saved: it is printed
    assert not (tmp_path / "out" / "en2.rttm").exists()


def test_diarize_and_transcribe_into_one_folder_keep_both(
    clips: dict[str, Path], run_cli: CLI, tmp_path: Path
) -> None:
    """The README's two lines into one folder: `diarize x -o out` then `transcribe x
    --diarize -o out` was refused after decoding ("exists and was not written by
    malsori"); in the other order diarize replaced the transcript's json without a word (a
    new user). Their files no longer share a name, and diarize writes by the ledger's rules."""
    out = tmp_path / "out"
    talk = tmp_path / "회의.wav"
    talk.write_bytes(clips["en2"].read_bytes())
    first = run_cli("transcribe", str(talk), "--diarize", "--model", "tiny.en", "-o", str(out))
    assert first.returncode == 0, first.stderr
    transcript = (out / "회의.json").read_bytes()
    second = run_cli("diarize", str(talk), "-o", str(out))
    assert second.returncode == 0, second.stderr
    assert (out / "회의.json").read_bytes() == transcript
    assert json.loads((out / "회의.speakers.json").read_text())["speakers"]
    assert (out / "회의.rttm").read_text().startswith("SPEAKER ")
    again = run_cli("diarize", str(talk), "-o", str(out))  # its own files: rewritten
    assert again.returncode == 0, again.stderr
    # one format asked: the other, from the run before, is named (a tester's 2-speaker json
    # beside a new 1-speaker rttm, without a word)
    only = run_cli("diarize", str(talk), "-o", str(out), "-f", "rttm", "--num-speakers", "1")
    assert only.returncode == 0, only.stderr
    assert "its .speakers.json" in only.stderr and "earlier run" in only.stderr, only.stderr
    (out / "회의.rttm").write_text("my own notes\n")  # not malsori's any more: kept
    refused = run_cli("diarize", str(talk), "-o", str(out))
    assert refused.returncode == 1 and "changed since malsori wrote it" in refused.stderr
    assert (out / "회의.rttm").read_text() == "my own notes\n"


def test_silence_has_no_speakers(diarizer: Diarizer, tmp_path: Path, run_cli: CLI) -> None:
    assert diarizer(np.zeros(16000 * 5, dtype=np.float32)).turns == []
    quiet = np.random.default_rng(0).normal(0, 1e-4, 16000 * 5).astype(np.float32)
    result = diarizer(quiet)
    assert result.speakers == [] and result.to_rttm("quiet") == ""
    silent = _ffmpeg(
        EVALDATA / "en" / "jfk.wav", tmp_path / "silent.wav", "-af", "volume=0", "-t", "3"
    )
    proc = run_cli("diarize", str(silent), "-f", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["speakers"] == []
    # a diarized transcript keeps its shape when nobody speaks
    proc = run_cli(
        "transcribe",
        str(silent),
        "--diarize",
        "--model",
        "tiny.en",
        "-f",
        "json,tsv",
        "-o",
        str(tmp_path),
        "-q",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "silent.json").read_text())["speakers"] == []
    assert (tmp_path / "silent.tsv").read_text() == "start\tend\ttext\tlanguage\tspeaker\n"


@pytest.mark.parametrize(
    "path",
    [EVALDATA / "en" / "jfk.wav", EVALDATA / "ko" / "picovoice_leopard_test_ko.wav"],
    ids=["en", "ko"],
)
def test_one_speaker_gets_one_label(diarizer: Diarizer, path: Path) -> None:
    result = diarizer(load_audio(path))
    assert result.speakers == ["SPEAKER_1"]
    assert sum(t.duration for t in result.turns) > 0.5 * result.duration


@pytest.mark.parametrize("variant", ["en2_8k", "en2_stereo"])
def test_8khz_and_stereo_input(diarizer: Diarizer, clips: dict[str, Path], variant: str) -> None:
    result = diarizer(load_audio(clips[variant]))
    score = diarization_error(reference("en2"), result.turns)
    assert score.hyp_speakers == 2 and score.der < 0.2, score


def test_speaker_count_options(diarizer: Diarizer, clips: dict[str, Path], run_cli: CLI) -> None:
    audio = load_audio(clips["ko2"])
    assert len(diarizer(audio, DiarizeOptions(num_speakers=1)).speakers) == 1
    assert len(diarizer(audio, DiarizeOptions(max_speakers=1)).speakers) == 1
    assert len(diarizer(audio, DiarizeOptions(min_speakers=3)).speakers) == 3
    refused = {
        "num-speakers must be at least 1": ["--num-speakers", "0"],
        "min-speakers (3) is more than max-speakers (2)": [
            "--min-speakers",
            "3",
            "--max-speakers",
            "2",
        ],
        "num-speakers must be at most 32": ["--num-speakers", "1000"],
        "num-speakers (3) is more than max-speakers (2)": [
            "--num-speakers",
            "3",
            "--max-speakers",
            "2",
        ],
        "notaudio.wav: it is a file": ["-o", str(clips["ko2"].parent / "notaudio.wav")],
    }
    (clips["ko2"].parent / "notaudio.wav").write_text("a file, not a directory\n")
    for message, bad in refused.items():
        proc = run_cli("diarize", str(clips["ko2"]), *bad)
        assert proc.returncode == 1
        assert proc.stderr.startswith("malsori: error: ") and proc.stderr.count("\n") == 1
        assert message in proc.stderr, proc.stderr
    proc = run_cli("transcribe", str(clips["ko2"]), "--num-speakers", "2")
    assert proc.returncode == 1 and "need --diarize" in proc.stderr


def test_transcribe_diarize_puts_speakers_in_every_format(
    clips: dict[str, Path], run_cli: CLI
) -> None:
    out = clips["en2"].parent / "transcribe-out"
    proc = run_cli(
        "transcribe", str(clips["en2"]), "--diarize", "--model", "tiny.en", "-o", str(out), "-q"
    )
    assert proc.returncode == 0, proc.stderr
    txt = (out / "en2.txt").read_text().splitlines()
    assert all(line.startswith("[SPEAKER_") for line in txt)
    assert {line.split("]")[0] for line in txt} == {"[SPEAKER_1", "[SPEAKER_2"}
    srt = (out / "en2.srt").read_text()
    assert "[SPEAKER_1] " in srt and "[SPEAKER_2] " in srt
    vtt = (out / "en2.vtt").read_text()
    assert "<v SPEAKER_1>" in vtt and "<v SPEAKER_2>" in vtt
    data = json.loads((out / "en2.json").read_text())
    assert data["speakers"] == ["SPEAKER_1", "SPEAKER_2"]
    assert all(s["speaker"] and all(w["speaker"] for w in s["words"]) for s in data["segments"])
    # each segment is one speaker's: its words all carry the segment's speaker
    assert all({w["speaker"] for w in s["words"]} == {s["speaker"]} for s in data["segments"])
    tsv = (out / "en2.tsv").read_text().splitlines()
    assert tsv[0].split("\t")[-1] == "speaker"
    assert {row.split("\t")[-1] for row in tsv[1:]} == {"SPEAKER_1", "SPEAKER_2"}
    # the speech of the second speaker (9.9-15.9 s) is labelled with another speaker
    first = data["segments"][0]["speaker"]
    middle = [s for s in data["segments"] if s["start"] >= 9.5 and s["end"] <= 16.5]
    assert middle and all(s["speaker"] != first for s in middle)
    # the subtitles keep every rule the same file keeps without --diarize
    check = run_cli("subtitles", "check", str(out / "en2.srt"), str(out / "en2.vtt"))
    assert check.returncode == 0, check.stdout + check.stderr


def test_diarized_subtitles_measure_the_label_and_never_overlap(
    clips: dict[str, Path], run_cli: CLI, tmp_path: Path
) -> None:
    """The ``[SPEAKER_1]`` label counts in the line width (Korean: 16 wide); cues of two
    speakers never overlap and keep the minimum gap (real_sample: the speakers take turns
    within 0.2 s); the invisible ``<v NAME>`` tag is not measured."""
    proc = run_cli(
        "transcribe",
        str(clips["ko2"]),
        "--diarize",
        "--model",
        "base",
        "-f",
        "srt,vtt",
        "-o",
        str(tmp_path),
        "-q",
    )
    assert proc.returncode == 0, proc.stderr
    srt = (tmp_path / "ko2.srt").read_text()
    assert "[SPEAKER_1] " in srt and "[SPEAKER_2] " in srt
    check = run_cli("subtitles", "check", str(tmp_path / "ko2.srt"), str(tmp_path / "ko2.vtt"))
    assert check.returncode == 0, check.stdout + check.stderr
    proc = run_cli(
        "transcribe",
        str(DIAR / "real_sample.wav"),
        "--diarize",
        "--model",
        "tiny.en",
        "-f",
        "srt,vtt",
        "-o",
        str(tmp_path),
        "-q",
    )
    assert proc.returncode == 0, proc.stderr
    for ext in ("srt", "vtt"):
        check = run_cli("subtitles", "check", str(tmp_path / f"real_sample.{ext}"))
        bad = [
            line
            for line in check.stdout.splitlines()
            if any(f": {rule}:" in line for rule in ("overlap", "gap", "order", "line-width"))
        ]
        assert not bad, check.stdout
        assert "violation" not in check.stdout or "reading-speed" in check.stdout


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server("--model", "tiny.en", "--idle-unload", "0") as srv:
        yield srv


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # client.audio.translations
def test_server_diarized_json_through_the_openai_client(
    server: Server, clips: dict[str, Path]
) -> None:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    with open(clips["en2"], "rb") as fh:
        result = client.audio.transcriptions.create(
            model="whisper-1", file=fh, response_format="diarized_json"
        )
    assert isinstance(result, TranscriptionDiarized)
    assert result.task == "transcribe" and result.duration == pytest.approx(27.0, abs=0.1)
    assert {s.speaker for s in result.segments} == {"SPEAKER_1", "SPEAKER_2"}
    assert all(s.type == "transcript.text.segment" and s.text for s in result.segments)
    assert result.text.startswith(result.segments[0].text)
    with open(clips["en2"], "rb") as fh:
        verbose = client.audio.transcriptions.create(
            model="whisper-1",
            file=fh,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
            extra_body={"diarize": True, "num_speakers": 2},
        )
    segments: list[Any] = verbose.segments or []
    assert {(s.model_extra or {}).get("speaker") for s in segments} == {"SPEAKER_1", "SPEAKER_2"}
    # segments split at a speaker change keep the token ids of their own text
    assert len(segments) > 2 and all(s.tokens for s in segments if s.text.strip())
    assert len({tuple(s.tokens) for s in segments}) == len(segments)
    with open(clips["en2"], "rb") as fh:
        srt = client.audio.transcriptions.create(
            model="whisper-1", file=fh, response_format="srt", extra_body={"diarize": True}
        )
    assert "[SPEAKER_2] " in srt
    assert lint_text(srt, "srt", language="en") == []
    assert all((w.model_extra or {}).get("speaker") for w in verbose.words or [])
    with open(clips["en2"], "rb") as fh, pytest.raises(openai.BadRequestError) as bad:
        client.audio.transcriptions.create(
            model="whisper-1", file=fh, extra_body={"diarize": True, "num_speakers": 0}
        )
    assert "num-speakers must be at least 1" in str(bad.value)
    refused = [
        # (endpoint, form fields, the param the 400 names)
        ("translations", {"diarize": True}, "diarize"),
        ("transcriptions", {"diarize": True, "min_speakers": 4, "max_speakers": 2}, "min_speakers"),
        ("transcriptions", {"num_speakers": 2}, "num_speakers"),
        ("transcriptions", {"diarize": True, "num_speakers": 1000}, "num_speakers"),
    ]
    for endpoint, fields, param in refused:
        with open(clips["en2"], "rb") as fh, pytest.raises(openai.BadRequestError) as bad:
            getattr(client.audio, endpoint).create(
                model="whisper-1", file=fh, response_format="json", extra_body=fields
            )
        assert isinstance(bad.value.body, dict) and bad.value.body["param"] == param, fields
    with open(clips["en2"], "rb") as fh, pytest.raises(openai.BadRequestError) as bad:
        client.audio.translations.create(
            model="whisper-1",
            file=fh,
            response_format="diarized_json",  # type: ignore[arg-type]
            extra_body={"diarize": True},
        )
    assert "diarize is not supported for translations" in str(bad.value)


def test_words_take_the_speaker_they_overlap_most() -> None:
    words = [
        Word(0.0, 0.5, " Hello", 0.9),
        Word(0.5, 1.0, " there.", 0.9),
        Word(1.2, 1.6, " Hi", 0.9),
        Word(1.6, 2.4, " back.", 0.9),
    ]
    seg = Segment(0, 0.0, 2.4, " Hello there. Hi back.", words=words, tokens=[1, 2, 3])
    transcript = Transcript([seg], "en", 1.0, 2.4)
    turns = [Turn(0.0, 1.1, "SPEAKER_1"), Turn(1.0, 2.5, "SPEAKER_2")]
    out = assign_speakers(transcript, turns)
    assert [(s.id, s.text, s.speaker) for s in out.segments] == [
        (0, " Hello there.", "SPEAKER_1"),
        (1, " Hi back.", "SPEAKER_2"),
    ]
    assert [w.speaker for w in out.words] == ["SPEAKER_1"] * 2 + ["SPEAKER_2"] * 2
    assert out.speakers == ["SPEAKER_1", "SPEAKER_2"]
    # a word in a pause takes the nearest turn's speaker
    gap = assign_speakers(transcript, [Turn(0.0, 0.4, "A"), Turn(2.0, 2.4, "B")])
    assert [w.speaker for w in gap.words] == ["A", "A", "B", "B"]
    assert transcript.to_dict()["segments"][0].keys() == seg.__dict__.keys() - {"speaker"}


def test_der_counts_missed_overlap_and_applies_the_collar() -> None:
    ref = [Turn(0, 10, "A"), Turn(5, 15, "B")]
    hyp = [Turn(0, 10, "x"), Turn(10, 15, "y")]
    exact = diarization_error(ref, hyp, collar=0.0)
    assert exact.total == pytest.approx(20.0, abs=0.02)
    assert exact.missed == pytest.approx(5.0, abs=0.02)
    assert exact.false_alarm == 0 and exact.confusion == pytest.approx(0.0, abs=0.02)
    assert exact.der == pytest.approx(0.25, abs=0.002)
    swapped = diarization_error(ref, [Turn(0, 15, "x")], collar=0.25)
    # 0.25 s each side of the boundaries 0, 5, 10, 15 is not scored: 1 s of A's speech
    # (0-0.25, 4.75-5.25, 9.75-10) and 1 s of B's (5-5.25, 9.75-10.25, 14.75-15)
    assert swapped.total == pytest.approx(18.0, abs=0.05)
    # x maps to A (or B): the other's 4.5 s alone is confusion, its 4.5 s in overlap missed
    assert swapped.confusion == pytest.approx(4.5, abs=0.05)
    assert swapped.missed == pytest.approx(4.5, abs=0.05)
    assert swapped.ref_speakers == 2 and swapped.hyp_speakers == 1


def test_a_cannot_link_keeps_two_close_voices_apart() -> None:
    from malsori.diarize import cluster

    rng = np.random.default_rng(0)
    e = np.eye(192)
    u, v = e[0], 0.55 * e[0] + np.sqrt(1 - 0.55**2) * e[1]  # 0.45 apart: two similar voices

    def voice(centre: np.ndarray) -> np.ndarray:
        return centre + rng.normal(scale=0.01, size=(4, 192))

    # at a cut of 0.6 the two close voices merge, the third (far away) stays apart ...
    a, b, c = voice(u), voice(v), voice(e[2])
    x = np.vstack([a, b, c])
    plain = cluster.cut(cluster.linkage(x), 12, threshold=0.6)
    assert len(set(plain[:8])) == 1 and len(set(plain)) == 2, plain
    # ... unless something heard a and b as two people at once (a penalty on their pairs)
    apart = [(i, j) for i in range(4) for j in range(4, 8)]
    kept = cluster.cut(cluster.linkage(x, apart, 0.2), 12, threshold=0.6)
    assert len(set(kept[:4])) == len(set(kept[4:8])) == 1 and len(set(kept)) == 3, kept
    assert np.array_equal(cluster.linkage(x, apart, 0.0), cluster.linkage(x))


def test_weights_are_sha256_checked() -> None:
    import dataclasses

    from malsori.diarize import weights

    assert weights.locate(weights.CAMPPLUS).name == "campplus_cn_en_common.pt"
    wrong = dataclasses.replace(weights.SEGMENTATION, sha256="0" * 64)
    with pytest.raises(ModelIntegrityError, match="does not match the pinned sha256"):
        weights.locate(wrong)


def test_importing_the_package_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import malsori.diarize, malsori.evaluate.der\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_page_colours_and_renames_speakers(
    server: Server, clips: dict[str, Path], tmp_path: Path
) -> None:
    """The web page in Chromium: 'Label speakers' on, each line shows its speaker in the
    speaker's colour; renaming one chip renames every line of that speaker and the download."""
    from playwright.sync_api import sync_playwright

    from conftest import ROOT

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 900, "height": 900}, accept_downloads=True)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/")
        page.wait_for_selector("#model option[value='tiny.en']", state="attached")
        page.get_by_label("Model").select_option("tiny.en")
        page.set_input_files("#file", str(clips["en2"]))
        page.get_by_label("Label speakers").check()
        page.get_by_role("button", name="Transcribe").click()
        # a locator, not wait_for_function: the page's CSP forbids evaluating strings
        page.locator("#status").filter(has_text=re.compile(r"^(Done|Failed)")).wait_for(
            timeout=120_000
        )
        assert page.inner_text("#status").startswith("Done")
        chips = page.locator("#segments .speaker")
        labels = chips.all_inner_texts()
        assert set(labels) == {"SPEAKER_1", "SPEAKER_2"}
        assert chips.count() == page.locator("#segments .text").count()
        colours = {
            label: chips.nth(i).evaluate("e => getComputedStyle(e).backgroundColor")
            for i, label in enumerate(labels)
        }
        assert colours["SPEAKER_1"] != colours["SPEAKER_2"]
        first = chips.nth(labels.index("SPEAKER_2"))
        first.click()
        page.keyboard.press("Control+A")
        page.keyboard.type("Jane Austen")
        page.keyboard.press("Enter")
        renamed = chips.all_inner_texts()
        assert renamed == ["Jane Austen" if x == "SPEAKER_2" else x for x in labels]
        (ROOT / "tests" / "artifacts").mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ROOT / "tests" / "artifacts" / "web-speakers.png"), full_page=True)
        page.get_by_label("Download as").select_option("txt")
        with page.expect_download() as info:
            page.get_by_role("button", name="Download").click()
        info.value.save_as(tmp_path / "page.txt")
        lines = (tmp_path / "page.txt").read_text().splitlines()
        assert lines[0].startswith("[SPEAKER_1] ")
        assert any(line.startswith("[Jane Austen] ") for line in lines)
        browser.close()
        assert not errors, errors


def test_batch_diarize_and_a_changed_speaker_option_redecodes(
    clips: dict[str, Path], tmp_path: Path, run_cli: CLI
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "talk.wav").write_bytes(clips["en2"].read_bytes())
    out = tmp_path / "out"
    args = ("batch", str(src), "-o", str(out), "--model", "tiny.en", "-f", "txt", "-q")
    first = run_cli(*args, "--diarize", "-f", "txt,json")
    assert first.returncode == 0, first.stderr
    lines = (out / "talk.txt").read_text().splitlines()
    assert {line.split("]")[0] for line in lines} == {"[SPEAKER_1", "[SPEAKER_2"}
    segments = json.loads((out / "talk.json").read_text())["segments"]
    assert all(s["tokens"] for s in segments)  # split segments keep their own token ids
    again = run_cli(*args, "--diarize", "--num-speakers", "1")
    assert again.returncode == 0, again.stderr
    assert "speakers defaults -> num_speakers=1" in again.stderr
    assert {line.split("]")[0] for line in (out / "talk.txt").read_text().splitlines()} == {
        "[SPEAKER_1"
    }


def test_eval_diarization_scores_a_manifest(clips: dict[str, Path], tmp_path: Path) -> None:
    from malsori.cli import main

    rttm = "".join(
        f"SPEAKER ko2 1 {t.start:.3f} {t.duration:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n"
        for t in reference("ko2")
    )
    (tmp_path / "ko2.rttm").write_text(rttm)
    (tmp_path / "ko2.wav").write_bytes(clips["ko2"].read_bytes())
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("path\trttm\tlanguage\nko2.wav\tko2.rttm\tko\n")
    report = tmp_path / "der.json"
    assert main(["eval", "--diarization", str(manifest), "-o", str(report), "-q"]) == 0
    data = json.loads(report.read_text())
    assert data["collar"] == 0.25 and data["speaker_count_right"] == 1
    (row,) = data["files"]
    assert row["path"] == "ko2.wav" and row["speakers_true"] == 2
    assert 0 <= row["der"] < 0.15
    assert row["der"] == pytest.approx(row["missed"] + row["false_alarm"] + row["confusion"])


def test_eval_diarization_scores_the_good_rows_and_lists_the_bad(
    clips: dict[str, Path], tmp_path: Path, run_cli: CLI
) -> None:
    """A row whose audio is missing, a directory or undecodable, or whose RTTM is garbage or
    empty while the audio has speech, is listed as MANIFEST:LINE; the other rows are still
    scored and reported (CSV for .csv), and the exit status is 1."""
    (tmp_path / "ko2.wav").write_bytes(clips["ko2"].read_bytes())
    (tmp_path / "ko2.rttm").write_text(
        "".join(
            f"SPEAKER ko2 1 {t.start:.3f} {t.duration:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n"
            for t in reference("ko2")
        )
    )
    (tmp_path / "bad.wav").write_text("not audio\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "empty.rttm").write_text("")
    (tmp_path / "garbage.rttm").write_text("SPEAKER ko2 1 0.0 1.0 <NA> <NA> A\nhello world\n")
    rows = [
        "ko2.wav\tko2.rttm",  # line 2: scored
        "bad.wav\tko2.rttm",  # 3
        "missing.wav\tko2.rttm",  # 4
        "adir\tko2.rttm",  # 5
        "ko2.wav\tgarbage.rttm",  # 6
        "ko2.wav\tempty.rttm",  # 7
    ]
    manifest = tmp_path / "m.tsv"
    manifest.write_text("path\trttm\n" + "\n".join(rows) + "\n")
    proc = run_cli("eval", "--diarization", str(manifest), "-o", str(tmp_path / "r.csv"), "-q")
    assert proc.returncode == 1, proc.stderr
    report = (tmp_path / "r.csv").read_text().splitlines()
    assert report[0].startswith("line,path,language,der,")
    assert len(report) == 2 and report[1].startswith("2,ko2.wav,")
    lines = {
        int(line[len(f"malsori: {manifest}:") :].split(":")[0]): line
        for line in proc.stderr.splitlines()
        if line.startswith(f"malsori: {manifest}:")
    }
    assert sorted(lines) == [3, 4, 5, 6, 7], proc.stderr
    assert "bad.wav" in lines[3] and "not a decodable audio file" in lines[3]
    assert lines[4].endswith(":4: no such file: missing.wav")
    assert lines[5].endswith(":5: adir is a directory, not a file")
    assert ":6: garbage.rttm:2: not an RTTM line" in lines[6]
    assert ":7: empty.rttm has no speaker turns" in lines[7]
    assert "5 row(s) could not be scored" in proc.stderr
    for bad in (["--model", "base"], ["--beam-size", "5"], ["--plot"], ["-o", "r.txt"]):
        proc = run_cli("eval", "--diarization", str(manifest), *bad)
        assert proc.returncode == 1 and proc.stderr.startswith("malsori: error: "), bad
        assert proc.stderr.count("\n") == 1
