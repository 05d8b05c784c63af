"""A bounded load test on loopback (16 concurrent clients for 30 s) and a schemathesis run
against the app's OpenAPI schema: no 5xx, overload answered with 429 + Retry-After."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from conftest import SENTENCES, wer
from server_util import running_server

CLIENTS = 16
DURATION_S = 30.0


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


def test_sixteen_clients_for_thirty_seconds(speech_dir: Path) -> None:
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
        op = operation.ok()
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
