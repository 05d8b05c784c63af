"""The HTTP server, driven by the official ``openai`` client against a real uvicorn process
on localhost (tiny.en; base where translation needs a multilingual model), plus bad input,
auth, metrics and a schemathesis run against the OpenAPI schema."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pysubs2
import pytest

from conftest import EVALDATA, SENTENCES, wer
from server_util import Server, running_server

JFK = EVALDATA / "en" / "jfk.wav"
JFK_TEXT = (
    "And so, my fellow Americans, ask not what your country can do for you, ask what you "
    "can do for your country."
)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server("--model", "tiny.en", "--max-queue", "4") as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_json_text_srt_vtt(client: openai.OpenAI) -> None:
    with open(JFK, "rb") as fh:
        result = client.audio.transcriptions.create(model="whisper-1", file=fh)
    assert wer(JFK_TEXT, result.text) <= 0.1, result.text
    with open(JFK, "rb") as fh:
        text = client.audio.transcriptions.create(model="tiny.en", file=fh, response_format="text")
    assert wer(JFK_TEXT, str(text)) <= 0.1
    with open(JFK, "rb") as fh:
        srt = client.audio.transcriptions.create(model="whisper-1", file=fh, response_format="srt")
    subs = pysubs2.SSAFile.from_string(str(srt), format_="srt")
    assert len(subs) >= 1 and wer(JFK_TEXT, " ".join(e.plaintext for e in subs)) <= 0.1
    with open(JFK, "rb") as fh:
        vtt = client.audio.transcriptions.create(model="whisper-1", file=fh, response_format="vtt")
    assert str(vtt).startswith("WEBVTT")


def test_verbose_json_with_words(client: openai.OpenAI) -> None:
    with open(JFK, "rb") as fh:
        result = client.audio.transcriptions.create(
            model="whisper-1",
            file=fh,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
            language="en",
        )
    assert result.language == "english" and result.duration == pytest.approx(11.0, abs=0.1)
    assert result.segments and result.words
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and all(w.end <= 11.5 for w in result.words)
    assert wer(JFK_TEXT, " ".join(w.word for w in result.words)) <= 0.1


def test_verbose_json_segments_carry_the_quality_flags(server: Server) -> None:
    """The CLI warns that Korean speech on an English-only model came out as invented
    English ("Thank you very much."); a server client saw no sign of it (a hostile tester).
    verbose_json segments carry the flags, as the CLI's json does."""
    with open(EVALDATA / "ko" / "emotiontts_ada00005.wav", "rb") as fh:
        resp = httpx.post(
            server.url + "/v1/audio/transcriptions",
            files={"file": ("ko.wav", fh.read())},
            data={"model": "tiny.en", "response_format": "verbose_json"},
            timeout=120,
        )
    assert resp.status_code == 200, resp.text
    flags = {f for seg in resp.json()["segments"] for f in seg.get("flags", [])}
    assert flags & {"little_text", "low_confidence", "sampled"}, resp.json()
    with open(JFK, "rb") as fh:  # clear speech: no flags, and no empty list either
        resp = httpx.post(
            server.url + "/v1/audio/transcriptions",
            files={"file": ("jfk.wav", fh.read())},
            data={"model": "tiny.en", "response_format": "verbose_json"},
            timeout=120,
        )
    assert all("flags" not in seg for seg in resp.json()["segments"]), resp.json()


def test_streaming_one_event_per_segment(client: openai.OpenAI) -> None:
    with open(JFK, "rb") as fh:
        stream = client.audio.transcriptions.create(model="whisper-1", file=fh, stream=True)
        events = list(stream)
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    done = [e for e in events if e.type == "transcript.text.done"]
    assert deltas and len(done) == 1
    assert "".join(d.delta for d in deltas).strip() == done[0].text
    assert wer(JFK_TEXT, done[0].text) <= 0.1


