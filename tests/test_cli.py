"""``malsori transcribe`` and ``malsori models`` as a user runs them (real subprocesses)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import wave
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import EVALDATA, SENTENCES, convert, wer
from malsori._ledger import LEDGER

Run = Callable[..., subprocess.CompletedProcess[str]]
TINY = ("--model", "tiny.en", "-q")


def test_transcribe_to_stdout(run_cli: Run, window_wav: Path) -> None:
    proc = run_cli("transcribe", str(window_wav), *TINY)
    assert proc.returncode == 0, proc.stderr
    assert wer(SENTENCES["window"], proc.stdout) <= 0.2, proc.stdout


def test_output_dir_gets_every_format(run_cli: Run, window_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "nested"
    proc = run_cli(
        "transcribe", str(window_wav), *TINY, "--output-dir", str(out), "--word-timestamps"
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir() if p.name != LEDGER) == [
        f"window.{ext}" for ext in ("json", "srt", "tsv", "txt", "vtt")
    ]
    data = json.loads((out / "window.json").read_text())
    assert data["segments"][0]["words"]
    # ids count from 0, as with --diarize, live, the server and openai-whisper
    assert [s["id"] for s in data["segments"]] == list(range(len(data["segments"])))


def test_output_dir_rewrites_only_its_own_results(
    run_cli: Run, speech_dir: Path, tmp_path: Path
) -> None:
    """A rerun rewrites an input's own unchanged files; a file malsori did not write, one
    edited since, or another input's transcript under the same name stops that input with
    the reason (hostile tester: a hand-made movie.srt and d1/x.wav's transcript were
    silently replaced); --overwrite replaces them."""
    out = tmp_path / "out"
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    d1.mkdir()
    d2.mkdir()
    (d1 / "x.wav").write_bytes((speech_dir / "window.wav").read_bytes())
    (d2 / "x.wav").write_bytes((speech_dir / "report.wav").read_bytes())
    first = run_cli("transcribe", str(d1 / "x.wav"), *TINY, "-o", str(out), "-f", "txt,srt")
    assert first.returncode == 0, first.stderr
    again = run_cli("transcribe", str(d1 / "x.wav"), *TINY, "-o", str(out), "-f", "txt,srt")
    assert again.returncode == 0, again.stderr  # its own results: rewritten
    kept = (out / "x.txt").read_text()

    other = run_cli("transcribe", str(d2 / "x.wav"), *TINY, "-o", str(out), "-f", "txt")
    assert other.returncode == 1
    assert "holds the transcript of another input" in other.stderr, other.stderr
    assert (out / "x.txt").read_text() == kept
    # refused before any decoding (a two-hour lecture was decoded only to be refused)
    assert "was saved to" not in other.stderr and "wrote" not in other.stderr

    (out / "x.srt").write_text((out / "x.srt").read_text() + "my correction\n")
    edited = run_cli("transcribe", str(d1 / "x.wav"), *TINY, "-o", str(out), "-f", "srt")
    assert edited.returncode == 1 and "was changed since malsori wrote it" in edited.stderr
    assert (out / "x.srt").read_text().endswith("my correction\n")

    (out / "movie.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nmine\n")
    (tmp_path / "movie.wav").write_bytes((speech_dir / "window.wav").read_bytes())
    mine = run_cli("transcribe", str(tmp_path / "movie.wav"), *TINY, "-o", str(out), "-f", "srt")
    assert mine.returncode == 1 and "was not written by malsori" in mine.stderr
    assert (out / "movie.srt").read_text().endswith("mine\n")
    assert str(tmp_path) not in mine.stderr.replace(str(out), "")  # no other path shown

    forced = run_cli(
        "transcribe", str(d2 / "x.wav"), *TINY, "-o", str(out), "-f", "txt", "--overwrite"
    )
    assert forced.returncode == 0, forced.stderr
    assert wer(SENTENCES["report"], (out / "x.txt").read_text()) <= 0.2


def test_a_named_pipe_is_read_and_a_device_refused(
    run_cli: Run, window_wav: Path, tmp_path: Path
) -> None:
    """``malsori transcribe <(cat x.wav)`` and ``/dev/stdin`` are pipes, not empty files (they
    were refused as 'file is empty (0 bytes)'); /dev/zero is refused, not read forever."""
    import os
    import threading

    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as fh:
            fh.write(window_wav.read_bytes())

    writer = threading.Thread(target=feed)
    writer.start()
    proc = run_cli("transcribe", str(fifo), *TINY)
    writer.join(timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert wer(SENTENCES["window"], proc.stdout) <= 0.2, proc.stdout
    zero = run_cli("transcribe", "/dev/zero", *TINY)
    assert zero.returncode == 1 and "is a device or socket, not an audio file" in zero.stderr


@pytest.mark.parametrize("ext", ["flac", "mp3", "ogg", "opus", "m4a", "webm", "mp4"])
def test_any_ffmpeg_format(run_cli: Run, window_wav: Path, tmp_path: Path, ext: str) -> None:
    args = ("-f", "lavfi", "-i", "color=c=black:s=64x64:r=5") if ext == "mp4" else ()
    src = tmp_path / f"clip.{ext}"
    if args:  # a video with the speech as its audio track
        subprocess.run(
            [
                "ffmpeg",
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(window_wav),
                *args,
                "-shortest",
                "-c:v",
                "mpeg4",
                "-c:a",
                "aac",
                str(src),
            ],
            check=True,
        )
    else:
        convert(window_wav, src)
    proc = run_cli("transcribe", str(src), *TINY)
    assert proc.returncode == 0, proc.stderr
    assert wer(SENTENCES["window"], proc.stdout) <= 0.25, proc.stdout


def test_stdin(run_cli: Run, window_wav: Path) -> None:
    proc = run_cli("transcribe", "-", *TINY, "--format", "srt", stdin=window_wav.read_bytes())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("1\n00:00:00,000 --> ")


def _zero_length_wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
    return path


@pytest.fixture
def bad_inputs(tmp_path: Path, window_wav: Path) -> dict[str, tuple[Path, str]]:
    d = tmp_path / "bad"
    d.mkdir()
    (d / "empty.wav").write_bytes(b"")
    (d / "notes.wav").write_text("this is a text file, not audio\n")
    data = window_wav.read_bytes()
    (d / "truncated.wav").write_bytes(data[: len(data) // 3])
    mp3 = convert(window_wav, d / "full.mp3")
    (d / "truncated.mp3").write_bytes(mp3.read_bytes()[: mp3.stat().st_size // 3])
    mp3.unlink()
    (d / "header.wav").write_bytes(data[:30])
    _zero_length_wav(d / "silent0.wav")
    (d / "folder.wav").mkdir()
    (d / "loop-a.wav").symlink_to(d / "loop-b.wav")
    (d / "loop-b.wav").symlink_to(d / "loop-a.wav")
    return {
        # a name over the file system's limit (a traceback before), a symlink loop
        "name too long": (d / ("c" * 252 + ".wav"), "File name too long"),
        "symlink loop": (d / "loop-a.wav", "Too many levels of symbolic links"),
        "missing": (d / "missing.wav", "no such file"),
        "directory": (d / "folder.wav", "is a directory"),
        "empty": (d / "empty.wav", "file is empty"),
        "not audio": (d / "notes.wav", "not a decodable audio file"),
        "truncated wav": (d / "truncated.wav", "truncated WAV file"),
        "truncated mp3": (d / "truncated.mp3", "truncated audio"),
        "header only": (d / "header.wav", "truncated WAV file"),
        "zero length": (d / "silent0.wav", "zero-length audio"),
    }


def test_each_bad_input_gets_one_clear_line(
    run_cli: Run, bad_inputs: dict[str, tuple[Path, str]]
) -> None:
    for case, (path, message) in bad_inputs.items():
        proc = run_cli("transcribe", str(path), *TINY)
        assert proc.returncode == 1, (case, proc.stderr)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("malsori: error:")]
        assert len(errors) == 1 and message in errors[0], (case, proc.stderr)
        assert "[Errno" not in errors[0] and errors[0].count(path.name) == 1, errors[0]
        assert "Traceback" not in proc.stderr
        assert proc.stdout == ""


def test_a_folder_given_to_transcribe_points_to_batch(run_cli: Run, tmp_path: Path) -> None:
    """`transcribe recordings/ -o out` said only "is a directory" and left an empty out/
    behind (a new user)."""
    (tmp_path / "녹음").mkdir()
    proc = run_cli("transcribe", str(tmp_path / "녹음"), *TINY, "-o", str(tmp_path / "결과"))
    assert proc.returncode == 1 and "malsori batch DIR -o OUT" in proc.stderr, proc.stderr
    assert not (tmp_path / "결과").exists()


def test_good_files_still_transcribed_when_others_fail(
    run_cli: Run, bad_inputs: dict[str, tuple[Path, str]], speech_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mixed"
    files = [
        str(speech_dir / "window.wav"),
        *(str(p) for p, _ in bad_inputs.values()),
        str(speech_dir / "report.wav"),
    ]
    proc = run_cli("transcribe", *files, *TINY, "-o", str(out), "-f", "txt,srt")
    assert proc.returncode == 1
    assert f"{len(bad_inputs)} of {len(files)} input(s) failed" in proc.stderr
    assert "would write the same output files" not in proc.stderr  # truncated.wav/.mp3
    assert sorted(p.name for p in out.iterdir() if p.name != LEDGER) == [
        "report.srt",
        "report.txt",
        "window.srt",
        "window.txt",
    ]  # and no partial or temporary files
    assert wer(SENTENCES["report"], (out / "report.txt").read_text()) <= 0.2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--language", "xx"), "unknown language code 'xx'"),
        (("--model", "medium"), "'medium' is not available offline"),
        (("--model", "tiny.en", "--language", "ko"), "English-only"),
        (("--compute-type", "int3"), "unknown compute type 'int3'"),
        (("--beam-size", "-1"), "beam_size must be from 1 to 16 (or 0 = automatic)"),
        # each hypothesis holds the decoder's cache: 100000 took the machine's 24 GB
        (("--beam-size", "100000"), "beam_size must be from 1 to 16"),
        (("--format", "docx"), "unknown output format 'docx'"),
    ],
)
def test_bad_options(run_cli: Run, window_wav: Path, args: tuple[str, ...], message: str) -> None:
    proc = run_cli("transcribe", str(window_wav), "-q", *args)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_unwritable_output_dir(run_cli: Run, window_wav: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    proc = run_cli("transcribe", str(window_wav), *TINY, "-o", str(blocker / "out"))
    assert proc.returncode == 1
    assert "cannot write to output directory" in proc.stderr


def test_models_command(run_cli: Run) -> None:
    proc = run_cli("models", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["tiny.en"]["status"] == "bundled" and rows["tiny.en"]["checksum"] == "ok"
    assert rows["base"]["status"] == "bundled" and rows["base"]["size"] > 145_000_000
    assert rows["medium"]["status"] == "not available offline"
    table = run_cli("models")
    assert table.stdout.splitlines()[0].split()[:4] == ["model", "status", "size", "checksum"]


def test_wav_header_check_ignores_streamed_wav(
    run_cli: Run, window_wav: Path, tmp_path: Path
) -> None:
    """WAVs written to a pipe carry 0xFFFFFFFF as data size; they are complete, not truncated."""
    data = bytearray(window_wav.read_bytes())
    idx = data.index(b"data")
    data[idx + 4 : idx + 8] = struct.pack("<I", 0xFFFFFFFF)
    streamed = tmp_path / "streamed.wav"
    streamed.write_bytes(bytes(data))
    proc = run_cli("transcribe", str(streamed), *TINY)
    assert proc.returncode == 0, proc.stderr


def test_wavs_that_espeak_and_sox_write_to_a_pipe_are_read(tmp_path: Path) -> None:
    """espeak-ng --stdout and sox write 0x7FFFF000 as the data size; both were refused as
    truncated, piped and saved alike (a hostile tester)."""
    text = "Good morning, this came from a pipe."
    spoken = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout
    assert struct.unpack("<I", spoken[40:44])[0] == 0x7FFFF000  # what espeak-ng writes
    saved = tmp_path / "espeak.wav"
    saved.write_bytes(spoken)
    slower = subprocess.run(
        ["sox", str(saved), "-t", "wav", "-", "tempo", "0.9"], capture_output=True, check=True
    ).stdout
    for audio, argv in ((spoken, ["-"]), (b"", [str(saved)]), (slower, ["-"])):
        proc = subprocess.run(
            [sys.executable, "-m", "malsori.cli", "transcribe", *argv, *TINY],
            input=audio,
            capture_output=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        assert "morning" in proc.stdout.decode().lower(), proc.stdout


def test_the_output_list_survives_a_torn_line(tmp_path: Path) -> None:
    """A ledger line cut mid-write (a full disk; a Korean name cut inside a character) was
    fatal to every later run, and the next entry was appended onto it (reviewer)."""
    from malsori._ledger import Ledger

    out = tmp_path / "out"
    out.mkdir()
    (out / "회의.txt").write_text("x\n")
    ledger = Ledger(out)
    with ledger.locked():
        ledger.record([(out / "회의.txt", "x\n")], "/in/회의.wav")
    with open(out / LEDGER, "ab") as fh:
        fh.write('{"file": "회'.encode()[:-1])  # torn inside a Hangul syllable
    (out / "b.txt").write_text("y\n")
    with ledger.locked() as entries:
        assert set(entries) == {"회의.txt"}
        ledger.record([(out / "b.txt", "y\n")], "/in/b.wav")
    with ledger.locked() as entries:
        assert set(entries) == {"회의.txt", "b.txt"}
        ledger.check(entries, [out / "b.txt"], "/in/b.wav", "b.wav", False)  # its own


def test_durations_guessed_from_the_bitrate_are_not_taken_as_truncation(
    tmp_path: Path,
) -> None:
    """A VBR MP3 without a Xing header and an ADTS .aac that start with silence: FFmpeg
    guesses their duration from the first (quiet, low-bitrate) frames, 93 s for 13 s of
    speech, and both were refused as truncated, by the CLI and the server (a hostile
    tester). A truncated MP3 with a Xing header is still refused."""
    from malsori import load_audio
    from malsori.errors import AudioError

    jfk = EVALDATA / "en" / "jfk.wav"
    quiet = tmp_path / "quiet_first.wav"
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", str(tmp_path / "s.wav"), "trim", "0", "2"],
        check=True,
    )
    subprocess.run(["sox", str(tmp_path / "s.wav"), str(jfk), str(quiet)], check=True)
    vbr = convert(
        quiet, tmp_path / "vbr.mp3", "-c:a", "libmp3lame", "-q:a", "0", "-write_xing", "0"
    )
    aac = convert(quiet, tmp_path / "x.aac", "-c:a", "aac", "-q:a", "1", "-f", "adts")
    xing = convert(quiet, tmp_path / "xing.mp3", "-c:a", "libmp3lame", "-q:a", "0")
    for path in (vbr, aac):
        for source in (path, path.read_bytes()):
            audio = load_audio(source)
            assert 12.5 < len(audio) / 16000 < 13.5, path
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(xing.read_bytes()[: xing.stat().st_size * 2 // 3])
    with pytest.raises(AudioError, match="truncated audio"):
        load_audio(cut)


def test_closed_stderr_or_stdout(window_wav: Path, tmp_path: Path) -> None:
    """Started with stderr closed (``2>&-``), a run with -o wrote nothing and exited 1 (its
    progress bar could not be drawn); with stdout closed (``>&-``) a transcript for stdout
    ended in a traceback. The work is done with stderr closed; a closed stdout is one
    error. Neither standard number is reused for a file malsori opens."""
    import os

    def run(close: int, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "malsori.cli", "transcribe", str(window_wav), *TINY, *args],
            preexec_fn=lambda: os.close(close),
            capture_output=close != 1 and close != 2,
            stdout=subprocess.PIPE if close == 2 else None,
            stderr=subprocess.PIPE if close == 1 else None,
            cwd=tmp_path,
            timeout=300,
        )

    proc = run(2, "-o", "out")
    assert proc.returncode == 0
    text = (tmp_path / "out" / "window.txt").read_text()
    assert wer(SENTENCES["window"], text) <= 0.2, text
    proc = run(1)
    assert proc.returncode == 1
    said = proc.stderr.decode().strip()
    assert said == "malsori: error: cannot write the output: stdout is closed", said
    # stdin closed (<&-) and "-" as the input: empty input, not an AttributeError
    proc = subprocess.run(
        [sys.executable, "-m", "malsori.cli", "transcribe", "-", *TINY],
        preexec_fn=lambda: os.close(0),
        capture_output=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "<stdin>: input is empty (0 bytes)" in proc.stderr.decode(), proc.stderr


def test_an_english_only_model_on_korean_is_flagged(
    run_cli: Run, window_wav: Path, tmp_path: Path
) -> None:
    """tiny.en turns 8 s of Korean into "Thank you very much." (or, when its fallback
    samples, "Thank you for watching ... Bye bye.") with exit 0 and nothing to say so (a
    hostile tester): its segment is flagged little_text, sampled or (on some CPUs' int8
    kernels, where greedy gives a longer invention) low_confidence, with a warning that
    names the fix; English speech is not flagged."""
    korean = EVALDATA / "ko" / "emotiontts_adc00002.wav"
    proc = run_cli("transcribe", str(korean), str(window_wav), *TINY, "-o", "out", "-f", "json")
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stderr.splitlines() if ": warning: " in line]
    assert warned and all(line.startswith(str(korean)) for line in warned), proc.stderr
    assert any("use --model base" in line for line in warned), proc.stderr
    ko = json.loads((tmp_path / "out" / "emotiontts_adc00002.json").read_text())
    assert ko["segments"], ko
    doubtful = {"little_text", "sampled", "low_confidence"}
    assert all(doubtful & set(s["flags"]) for s in ko["segments"]), ko
    en = json.loads((tmp_path / "out" / "window.json").read_text())
    assert en["segments"] and not any(s["flags"] for s in en["segments"]), en


def test_the_same_input_twice_is_named(run_cli: Run, window_wav: Path, tmp_path: Path) -> None:
    """``a.wav ./a.wav`` was told to use "different --output-dir folders" (it is one file),
    and ``a.wav a.wav`` did not say which input."""
    (tmp_path / "a.wav").symlink_to(window_wav)
    proc = run_cli("transcribe", "a.wav", "./a.wav", *TINY, "-o", "out")
    assert proc.returncode == 1
    assert "the same input is given twice: 'a.wav' (as './a.wav')" in proc.stderr, proc.stderr
    proc = run_cli("transcribe", "a.wav", "a.wav", *TINY, "-o", "out")
    assert "the same input is given twice: 'a.wav'" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


def test_what_was_done_to_the_audio_is_kept_in_the_json(run_cli: Run, tmp_path: Path) -> None:
    """A warning about the input (here: stereo whose channels cancel, transcribed through
    their difference) was printed once and lost: the json that ``transcribe -o`` and
    ``batch`` write now keeps it under ``warnings``, for whoever reads the file later."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    inverted = inbox / "call.flac"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(EVALDATA / "en" / "jfk.wav"),
         "-filter_complex", "[0:a]pan=stereo|c0=c0|c1=-1*c0", "-ac", "2", str(inverted)],
        check=True,
    )  # fmt: skip
    done = run_cli("transcribe", str(inverted), "--model", "tiny.en", "-o", "t", "-f", "json")
    assert done.returncode == 0, done.stderr
    assert "cancel each other" in done.stderr  # said on the terminal as before
    data = json.loads((tmp_path / "t" / "call.json").read_text())
    assert len(data["warnings"]) == 1 and "cancel each other" in data["warnings"][0]
    assert "country" in data["text"]
    done = run_cli("batch", str(inbox), "--output-dir", "b", "--model", "tiny.en", "-f", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / "b" / "call.json").read_text())
    assert len(data["warnings"]) == 1 and "cancel each other" in data["warnings"][0]


