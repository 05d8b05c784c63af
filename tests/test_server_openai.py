"""OpenAI-exact responses, read through the official ``openai`` client's types: verbose_json
(full language name, segment ids from 0, real seek/tokens/temperature/log-probabilities,
``usage``), ``timestamp_granularities`` as OpenAI handles them, ``whisper-1`` in
``/v1/models``, srt/vtt with the CLI's cues, Korean, streamed segments, and metrics."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess
from typing import Literal

import httpx
import jiwer
import openai
import pysubs2
import pytest
from openai.types.audio import TranscriptionVerbose

from conftest import EVALDATA, wer
from server_util import Server, running_server

JFK = EVALDATA / "en" / "jfk.wav"
JFK_TEXT = (
    "And so, my fellow Americans, ask not what your country can do for you, ask what you "
    "can do for your country."
)
LONG_EN = EVALDATA / "long" / "ljspeech_LJ001-0001_to_0020_concat.wav"  # 141 s
KO = EVALDATA / "ko" / "picovoice_leopard_test_ko.wav"
KO_TEXT = "그는 이리저리 피하면서 길 한 옆으로 걸어갔다."


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server("--model", "tiny.en", "--idle-unload", "0") as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def _verbose(
    client: openai.OpenAI,
    path: Path,
    granularities: list[Literal["word", "segment"]] | None = None,
) -> TranscriptionVerbose:
    with open(path, "rb") as fh:
        result = client.audio.transcriptions.create(
            model="whisper-1",
            file=fh,
            response_format="verbose_json",
            timestamp_granularities=granularities if granularities is not None else openai.omit,
        )
    assert isinstance(result, TranscriptionVerbose)
    return result


def test_verbose_json_fields_are_openais(client: openai.OpenAI) -> None:
    result = _verbose(client, JFK)
    assert result.language == "english"
    assert result.duration == pytest.approx(11.0, abs=0.1)
    assert wer(JFK_TEXT, result.text) <= 0.1
    assert result.usage is not None and result.usage.type == "duration"
    assert result.usage.seconds == math.ceil(result.duration)
    assert result.segments and result.words is None  # words only when asked for
    assert [s.id for s in result.segments] == list(range(len(result.segments)))
    for seg in result.segments:
        assert seg.seek >= 0 and seg.start < seg.end <= 11.5
        assert seg.tokens and all(isinstance(t, int) and 0 <= t < 51865 for t in seg.tokens)
        assert seg.temperature in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
        assert -5 < seg.avg_logprob < 0
        assert 0.5 < seg.compression_ratio < 3
        assert 0 <= seg.no_speech_prob <= 1


def test_timestamp_granularities_as_openai(client: openai.OpenAI) -> None:
    words_only = _verbose(client, JFK, ["word"])
    assert words_only.segments is None and words_only.words
    assert wer(JFK_TEXT, " ".join(w.word for w in words_only.words)) <= 0.1
    starts = [w.start for w in words_only.words]
    assert starts == sorted(starts) and all(w.start <= w.end for w in words_only.words)
    both = _verbose(client, JFK, ["word", "segment"])
    assert both.segments and both.words
    segments_only = _verbose(client, JFK, ["segment"])
    assert segments_only.segments and segments_only.words is None
    # OpenAI refuses word timestamps for a format that cannot carry them.
    with open(JFK, "rb") as fh, pytest.raises(openai.BadRequestError) as err:
        client.audio.transcriptions.create(
            model="whisper-1", file=fh, response_format="json", timestamp_granularities=["word"]
        )
    assert err.value.body["param"] == "timestamp_granularities"  # type: ignore[index]


def test_granularities_sent_without_brackets_are_honoured(server: Server) -> None:
    """curl users write ``timestamp_granularities=word`` (no ``[]``): it was ignored silently."""
    resp = httpx.post(
        server.url + "/v1/audio/transcriptions",
        files={"file": ("jfk.wav", JFK.read_bytes())},
        data={
            "model": "whisper-1",
            "response_format": "verbose_json",
            "timestamp_granularities": "word",
        },
        timeout=120,
    )
    body = resp.json()
    assert resp.status_code == 200 and body["words"] and "segments" not in body, body


def test_json_carries_usage(server: Server) -> None:
    resp = httpx.post(
        server.url + "/v1/audio/transcriptions",
        files={"file": ("jfk.wav", JFK.read_bytes())},
        data={"model": "whisper-1"},
        timeout=120,
    )
    body = resp.json()
    assert set(body) == {"text", "usage"} and body["usage"] == {"type": "duration", "seconds": 11}
    # rounded up: a 1-sample file is 1 s (it was 0: a hostile tester), half a second too
    import io
    import wave

    for samples in (1, 8000):
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(b"\x10\x00" * samples)
        resp = httpx.post(
            server.url + "/v1/audio/transcriptions",
            files={"file": ("short.wav", buf.getvalue())},
            data={"model": "whisper-1"},
            timeout=120,
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["usage"] == {"type": "duration", "seconds": 1}, (samples, resp.text)


def test_models_list_whisper_1(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "whisper-1" and "tiny.en" in ids
    assert client.models.retrieve("whisper-1").id == "whisper-1"


def test_srt_and_vtt_are_the_clis_cues(
    client: openai.OpenAI, run_cli: Callable[..., CompletedProcess[str]]
) -> None:
    for fmt in ("srt", "vtt"):
        with open(LONG_EN, "rb") as fh:  # no timestamp_granularities asked for
            served = str(
                client.audio.transcriptions.create(model="whisper-1", file=fh, response_format=fmt)
            )
        cli = run_cli("transcribe", "-q", "--model", "tiny.en", "-f", fmt, str(LONG_EN))
        assert cli.returncode == 0, cli.stderr
        assert served.strip() == cli.stdout.strip()
        subs = pysubs2.SSAFile.from_string(served, format_=fmt)
        assert len(subs) >= 20, len(subs)  # 141 s of speech, not a few 28 s windows
        assert max(e.end - e.start for e in subs) <= 10_000
        assert max(len(e.plaintext) for e in subs) <= 120


def test_streamed_deltas_carry_their_segment(client: openai.OpenAI) -> None:
    with open(LONG_EN, "rb") as fh:
        events = list(client.audio.transcriptions.create(model="whisper-1", file=fh, stream=True))
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    done = [e for e in events if e.type == "transcript.text.done"]
    assert len(deltas) >= 5 and len(done) == 1
    segments = [getattr(e, "segment") for e in deltas]  # malsori's extra field  # noqa: B009
    assert [s["id"] for s in segments] == list(range(len(segments)))
    assert all(s["start"] < s["end"] <= 142 for s in segments)
    assert [s["text"] for s in segments] == [d.delta for d in deltas]
    assert "".join(d.delta for d in deltas).strip() == done[0].text
    # the final cues (malsori's extra field): cut over the whole transcript by the CLI's
    # rules, so the page's srt/vtt downloads are the CLI's
    final = getattr(done[0], "cues")  # noqa: B009
    assert len(final) >= 20
    assert " ".join(c["text"] for c in final).split() == done[0].text.split()
    assert all(0 < c["end"] - c["start"] <= 7.0 + 1e-6 for c in final)
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(final))
    # ... timed as the srt response is (word timings: streamed cues ended at the window's
    # end, 0.3 s late on a short clip, a hostile client's find)
    with open(LONG_EN, "rb") as fh:
        srt = str(
            client.audio.transcriptions.create(model="whisper-1", file=fh, response_format="srt")
        )
    subs = pysubs2.SSAFile.from_string(srt, format_="srt")
    assert [(e.start, e.end) for e in subs] == [
        (round(c["start"] * 1000), round(c["end"] * 1000)) for c in final
    ]


def test_korean_with_a_multilingual_model() -> None:
    with running_server("--model", "base", "--idle-unload", "0") as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
        result = _verbose(client, KO)  # language detected
        assert result.language == "korean"
        assert jiwer.cer(KO_TEXT, result.text) <= 0.25, result.text
        assert result.segments and result.segments[0].id == 0
        # malsori's extra per-segment field: the language each window was decoded in
        dumped = json.loads(result.model_dump_json())["segments"]
        assert {seg["language"] for seg in dumped} == {"korean"}
        with open(KO, "rb") as fh:
            events = list(
                client.audio.transcriptions.create(
                    model="whisper-1", file=fh, language="ko", stream=True
                )
            )
        done = [e for e in events if e.type == "transcript.text.done"]
        assert jiwer.cer(KO_TEXT, done[0].text) <= 0.25, done[0].text
        with open(KO, "rb") as fh:
            translated = client.audio.translations.create(
                model="whisper-1", file=fh, response_format="verbose_json"
            )
        assert json.loads(translated.model_dump_json())["language"] == "english"


def test_429s_are_not_latency_and_memory_is_exported() -> None:
    with running_server("--model", "tiny.en", "--max-queue", "0") as srv:
        audio = LONG_EN.read_bytes()

        async def one(http: httpx.AsyncClient) -> int:
            resp = await http.post(
                srv.url + "/v1/audio/transcriptions",
                files={"file": ("long.wav", audio)},
                data={"model": "whisper-1"},
            )
            return resp.status_code

        async def burst() -> list[int]:
            async with httpx.AsyncClient(timeout=300) as http:
                return list(await asyncio.gather(*(one(http) for _ in range(4))))

        statuses = asyncio.run(burst())
        assert sorted(set(statuses)) == [200, 429], statuses
        m = srv.metrics()
        label = '{endpoint="/v1/audio/transcriptions"}'
        assert m["malsori_request_latency_seconds_count" + label] == statuses.count(200)
        assert m["process_resident_memory_bytes"] > 50 * 2**20


def test_repairs_to_the_audio_are_told_to_the_client(
    client: openai.OpenAI, server: Server, tmp_path: Path
) -> None:
    """Stereo with one channel wired in inverted polarity is transcribed through the
    channels' difference: the server said so only in its own log, and the client got a
    transcript with no hint of it. The JSON formats carry ``warnings`` (naming the client's
    file, never the server's temporary path), every format an ``X-Malsori-Warnings`` count,
    the stream's done event the same list; a clean upload has none of them."""
    import subprocess

    inverted = tmp_path / "전화 녹음.flac"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(JFK), "-filter_complex",
         "[0:a]pan=stereo|c0=c0|c1=-1*c0", "-ac", "2", "-c:a", "flac", str(inverted)],
        check=True,
    )  # fmt: skip
    with open(inverted, "rb") as fh:
        verbose = client.audio.transcriptions.create(
            model="whisper-1", file=fh, response_format="verbose_json"
        )
    assert wer(JFK_TEXT, verbose.text) <= 0.1, verbose.text
    warned = (verbose.model_extra or {}).get("warnings")
    assert warned and "cancel each other" in warned[0] and "전화 녹음.flac" in warned[0], warned
    assert str(server.tmpdir) not in json.dumps(warned) and "/tmp" not in json.dumps(warned)
    for fmt in ("json", "srt"):
        with open(inverted, "rb") as fh:
            response = httpx.post(
                server.url + "/v1/audio/transcriptions",
                files={"file": (inverted.name, fh)},
                data={"model": "whisper-1", "response_format": fmt},
                timeout=120,
            )
        assert response.status_code == 200 and response.headers["x-malsori-warnings"] == "1"
        if fmt == "json":
            assert response.json()["warnings"] == warned
    with open(inverted, "rb") as fh:
        events = list(client.audio.transcriptions.create(model="whisper-1", file=fh, stream=True))
    done = [e for e in events if e.type == "transcript.text.done"]
    assert getattr(done[0], "warnings") == warned  # noqa: B009
    with open(JFK, "rb") as fh:  # a clean upload: no warnings, no header
        response = httpx.post(
            server.url + "/v1/audio/transcriptions",
            files={"file": ("jfk.wav", fh)},
            data={"model": "whisper-1", "response_format": "verbose_json"},
            timeout=120,
        )
    assert "warnings" not in response.json() and "x-malsori-warnings" not in response.headers
