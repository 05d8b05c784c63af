"""The Python API: get_whisper as in the original notes, transcribe(), the model cache,
device/thread/compute-type selection. All on the bundled tiny.en and real (espeak) speech."""

from __future__ import annotations

import logging
import re
import wave
from pathlib import Path

import pytest

import malsori
from conftest import EVALDATA, SENTENCES, espeak, unknown_codec_wav, wer
from malsori import DecodeOptions, OptionsError, Transcript, get_whisper, transcribe


def test_get_whisper_returns_faster_whisper_transcribe(window_wav: Path) -> None:
    from faster_whisper import WhisperModel

    whisper = get_whisper(
        model_size="tiny.en", compute_type="int8", device="auto", cpu_threads=None
    )
    assert getattr(whisper, "__func__", None) is WhisperModel.transcribe
    segments, info = whisper(str(window_wav), beam_size=5)
    text = "".join(s.text for s in segments)
    assert info.language == "en"
    assert info.duration == pytest.approx(window_wav.stat().st_size / 32000, rel=0.05)
    assert wer(SENTENCES["window"], text) <= 0.2, text


def test_get_whisper_reuses_loaded_model() -> None:
    a = get_whisper("tiny.en", compute_type="int8")
    b = get_whisper("tiny.en", compute_type="int8")
    assert a.__self__ is b.__self__  # type: ignore[attr-defined]
    c = get_whisper("tiny.en", compute_type="float32")
    assert c.__self__ is not a.__self__  # type: ignore[attr-defined]


def test_engine_config_and_the_one_model_cache(window_wav: Path) -> None:
    """An EngineConfig loads the same cached instance as the keyword form; a model idle
    longer than the limit is dropped from the cache (what the server's idle unload uses)
    and the next load gives a fresh one that transcribes as before."""
    from malsori.engine import CACHE

    config = malsori.EngineConfig("tiny.en", cpu_threads=1)
    first = malsori.load_model(config)
    assert first is malsori.load_model("tiny.en", cpu_threads=1) is config.load()
    assert first.compute_type == "int8" and first.cpu_threads == 1
    assert CACHE.holds(first)
    assert first in CACHE.drop_idle(0.0) and not CACHE.holds(first)
    again = transcribe(window_wav, config, language="en")
    assert wer(SENTENCES["window"], again.text) <= 0.25
    assert malsori.load_model(config) is not first


def test_transcribe_returns_transcript_with_words(speech_dir: Path) -> None:
    result = transcribe(speech_dir / "report.wav", model="tiny.en", word_timestamps=True)
    assert isinstance(result, Transcript)
    assert result.language == "en"
    assert result.model == "tiny.en"
    assert result.duration > 2
    assert wer(SENTENCES["report"], result.text) <= 0.2, result.text
    assert result.words, "word timestamps were requested"
    starts = [w.start for w in result.words]
    assert starts == sorted(starts)
    assert all(0 <= w.start <= w.end <= result.duration + 0.5 for w in result.words)
    assert result.options["word_timestamps"] is True


def test_transcribe_real_speech_from_evaldata(tiny_en: malsori.LoadedModel) -> None:
    import csv

    with open(EVALDATA / "manifest.tsv", encoding="utf-8") as fh:
        rows = {r["path"]: r for r in csv.DictReader(fh, delimiter="\t")}
    for rel in ("en/jfk.wav", "en/librispeech_1272-128104-0000.wav"):
        result = transcribe(EVALDATA / rel, tiny_en, language="en")
        assert wer(rows[rel]["reference"], result.text) <= 0.10, result.text


def test_transcribe_accepts_bytes_and_arrays(
    window_wav: Path, tiny_en: malsori.LoadedModel
) -> None:
    from_bytes = transcribe(window_wav.read_bytes(), tiny_en, beam_size=1)
    from_array = transcribe(malsori.load_audio(window_wav), tiny_en, beam_size=1)
    assert from_bytes.text == from_array.text
    assert from_bytes.duration == pytest.approx(from_array.duration)


def test_transcribe_reads_a_named_pipe_once(
    window_wav: Path, tiny_en: malsori.LoadedModel, tmp_path: Path
) -> None:
    """A pipe can be read once: the pipeline's probe used it up and the decode then waited
    forever (reviewer). It is now held in memory and decoded."""
    import os
    import threading

    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(window_wav.read_bytes()))
    writer.start()
    result = transcribe(fifo, tiny_en)
    writer.join(timeout=60)
    assert wer(SENTENCES["window"], result.text) <= 0.2, result.text