def test_an_empty_format_and_a_folder_in_the_way_get_their_own_message(
    run_cli: Run, window_wav: Path, tmp_path: Path
) -> None:
    """``-f ""`` silently gave txt; a folder named like an output was refused with "pass
    --overwrite", which then failed too (a hostile tester)."""
    commands = (
        ["transcribe", str(window_wav), "-o", "o"],
        ["batch", str(tmp_path), "-o", "b"],
        ["live", "--input", str(window_wav), "-o", "o"],
    )
    for command in commands:
        proc = run_cli(*command, "--model", "tiny.en", "-f", "")
        assert proc.returncode == 1 and "no output format given" in proc.stderr, proc.stderr
        assert not (tmp_path / "o").exists() and not (tmp_path / "b").exists()
    (tmp_path / "o" / "window.txt").mkdir(parents=True)
    (tmp_path / "o" / "window.txt" / "notes.md").write_text("mine")
    for extra in ([], ["--overwrite"]):
        proc = run_cli("transcribe", str(window_wav), *TINY, "-o", "o", "-f", "txt", *extra)
        assert proc.returncode == 1, proc.stderr
        assert "is a folder, where this output would go" in proc.stderr, proc.stderr
        assert "--overwrite" not in proc.stderr
    assert (tmp_path / "o" / "window.txt" / "notes.md").read_text() == "mine"