def test_translation_with_multilingual_model(speech_dir: Path) -> None:
    # tiny.en cannot translate (400); the bundled multilingual base can.
    with running_server("--model", "base", "--idle-unload", "0") as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
        with open(speech_dir / "report.wav", "rb") as fh:
            result = client.audio.translations.create(model="whisper-1", file=fh)
        assert wer(SENTENCES["report"], result.text) <= 0.25, result.text
        with open(speech_dir / "report.wav", "rb") as fh, pytest.raises(openai.BadRequestError):
            client.audio.translations.create(model="tiny.en", file=fh)
        # stream=true (a malsori extension the page uses): the same events as transcriptions.
        ko = next(p for p in sorted((EVALDATA / "ko").glob("*.wav")))
        with open(ko, "rb") as fh:
            resp = httpx.post(
                srv.url + "/v1/audio/translations",
                files={"file": (ko.name, fh, "audio/wav")},
                data={"model": "whisper-1", "stream": "true"},
                timeout=300,
            )
        events = [json.loads(x[6:]) for x in resp.text.splitlines() if x.startswith("data: ")]
        assert resp.headers["content-type"].startswith("text/event-stream")
        assert events[-1]["type"] == "transcript.text.done", events[-1]
        deltas = [e for e in events if e["type"] == "transcript.text.delta"]
        assert deltas and all("segment" in e for e in deltas)
        assert not any("\uac00" <= ch <= "\ud7a3" for ch in events[-1]["text"])  # English
        # the text's language: it said "ko" (the spoken one) while verbose_json said english
        assert events[-1]["language"] == "en", events[-1]
        # Cantonese is a language code, but not one base's vocabulary has: 400, not garbage
        with open(ko, "rb") as fh, pytest.raises(openai.BadRequestError, match="'yue'"):
            client.audio.transcriptions.create(model="whisper-1", file=fh, language="yue")


def test_models_list_and_get(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "tiny.en" in ids and "base" in ids
    assert client.models.retrieve("tiny.en").id == "tiny.en"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("large-v9")


def test_health_ready_metrics(server: Server, window_wav: Path) -> None:
    resp = _post(server, files={"file": ("w.wav", window_wav.read_bytes())})
    assert resp.status_code == 200, resp.text  # so that the latency has a sample
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/ready").json()
    assert ready["status"] == "ready" and "tiny.en" in ready["models"]
    long_name = "m" * 10_000  # not echoed back whole
    resp = _post(
        server, files={"file": ("w.wav", window_wav.read_bytes())}, data={"model": long_name}
    )
    assert resp.status_code == 404 and len(resp.json()["error"]["message"]) <= 500, resp.text
    # HEAD wherever GET works (monitors send HEAD: /v1/models, /metrics and the docs got 405)
    gets = ("/health", "/ready", "/", "/v1/models", "/v1/models/tiny.en", "/metrics",
            "/openapi.json", "/docs")  # fmt: skip
    for probe in gets:
        head = httpx.head(server.url + probe)
        assert head.status_code == 200 and head.content == b"", probe
        assert (
            head.headers["content-type"] == httpx.get(server.url + probe).headers["content-type"]
        ), probe
    # another method on the page: 405 names both it has (it said "allow: HEAD")
    trace = httpx.request("TRACE", server.url + "/")
    assert trace.status_code == 405, trace.text
    assert {m.strip() for m in trace.headers["allow"].split(",")} == {"GET", "HEAD"}
    metrics = httpx.get(server.url + "/metrics").text
    for name in (
        "malsori_requests_total",
        "malsori_errors_total",
        "malsori_audio_seconds_total",
        "malsori_queue_depth",
        "malsori_request_latency_seconds_bucket",
    ):
        assert name in metrics


def test_api_key(window_wav: Path) -> None:
    with running_server("--model", "tiny.en", env={"MALSORI_API_KEY": "s3cret"}) as srv:
        bad = openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0)
        with open(window_wav, "rb") as fh, pytest.raises(openai.AuthenticationError) as err:
            bad.audio.transcriptions.create(model="whisper-1", file=fh)
        assert err.value.status_code == 401
        body = httpx.get(srv.url + "/v1/models").json()
        assert body["error"]["type"] == "authentication_error"
        good = openai.OpenAI(base_url=srv.url + "/v1", api_key="s3cret", max_retries=0)
        with open(window_wav, "rb") as fh:
            assert (
                wer(
                    SENTENCES["window"],
                    good.audio.transcriptions.create(model="whisper-1", file=fh).text,
                )
                <= 0.25
            )
        assert httpx.get(srv.url + "/health").status_code == 200  # liveness stays open