def test_progress_callback_reaches_total(window_wav: Path, tiny_en: malsori.LoadedModel) -> None:
    seen: list[tuple[float, float]] = []
    transcribe(window_wav, tiny_en, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1]
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_batched_pipeline_gives_same_words_as_sequential(tiny_en: malsori.LoadedModel) -> None:
    clip = EVALDATA / "en" / "jfk.wav"
    sequential = transcribe(clip, tiny_en, language="en", batch_size=1)
    batched = transcribe(clip, tiny_en, language="en", batch_size=8)
    assert sequential.options["batch_size"] == 1 and batched.options["batch_size"] == 8
    assert wer(sequential.text, batched.text) == 0.0, (sequential.text, batched.text)


def test_device_and_threads_are_chosen_for_this_machine() -> None:
    import os

    import psutil

    assert malsori.select_device("auto") == "cpu"  # no GPU in tests
    threads = malsori.default_cpu_threads()
    assert 1 <= threads <= len(os.sched_getaffinity(0))
    assert threads == min(psutil.cpu_count(logical=False) or 1, len(os.sched_getaffinity(0)))
    loaded = malsori.load_model("tiny.en")
    assert loaded.cpu_threads == threads
    assert loaded.device == "cpu"


def test_cuda_asked_for_by_name_is_refused_with_the_reason() -> None:
    # No GPU here: `cuda` by name is an error before any model loads, not a CPU fallback.
    with pytest.raises(malsori.OptionsError, match="sees no CUDA device"):
        malsori.load_model("tiny.en", device="cuda")