def test_a_forced_language_on_mixed_audio_is_named_in_the_warning(
    run_cli: Run, tmp_path: Path
) -> None:
    """`--language ko` on a Korean show with an English quote turned the English into
    invented Korean; the low-confidence warning did not say why (a Korean tester). It now
    names the forced language and the fix; without --language the English stays English."""
    parts = [EVALDATA / "ko" / "emotiontts_pfa00010.wav", EVALDATA / "en" / "jfk.wav",
             EVALDATA / "ko" / "emotiontts_pmc00015.wav"]  # fmt: skip
    listing = tmp_path / "parts.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in parts))
    mixed = tmp_path / "mixed.wav"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
         "-ar", "16000", "-ac", "1", str(mixed)],
        check=True, timeout=60,
    )  # fmt: skip
    forced = run_cli("transcribe", str(mixed), "--model", "base", "--language", "ko", "-q")
    assert forced.returncode == 0, forced.stderr
    warned = [line for line in forced.stderr.splitlines() if ": warning: " in line]
    assert any("--language ko makes every stretch ko" in line for line in warned), forced.stderr
    auto = run_cli("transcribe", str(mixed), "--model", "base", "-q")
    assert auto.returncode == 0, auto.stderr
    assert "fellow americans" in auto.stdout.lower(), auto.stdout
    assert "makes every stretch" not in auto.stderr
