"""A bounded load test on loopback (16 concurrent clients for 30 s), a soak of 1,000 short
requests with the server's memory sampled, and a schemathesis run against the app's OpenAPI
schema: no 5xx, overload answered with 429 + Retry-After, no growth."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from conftest import EVALDATA, SENTENCES, espeak, wer
from server_util import running_server

CLIENTS = 16
DURATION_S = 8.0


async def _client(
    url: str, audio: bytes, stop_at: float, results: list[tuple[int, str, str]]
) -> None:
    async with httpx.AsyncClient(timeout=120) as http:
        while time.monotonic() < stop_at:
            resp = await http.post(
                url + "/v1/audio/transcriptions",
                files={"file": ("clip.wav", audio, "audio/wav")},
                data={"model": "whisper-1"},
            )
            body = resp.json()
            results.append(
                (resp.status_code, body.get("text", ""), resp.headers.get("retry-after", ""))
            )
            if resp.status_code == 429:
                await asyncio.sleep(0.2)


def test_sixteen_clients_for_eight_seconds(speech_dir: Path) -> None:
    audio = (speech_dir / "window.wav").read_bytes()
    with running_server("--model", "tiny.en", "--max-queue", "4", "--max-concurrent", "1") as srv:
        proc = psutil.Process(srv.process.pid)
        httpx.post(
            srv.url + "/v1/audio/transcriptions",
            timeout=60,
            files={"file": ("w.wav", audio, "audio/wav")},
            data={"model": "whisper-1"},
        )
        rss_before = proc.memory_info().rss
        results: list[tuple[int, str, str]] = []

        async def main() -> None:
            stop_at = time.monotonic() + DURATION_S
            await asyncio.gather(
                *(_client(srv.url, audio, stop_at, results) for _ in range(CLIENTS))
            )

        asyncio.run(main())
        rss_after = proc.memory_info().rss
        statuses = [s for s, _, _ in results]
        assert len(results) >= 100, len(results)
        assert not [s for s in statuses if s >= 500], statuses
        ok = [text for s, text, _ in results if s == 200]
        busy = [r for r in results if r[0] == 429]
        assert ok and busy, (len(ok), len(busy))
        assert set(statuses) <= {200, 429}
        assert all(retry == "5" for _, _, retry in busy)
        assert all(wer(SENTENCES["window"], t) <= 0.25 for t in ok)
        assert rss_after - rss_before < 200 * 2**20, (rss_before, rss_after)
        metrics = httpx.get(srv.url + "/metrics").text
        assert 'malsori_errors_total{endpoint="/v1/audio/transcriptions",status="429"}' in metrics


# The suite's soak: 160 requests (about 35 s on 2 cores). The 1,000-request soak the issue
# asks for runs in benchmarks/server_load.py (results in docs/benchmarks.md), which keeps
# the suite well under 15 minutes.
LONG_EN = EVALDATA / "long" / "ljspeech_LJ001-0001_to_0020_concat.wav"  # 141 s
SOAK_REQUESTS = 160
SOAK_WARMUP = 64  # allocator pools and caches settle first
SOAK_SAMPLE_EVERY = 6


def test_soak_of_short_requests_memory_stays_flat(tmp_path: Path) -> None:
    audio = espeak("Good morning.", tmp_path / "short.wav").read_bytes()
    with running_server("--model", "tiny.en", "--max-queue", "8", "--idle-unload", "0") as srv:
        proc = psutil.Process(srv.process.pid)
        # First one long file: its windows are decoded two calls at a time, so both of the
        # model's CTranslate2 workers have their buffers (~30 MB each) before the samples;
        # otherwise the second worker's first short request steps RSS up mid-soak.
        with open(LONG_EN, "rb") as fh:
            warm = httpx.post(
                srv.url + "/v1/audio/transcriptions",
                files={"file": ("long.wav", fh)},
                data={"model": "whisper-1"},
                timeout=300,
            )
        assert warm.status_code == 200, warm.text
        statuses: dict[int, int] = {}
        texts: list[str] = []
        rss: list[int] = []
        sent = 0

        async def client() -> None:
            nonlocal sent
            async with httpx.AsyncClient(timeout=120) as http:
                while sent < SOAK_REQUESTS:
                    sent += 1
                    resp = await http.post(
                        srv.url + "/v1/audio/transcriptions",
                        files={"file": ("short.wav", audio, "audio/wav")},
                        data={"model": "whisper-1"},
                    )
                    statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                    texts.append(resp.json().get("text", ""))
                    done = sum(statuses.values())
                    if done >= SOAK_WARMUP and done % SOAK_SAMPLE_EVERY == 0:
                        rss.append(proc.memory_info().rss)

        async def main() -> None:
            await asyncio.gather(client(), client())  # the next request waits in the queue

        asyncio.run(main())
    assert statuses == {200: SOAK_REQUESTS}, statuses
    assert all(wer("Good morning.", t) <= 0.5 for t in texts)
    assert len(rss) >= 15
    # Flat = no growth: the floor of the last third of the samples against the floor of the
    # first third, and no sample far above the rest. RSS moves between two levels ~25 MB
    # apart, as a request holds its buffers when the sample is taken or not (262 and 287 MB
    # in one CI run, whose late third happened to sit mostly at the upper level: its median
    # was +8%); a leak raises the floor, a buffer in use does not.
    third = len(rss) // 3
    early, late = min(rss[:third]), min(rss[-third:])
    assert late <= early * 1.05, [r // 2**20 for r in rss]
    assert max(rss) <= min(rss) * 1.25, [r // 2**20 for r in rss]


def test_schemathesis_finds_no_server_errors() -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    from malsori.server import ServerSettings, create_app

    app = create_app(
        ServerSettings(
            model="tiny.en",
            preload=False,
            model_idle_unload_s=0,
            allowed_hosts=["testserver"],  # the Host the in-process client sends
        )
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []

    def make_check(op: object) -> Callable[[object], None]:
        def check(case: object) -> None:
            response = case.call()  # type: ignore[attr-defined]
            try:
                case.validate_response(response, checks=(not_a_server_error,))  # type: ignore[attr-defined]
            except Exception as exc:
                failures.append(f"{op}: {exc}")

        return check

    runs = 0
    for operation in schema.get_all_operations():
        op = operation.ok()  # type: ignore[union-attr]
        given(op.as_strategy())(
            settings(
                max_examples=15,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )(make_check(op))
        )()
        runs += 1
    assert runs == 7  # every endpoint in the schema was exercised
    assert not failures, failures[:3]


def test_a_long_upload_leaves_no_samples_behind(tmp_path: Path) -> None:
    """Each request's decoded audio is freed with the request. A 0.5 MB Opus file of 20 min
    decodes to 73 MB of samples; the finished decode task (its result: those samples) was
    kept by the job, which only Python's cycle collector freed, now and then: 11 requests of
    a 2-hour file took a server to 3.9 GB (a hostile client's find; before the fix, RSS after
    each of 4 requests here: 324, 461, 434, 591 MB)."""
    import subprocess

    upload = tmp_path / "silence.ogg"
    subprocess.run(
        [
            *("ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono"),
            *("-t", "1200", "-c:a", "libopus", "-b:a", "6k", str(upload)),
        ],
        check=True,
    )
    samples_mb = 1200 * 16000 * 4 / 2**20
    with running_server("--model", "tiny.en", "--idle-unload", "0") as srv:
        proc = psutil.Process(srv.process.pid)
        after: list[float] = []
        for _ in range(3):
            with open(upload, "rb") as fh:
                resp = httpx.post(
                    srv.url + "/v1/audio/transcriptions",
                    files={"file": ("silence.ogg", fh)},
                    timeout=300,
                )
            assert resp.status_code == 200, resp.text
            assert resp.json()["text"].strip() == ""
            # measured once the request is over on the server too (the answer goes out
            # before its job is released; on a busy machine the gap is seen: 1 MB over)
            assert srv.wait_idle()
            after.append(proc.memory_info().rss / 2**20)
    # The memory a long request's threads freed is given back when it ends: under load
    # (CI, or two busy processes beside it) RSS still rose by about one request's samples
    # (260 -> 331 MB here; 275 -> 354 MB in CI) until it was; now 197 -> 205 MB.
    assert max(after[1:]) - after[0] < samples_mb / 2, after