def test_a_gpu_without_cublas_12_is_used_only_when_it_can_be(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A machine with a GPU but only CUDA 13's cuBLAS (seen on an H100): `auto` chose the
    GPU and CTranslate2 would fail at its first matrix product. The GPU is simulated (no
    GPU in tests); the library probe is the real one."""
    from malsori import engine

    if not engine.cuda_libraries_missing():
        pytest.skip("this machine has cuBLAS 12: nothing to simulate")
    monkeypatch.setattr(engine, "_cuda_device_count", lambda: 1)
    engine._cuda_unusable.cache_clear()
    engine._warned_cpu_instead.clear()
    try:
        with caplog.at_level(logging.WARNING, logger="malsori"):
            assert engine.select_device("auto") == "cpu"
            assert engine.select_device("auto") == "cpu"
        warnings = [r.getMessage() for r in caplog.records if "libcublas.so.12" in r.getMessage()]
        assert len(warnings) == 1 and "using the CPU" in warnings[0], caplog.text  # once
        with pytest.raises(malsori.OptionsError, match=r"cannot load libcublas\.so\.12"):
            engine.select_device("cuda")
    finally:
        engine._cuda_unusable.cache_clear()


def test_cuda_library_probe_names_what_cannot_be_loaded() -> None:
    # The probe behind `auto` on a GPU machine: a library the loader finds is not reported,
    # one it cannot find is, by name (a GPU with only CUDA 13's cuBLAS has no libcublas.so.12).
    from malsori.engine import cuda_libraries_missing

    missing = cuda_libraries_missing(("libc.so.6", "libmalsori-not-installed.so.12"))
    assert len(missing) == 1 and "libmalsori-not-installed.so.12" in missing[0]
    assert cuda_libraries_missing(("libc.so.6",)) == []


def test_float16_on_cpu_falls_back_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="malsori"):
        loaded = malsori.load_model("tiny.en", compute_type="float16")
    assert loaded.compute_type == "float32"
    assert "float16 is not supported on cpu" in caplog.text


def test_bad_options_are_rejected_clearly(tiny_en: malsori.LoadedModel, window_wav: Path) -> None:
    with pytest.raises(OptionsError, match="unknown compute type 'int4'"):
        malsori.load_model("tiny.en", compute_type="int4")
    with pytest.raises(OptionsError, match="unknown language code 'xx'"):
        DecodeOptions(language="xx")
    # a country code or an English name gets the code it likely meant; a BCP 47 tag works
    for wrong in ("kr", "Korean", "한국어"):
        with pytest.raises(OptionsError, match="did you mean 'ko'"):
            DecodeOptions(language=wrong)
    assert DecodeOptions(language="ko-KR").language == "ko"
    assert DecodeOptions(language="en_US").language == "en"
    with pytest.raises(OptionsError, match="beam_size"):
        DecodeOptions(beam_size=-1)  # 0 = automatic (malsori's pipeline, issue 14)
    # wrong types and values are OptionsError / AudioError, not a TypeError deep inside
    for wrong, message in [
        ({"beam_size": "5"}, "beam_size must be a whole number, got '5'"),
        ({"beam_size": 100_000}, "beam_size must be from 1 to 16"),
        ({"temperature": -1.0}, "temperature must be from 0 to 1, got -1.0"),
        ({"temperature": (0.0, float("nan"))}, "temperature must be from 0 to 1"),
        ({"best_of": 0}, "best_of must be from 1 to 16"),
        ({"initial_prompt": 5}, "initial_prompt must be a string"),
    ]:
        with pytest.raises(OptionsError, match=re.escape(message)):
            transcribe(window_wav, tiny_en, **wrong)
    # NumPy numbers (a sweep over np.arange / np.linspace) are plain numbers, not refused
    import numpy as np

    numpy_made = DecodeOptions(beam_size=np.int64(5), temperature=np.linspace(0, 1, 6))
    assert numpy_made.beam_size == 5 and type(numpy_made.beam_size) is int
    assert numpy_made.temperature == pytest.approx((0.0, 0.2, 0.4, 0.6, 0.8, 1.0))
    assert isinstance(numpy_made.temperature, tuple)
    for source in (None, 5, open(window_wav)):  # noqa: SIM115 (a text-mode file object)
        with pytest.raises(malsori.AudioError, match="audio must be a path, bytes"):
            transcribe(source, tiny_en)  # type: ignore[arg-type]
    with pytest.raises(OptionsError, match="English-only"):
        transcribe(window_wav, tiny_en, language="ko")
    with pytest.raises(OptionsError, match="device 'cuda'"):
        malsori.load_model("tiny.en", device="cuda")


def test_public_surface_is_declared() -> None:
    for name in malsori.__all__:
        assert hasattr(malsori, name), name


def _stereo(left: Path, right_filter: str, out: Path, right: Path | None = None) -> Path:
    import subprocess

    inputs = ["-i", str(left)] + (["-i", str(right)] if right else [])
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", *inputs, "-filter_complex", right_filter,
         "-ac", "2", "-c:a", "flac", str(out)],
        check=True,
    )  # fmt: skip
    return out


def test_stereo_whose_channels_cancel_is_still_heard(
    tiny_en: malsori.LoadedModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One channel wired with inverted polarity: the plain mix is silence (an empty
    transcript before); the channels' difference is transcribed, with a warning."""
    import numpy as np

    clip = EVALDATA / "en" / "jfk.wav"
    inverted = _stereo(clip, "[0:a]pan=stereo|c0=c0|c1=-1*c0", tmp_path / "inverted.flac")
    mono = malsori.load_audio(clip)
    with caplog.at_level(logging.WARNING, logger="malsori"):
        heard = malsori.load_audio(inverted)
        result = transcribe(inverted, tiny_en, language="en")  # the pipeline's block reader
    assert np.sqrt(np.mean(heard**2)) > 0.5 * np.sqrt(np.mean(mono**2))
    assert wer("And so my fellow Americans, ask not what your country can do for you, ask "
               "what you can do for your country.", result.text) <= 0.1, result.text  # fmt: skip
    warned = [r.getMessage() for r in caplog.records if "cancel each other" in r.getMessage()]
    assert len(warned) == 2 and all("inverted.flac" in m for m in warned), warned
    # kept with the transcript too (its json): a file written later says what was done
    assert result.warnings == [warned[1]], result.warnings
    assert result.to_dict()["warnings"] == result.warnings
    assert "warnings" not in transcribe(clip, tiny_en, language="en").to_dict()


def test_warnings_still_reach_a_library_user_without_logging_set_up(tmp_path: Path) -> None:
    """Keeping the warnings with the transcript added a handler to the ``malsori`` logger,
    and logging then skipped its last resort: a program that never configured logging (a
    library user, a batch worker process) no longer saw any warning (a reviewer)."""
    import subprocess
    import sys

    inverted = _stereo(
        EVALDATA / "en" / "jfk.wav", "[0:a]pan=stereo|c0=c0|c1=-1*c0", tmp_path / "inv.flac"
    )
    code = (
        "import sys, malsori\n"
        "r = malsori.transcribe(sys.argv[1], 'tiny.en', language='en')\n"
        "print(len(r.warnings))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(inverted)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"
    assert "cancel each other" in proc.stderr, proc.stderr


def test_two_voices_on_two_channels_are_mixed_as_usual(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Ordinary stereo (a different speaker on each channel) is mixed as FFmpeg mixes it,
    (left + right) / 2, with no warning."""
    import numpy as np

    left, right = EVALDATA / "en" / "jfk.wav", EVALDATA / "en" / "librispeech_1272-128104-0000.wav"
    both = _stereo(left, "[0:a][1:a]amerge=inputs=2", tmp_path / "two.flac", right)
    with caplog.at_level(logging.WARNING, logger="malsori"):
        mixed = malsori.load_audio(both)
    a, b = malsori.load_audio(left), malsori.load_audio(right)
    n = min(len(a), len(b))
    assert len(mixed) >= n
    assert np.abs(mixed[:n] - (a[:n] + b[:n]) / 2).max() < 2e-3
    assert not [r for r in caplog.records if "cancel" in r.getMessage()]


def _ffmpeg(*args: str) -> None:
    import subprocess

    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True)


def test_video_whose_audio_ends_first_is_not_called_truncated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A Matroska video whose audio ends before its picture (or one of two audio tracks
    before the other) was refused as "truncated audio": the container's duration is its
    longest stream's."""
    clip = EVALDATA / "en" / "jfk.wav"
    video = tmp_path / "lecture.mkv"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=5", "-i", str(clip), "-t", "20",
            "-c:v", "libx264", "-c:a", "libvorbis", str(video))  # fmt: skip
    two = tmp_path / "two.mka"
    _ffmpeg("-i", str(clip), "-i", str(EVALDATA / "en" / "librispeech_1272-128104-0000.wav"),
            "-map", "1:a", "-map", "0:a", "-c:a", "libvorbis", str(two))  # fmt: skip
    assert len(malsori.load_audio(video)) / 16000 == pytest.approx(11.0, abs=0.1)
    # ... but audio with cover art cut short is still "truncated" (a reviewer)
    cover, art = tmp_path / "cover.png", tmp_path / "art.mka"
    _ffmpeg("-f", "lavfi", "-i", "color=c=red:size=32x32", "-frames:v", "1", str(cover))
    _ffmpeg("-i", str(clip), "-i", str(cover), "-map", "0:a", "-map", "1:v", "-c:a",
            "libvorbis", "-c:v", "png", "-disposition:v", "attached_pic", str(art))  # fmt: skip
    assert len(malsori.load_audio(art)) / 16000 == pytest.approx(11.0, abs=0.1)
    cut = tmp_path / "cut.mka"
    cut.write_bytes(art.read_bytes()[: art.stat().st_size * 2 // 3])
    with pytest.raises(malsori.AudioError, match="truncated audio"):
        malsori.load_audio(cut)
    with caplog.at_level(logging.WARNING, logger="malsori"):
        assert len(malsori.load_audio(two)) / 16000 == pytest.approx(5.855, abs=0.1)  # track 1
    assert any(
        "has 2 audio tracks; transcribing the first" in r.getMessage() for r in caplog.records
    )


def test_a_damaged_packet_is_skipped_not_the_whole_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One bad frame in an MP3 (a copy error) refused the whole file; FFmpeg's command
    line skips it. It is skipped as silence of its length, with a warning; a file damaged
    throughout is still refused."""
    clip = EVALDATA / "long" / "ljspeech_LJ001-0001_to_0020_concat.wav"
    mp3 = tmp_path / "lecture.mp3"
    _ffmpeg("-i", str(clip), "-t", "60", "-c:a", "libmp3lame", "-b:a", "64k", str(mp3))
    whole = malsori.load_audio(mp3)
    data = bytearray(mp3.read_bytes())
    data[250_000:250_300] = b"\xff" * 300  # one glitch
    glitch = tmp_path / "glitch.mp3"
    glitch.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="malsori"):
        heard = malsori.load_audio(glitch)
    assert abs(len(heard) - len(whole)) < 16000 * 0.1  # the timeline is kept
    assert any("damaged packet(s)" in r.getMessage() for r in caplog.records)
    for at in range(20_000, len(data) - 1000, 5_000):  # damaged all through
        data[at : at + 300] = b"\xff" * 300
    ruined = tmp_path / "ruined.mp3"
    ruined.write_bytes(bytes(data))
    with pytest.raises(malsori.AudioError, match="damaged audio"):
        malsori.load_audio(ruined)


def test_a_videos_late_audio_keeps_its_place_on_the_timeline(
    tiny_en: malsori.LoadedModel, tmp_path: Path
) -> None:
    """Audio that starts 5 s into a video: its subtitles were 5 s early."""
    video = tmp_path / "delayed.mp4"
    _ffmpeg("-f", "lavfi", "-i", "color=c=black:size=64x48:rate=5", "-itsoffset", "5",
            "-i", str(EVALDATA / "en" / "jfk.wav"), "-t", "16", "-map", "0:v", "-map", "1:a",
            "-c:v", "libx264", "-c:a", "aac", str(video))  # fmt: skip
    result = transcribe(video, tiny_en, language="en")
    assert result.segments and result.segments[0].start >= 4.8, result.segments[0]
    assert wer(SENTENCES_JFK, result.text) <= 0.1, result.text


SENTENCES_JFK = (
    "And so my fellow Americans, ask not what your country can do for you, ask what you "
    "can do for your country."
)


def test_a_wav_header_that_declares_too_little_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A WAV whose header declares 1 s but holds 11 s (a recorder that never updated it):
    the declared second was transcribed without a word; now with a warning. Chunks after
    the audio (LIST, id3) are not taken for that."""
    import struct

    data = bytearray((EVALDATA / "en" / "jfk.wav").read_bytes())
    at = data.index(b"data")
    data[at + 4 : at + 8] = struct.pack("<I", 32000)
    lie = tmp_path / "lie.wav"
    lie.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="malsori"):
        assert len(malsori.load_audio(lie)) == 16000
    assert any("declares 32000 bytes of audio" in r.getMessage() for r in caplog.records)
    caplog.clear()
    tagged = tmp_path / "tagged.wav"  # a LIST chunk after the audio: fine
    _ffmpeg("-i", str(EVALDATA / "en" / "jfk.wav"), "-metadata", "title=x", str(tagged))
    body = bytearray(tagged.read_bytes())
    body += b"LIST" + struct.pack("<I", 4) + b"INFO"
    body[4:8] = struct.pack("<I", len(body) - 8)
    tagged.write_bytes(bytes(body))
    with caplog.at_level(logging.WARNING, logger="malsori"):
        malsori.load_audio(tagged)
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def test_an_opposite_phase_hum_or_offset_does_not_silence_the_speech(
    tiny_en: malsori.LoadedModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The inverted-polarity check once latched on 1 s of hum in opposite phase before the
    speech (or opposite DC offsets), and the speech that followed, in phase, became silence
    (a reviewer): it is decided again as the audio goes on, without DC."""
    import wave

    import numpy as np

    speech = malsori.load_audio(EVALDATA / "en" / "jfk.wav")
    t = np.arange(16000) / 16000
    hum = 0.01 * np.sin(2 * np.pi * 50 * t)  # -40 dBFS
    cases = {
        "hum": (np.concatenate([hum, speech]), np.concatenate([-hum, speech])),
        "offset": (speech + 0.002, speech - 0.002),
    }
    for name, (left, right) in cases.items():
        path = tmp_path / f"{name}.wav"
        pcm = (np.clip(np.stack([left, right], axis=1), -1, 1) * 32767).astype("<i2")
        with wave.open(str(path), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(pcm.tobytes())
        with caplog.at_level(logging.WARNING, logger="malsori"):
            result = transcribe(path, tiny_en, language="en")
        assert wer(SENTENCES_JFK, result.text) <= 0.1, (name, result.text)
    assert not [r for r in caplog.records if "cancel" in r.getMessage()]


def _glitch(src: Path, dst: Path, *, at: tuple[float, ...], size: int) -> Path:
    """``src`` with ``size`` random bytes written at each fraction ``at`` of its length."""
    import random

    data = bytearray(src.read_bytes())
    rnd = random.Random(1)
    for where in at:
        start = int(len(data) * where)
        data[start : start + size] = bytes(rnd.randrange(256) for _ in range(size))
    dst.write_bytes(bytes(data))
    return dst


def test_damage_keeps_the_timeline_in_every_container(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged Ogg page or FLAC frame was dropped by the demuxer without a word, so every
    later time came 0.1-1 s early; AAC's decoder refused a damaged frame with EPERM and the
    whole file was "not decodable" (a hostile tester). The audio keeps its length."""
    clip = EVALDATA / "en" / "jfk.wav"
    whole = len(malsori.load_audio(clip))
    for ext, codec, size in [("ogg", "libvorbis", 400), ("flac", "flac", 16), ("m4a", "aac", 16)]:
        good = tmp_path / f"good.{ext}"
        _ffmpeg("-i", str(clip), "-c:a", codec, str(good))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="malsori"):
            bad = _glitch(good, tmp_path / f"bad.{ext}", at=(0.25, 0.5, 0.75), size=size)
            heard = malsori.load_audio(bad)
        assert abs(len(heard) - whole) < 0.05 * 16000, (ext, len(heard) / 16000)
        said = [r.getMessage() for r in caplog.records]
        assert any("missing from the audio stream" in m or "damaged packet" in m for m in said), (
            ext,
            said,
        )


def test_a_low_sample_rate_is_not_missing_audio(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A clean 100 Hz (or 1 Hz) WAV was said to miss audio "in 2 places" and grew by
    silence (a 3000-sample 1 Hz file was 3032 s): the resampler's held-back samples,
    upsampled 160x, looked like a gap (a hostile tester). Its length is its header's."""
    import numpy as np

    for rate, n in ((100, 230), (1, 300)):
        path = tmp_path / f"r{rate}.wav"
        tone = (np.sin(np.arange(n) * 0.7) * 8000).astype("<i2")
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(tone.tobytes())
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="malsori"):
            heard = malsori.load_audio(path)
        assert abs(len(heard) / 16000 - n / rate) < 0.05, (rate, len(heard) / 16000)
        assert not [r for r in caplog.records if "missing" in r.getMessage()], rate


def test_a_rate_or_channel_change_mid_stream_is_decoded(tmp_path: Path) -> None:
    """Two MP3s joined (22 kHz mono, then 44 kHz stereo) were refused: "could not be decoded
    (ValueError)" (PyAV's resampler takes one input shape; a hostile tester). FFmpeg's
    command line decodes both parts; so does malsori now, each at its own length."""
    first = espeak("The first part of the recording is here.", tmp_path / "a.wav")
    second = espeak("And now the second part follows after it.", tmp_path / "b.wav")
    joined = tmp_path / "joined.mp3"
    parts = []
    for src, args in ((first, ("-ar", "22050")), (second, ("-ar", "44100", "-ac", "2"))):
        parts.append(tmp_path / f"{src.stem}.mp3")
        _ffmpeg("-i", str(src), *args, "-b:a", "64k", str(parts[-1]))
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    expected = sum(len(malsori.load_audio(x)) for x in (first, second)) / 16000
    heard = malsori.load_audio(joined)
    assert abs(len(heard) / 16000 - expected) < 0.3, (len(heard) / 16000, expected)
    text = transcribe(joined, "tiny.en", language="en").text.lower()
    assert "first part" in text and "second part" in text, text


def test_a_codec_ffmpeg_cannot_decode_is_one_clear_error(tmp_path: Path) -> None:
    """A WAV whose format tag FFmpeg does not know (0x1234, or an extensible WAV with an
    unknown sub-format) ended in AttributeError: a traceback from the CLI, a 500 from the
    server (a hostile tester)."""
    path = unknown_codec_wav(tmp_path / "unknown.wav")
    with pytest.raises(malsori.AudioError, match="format FFmpeg cannot decode"):
        malsori.load_audio(path)
    with pytest.raises(malsori.AudioError, match="format FFmpeg cannot decode"):
        transcribe(path, "tiny.en", language="en")  # the pipeline's own block reader


def test_a_matroska_video_whose_audio_starts_late(tmp_path: Path) -> None:
    """Matroska gives such an audio track a start time of 0 (its first packet is at 5 s) and
    the whole file's duration: it was refused as "truncated" (a hostile tester)."""
    mp4, mkv = tmp_path / "late.mp4", tmp_path / "late.mkv"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=5", "-itsoffset", "5",
            "-i", str(EVALDATA / "en" / "jfk.wav"), "-t", "20", "-map", "0:v", "-map", "1:a",
            "-c:v", "libx264", "-c:a", "aac", str(mp4))  # fmt: skip
    _ffmpeg("-i", str(mp4), "-c", "copy", str(mkv))
    import numpy as np

    audio = malsori.load_audio(mkv)
    lead = int(np.argmax(np.abs(audio) > 0.01)) / 16000
    assert 4.9 <= lead <= 5.6, lead