def _post(server: Server, files: Any = None, data: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/audio/transcriptions",
        files=files,
        data=data or {"model": "whisper-1"},
        timeout=120,
    )


def _assert_error(resp: httpx.Response, status: int, fragment: str) -> None:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert fragment in err["message"], err


def test_bad_inputs_get_4xx_and_server_keeps_serving(
    server: Server, window_wav: Path, tmp_path: Path
) -> None:
    good = window_wav.read_bytes()
    cases = [
        ({"file": ("empty.wav", b"", "audio/wav")}, None, 400, "empty"),
        (
            {"file": ("notes.wav", b"hello, this is text\n" * 20, "audio/wav")},
            None,
            400,
            "not a decodable audio file",
        ),
        ({"file": ("cut.wav", good[: len(good) // 3], "audio/wav")}, None, 400, "truncated"),
        ({"file": ("big.wav", b"\0" * (26 * 1024 * 1024), "audio/wav")}, None, 413, "too large"),
        ({"upload": ("x.wav", good, "audio/wav")}, None, 400, "missing required parameter: file"),
        ({"file": ("x.wav", good, "audio/wav")}, {"model": "large-v9"}, 404, "large-v9"),
        (
            {"file": ("x.wav", good, "audio/wav")},
            {"model": "whisper-1", "response_format": "docx"},
            400,
            "response_format",
        ),
        (
            {"file": ("x.wav", good, "audio/wav")},
            {"model": "whisper-1", "language": "xx"},
            400,
            "unknown language code",
        ),
        ({"file": ("x.wav", good, "audio/wav")}, {"model": "../../etc/passwd"}, 404, "not found"),
        (
            {"file": ("x.wav", good, "audio/wav")},
            {"model": "whisper-1", "language": "ko"},
            400,
            "English-only",
        ),
        (
            {"file": ("x.wav", good, "audio/wav")},
            {"model": "whisper-1", "stream": "true", "response_format": "srt"},
            400,
            "cannot be streamed",
        ),
    ]
    for files, data, status, fragment in cases:
        _assert_error(_post(server, files, data), status, fragment)
    # file sent as a plain form field (url-encoded): said in words, no Python type names
    form = httpx.post(
        server.url + "/v1/audio/transcriptions", data={"file": "abc", "model": "whisper-1"}
    )
    _assert_error(form, 400, "expected an uploaded file (multipart/form-data")
    assert "class" not in form.text
    # a part with only the RFC 5987 filename*= (no filename=) is a text field to the
    # multipart parser: the message says so (it said only "expected an uploaded file")
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; '
        b"filename*=UTF-8''%ED%9A%8C%EC%9D%98.wav\r\nContent-Type: audio/wav\r\n\r\n"
        + good
        + b'\r\n--b\r\nContent-Disposition: form-data; name="model"\r\n\r\n'
        b"whisper-1\r\n--b--\r\n"
    )
    for audio in (good, good[:2000]):  # over and under a text field's 64 KiB
        starred = httpx.post(
            server.url + "/v1/audio/transcriptions",
            content=body.replace(good, audio),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        _assert_error(starred, 400, "a part with only filename*= is read as text")
    # Path-like and non-UTF-8 file names are only labels: they transcribe fine.
    for name in (
        "../../etc/passwd",
        "caf\udce9.wav".encode("utf-8", "surrogateescape").decode("latin-1"),
    ):
        resp = _post(server, {"file": (name, good, "audio/wav")})
        assert resp.status_code == 200, resp.text
        assert wer(SENTENCES["window"], resp.json()["text"]) <= 0.25
    raw = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="\xff\xfe.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n" + good + b"\r\n--b\r\n"
        b'Content-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--b--\r\n'
    )
    resp = httpx.post(
        server.url + "/v1/audio/transcriptions",
        content=raw,
        timeout=60,
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert resp.status_code == 200, resp.text
    # A field sent twice (two files, two models): a 400, not "the last one wins"
    for twice in (
        [("file", ("a.wav", good, "audio/wav")), ("file", ("b.wav", good, "audio/wav"))],
        [("file", ("a.wav", good, "audio/wav")), ("model", "whisper-1"), ("model", "base")],
    ):
        resp = httpx.post(server.url + "/v1/audio/transcriptions", files=twice, timeout=60)
        _assert_error(resp, 400, "more than once")
    granular = httpx.post(
        server.url + "/v1/audio/transcriptions",
        files=[("file", ("a.wav", good, "audio/wav"))],
        data={
            "response_format": "verbose_json",
            "timestamp_granularities[]": ["word", "segment"],  # a list: may repeat
        },
        timeout=60,
    )
    assert granular.status_code == 200 and granular.json()["words"], granular.text
    assert server.process.poll() is None
    assert httpx.get(server.url + "/health").status_code == 200
    assert not list(server.tmpdir.glob("malsori-upload-*")), "uploads must be deleted"
    assert json.loads(httpx.get(server.url + "/ready").text)["status"] == "ready"


def test_idle_model_is_unloaded_and_reloaded_on_demand(window_wav: Path) -> None:
    with running_server("--model", "tiny.en", "--idle-unload", "2") as srv:
        assert httpx.get(srv.url + "/ready").json()["models"] == ["tiny.en"]
        deadline = time.monotonic() + 30
        while httpx.get(srv.url + "/ready").json()["models"] and time.monotonic() < deadline:
            time.sleep(0.5)
        ready = httpx.get(srv.url + "/ready")
        assert ready.status_code == 200 and ready.json() == {"status": "ready", "models": []}
        resp = _post(srv, {"file": ("w.wav", window_wav.read_bytes(), "audio/wav")})
        assert resp.status_code == 200 and wer(SENTENCES["window"], resp.json()["text"]) <= 0.25
        assert httpx.get(srv.url + "/ready").json()["models"] == ["tiny.en"]


def test_audio_duration_limit(window_wav: Path) -> None:
    with running_server("--model", "tiny.en", env={"MALSORI_MAX_AUDIO_SECONDS": "1"}) as srv:
        resp = _post(srv, {"file": ("w.wav", window_wav.read_bytes(), "audio/wav")})
        _assert_error(resp, 400, "accepts at most 1 s")


def test_a_vbr_mp3_that_starts_quiet_is_transcribed(server: Server, tmp_path: Path) -> None:
    """No Xing header, 2 s of silence first: FFmpeg guesses 93 s from the bitrate, and the
    server answered 400 "truncated audio" (a hostile tester)."""
    import subprocess

    quiet = tmp_path / "quiet_first.wav"
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", str(tmp_path / "s.wav"), "trim", "0", "2"],
        check=True,
    )
    subprocess.run(
        ["sox", str(tmp_path / "s.wav"), str(EVALDATA / "en" / "jfk.wav"), str(quiet)], check=True
    )
    vbr = tmp_path / "vbr.mp3"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(quiet), "-c:a", "libmp3lame", "-q:a", "0",
         "-write_xing", "0", str(vbr)],
        check=True,
    )  # fmt: skip
    resp = _post(server, files={"file": ("vbr.mp3", vbr.read_bytes())})
    assert resp.status_code == 200, resp.text
    assert "country" in resp.json()["text"]
