"""Server throughput and latency at 1, 4 and 16 concurrent clients, short clip, loopback;
then abandoned requests and a soak.

    .venv/bin/python benchmarks/server_load.py [--model base] [--seconds 30] [--soak 1000]

Starts ``malsori serve`` (max 1 transcription at a time, queue large enough that no
request is refused), warms it up, then for each concurrency level runs closed-loop clients
for --seconds and reports requests/s, p50/p95 latency, status counts and the server's RSS.

Abandoned requests (issue 13): 4 clients send the 141 s clip and hang up after 3 s; then one
client sends --clip. Reported: that request's latency, the audio seconds the server still
transcribed for the clients that left, and how long until no transcription runs.

Soak: --soak short requests (2 clients, 1 s of speech), the server's RSS sampled every 50
requests after 100 of warm-up: first, min, max, last.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EVALDATA, OUT, machine, markdown_table

LONG = EVALDATA / "long" / "ljspeech_LJ001-0001_to_0020_concat.wav"  # 141 s


def metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def abandoned(url: str, audio: bytes) -> dict[str, float]:
    long = LONG.read_bytes()
    before = metric(url, "malsori_audio_seconds_total")

    async def drop() -> None:
        try:
            async with httpx.AsyncClient(timeout=3) as http:
                await http.post(
                    url + "/v1/audio/transcriptions",
                    files={"file": ("long.wav", long, "audio/wav")},
                    data={"model": "whisper-1"},
                )
        except httpx.TimeoutException:
            pass

    t0 = time.perf_counter()
    await asyncio.gather(*(drop() for _ in range(4)))
    t_next = time.perf_counter()
    async with httpx.AsyncClient(timeout=600) as http:
        resp = await http.post(
            url + "/v1/audio/transcriptions",
            files={"file": ("clip.wav", audio, "audio/wav")},
            data={"model": "whisper-1"},
        )
    latency = time.perf_counter() - t_next
    assert resp.status_code == 200, resp.text
    clip_s = (len(audio) - 44) / 32000  # the 16 kHz mono WAV clip's duration
    while metric(url, "malsori_jobs_running") > 0 and time.perf_counter() - t0 < 600:
        await asyncio.sleep(0.2)
    return {
        "next_latency": latency,
        "abandoned_audio_s": metric(url, "malsori_audio_seconds_total") - before - clip_s,
        "idle_after_drop_s": time.perf_counter() - t_next,
        "cancelled": metric(url, 'malsori_jobs_cancelled_total{reason="client_gone"}'),
    }


async def soak(url: str, audio: bytes, n: int, pid: int) -> dict[str, float]:
    proc = psutil.Process(pid)
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    rss: list[float] = []
    sent = 0

    async def client() -> None:
        nonlocal sent
        async with httpx.AsyncClient(timeout=120) as http:
            while sent < n:
                sent += 1
                t0 = time.perf_counter()
                resp = await http.post(
                    url + "/v1/audio/transcriptions",
                    files={"file": ("short.wav", audio, "audio/wav")},
                    data={"model": "whisper-1"},
                )
                latencies.append(time.perf_counter() - t0)
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
                done = sum(statuses.values())
                if done >= 100 and done % 50 == 0:
                    rss.append(proc.memory_info().rss / 2**20)

    t0 = time.perf_counter()
    await asyncio.gather(client(), client())
    return {
        "requests": n,
        "wall": time.perf_counter() - t0,
        "ok": statuses.get(200, 0),
        "p50": statistics.median(latencies),
        "rss_first": rss[0] if rss else 0,
        "rss_min": min(rss, default=0),
        "rss_max": max(rss, default=0),
        "rss_last": rss[-1] if rss else 0,
    }


async def level(url: str, audio: bytes, clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop_at = time.monotonic() + seconds

    async def one() -> None:
        async with httpx.AsyncClient(timeout=600) as http:
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                resp = await http.post(
                    url + "/v1/audio/transcriptions",
                    files={"file": ("clip.wav", audio, "audio/wav")},
                    data={"model": "whisper-1"},
                )
                latencies.append(time.perf_counter() - t0)
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(clients)))
    wall = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    return {
        "clients": clients,
        "requests": len(latencies),
        "rps": len(latencies) / wall,
        "p50": statistics.median(latencies),
        "p95": q[18],
        "ok": statuses.get(200, 0),
        "other": sum(v for k, v in statuses.items() if k != 200),
    }


def short_clip(path: str | None) -> bytes:
    if path:
        return Path(path).read_bytes()
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        raw, wav = Path(d) / "raw.wav", Path(d) / "short.wav"
        subprocess.run(["espeak-ng", "-w", str(raw), "Good morning."], check=True)
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-i", str(raw), "-ar", "16000", "-ac", "1", str(wav)],
            check=True,
        )
        return wav.read_bytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="base")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--clip", default=str(EVALDATA / "en" / "jfk.wav"))
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--soak", type=int, default=1000, help="short requests in the soak; 0 = skip")
    ap.add_argument("--short-clip", default=None, help="the soak's clip [1 s of espeak-ng]")
    args = ap.parse_args()
    audio = Path(args.clip).read_bytes()
    url = f"http://127.0.0.1:{args.port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "malsori.cli",
            "serve",
            "--port",
            str(args.port),
            "--model",
            args.model,
            "--max-queue",
            "64",
            "--log-level",
            "warning",
        ],
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    try:
        while True:
            try:
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        asyncio.run(level(url, audio, 1, 3))  # warm-up
        rows = []
        for clients in (1, 4, 16):
            r = asyncio.run(level(url, audio, clients, args.seconds))
            rss = psutil.Process(proc.pid).memory_info().rss / 2**20
            rows.append(
                [
                    str(clients),
                    str(int(r["requests"])),
                    f"{r['rps']:.2f}",
                    f"{r['p50']:.2f}",
                    f"{r['p95']:.2f}",
                    f"{int(r['ok'])}/{int(r['other'])}",
                    f"{rss:.0f} MB",
                ]
            )
            print(rows[-1], file=sys.stderr, flush=True)
        drop = asyncio.run(abandoned(url, audio))
        print(drop, file=sys.stderr, flush=True)
        soaked: dict[str, float] = {}
        if args.soak:
            soaked = asyncio.run(soak(url, short_clip(args.short_clip), args.soak, proc.pid))
            print(soaked, file=sys.stderr, flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    table = markdown_table(
        ["clients", "requests", "requests/s", "p50 s", "p95 s", "200 / other", "server RSS"], rows
    )
    cmd = "python benchmarks/server_load.py " + " ".join(sys.argv[1:])
    report = (
        f"Model `{args.model}`, clip `{Path(args.clip).name}` "
        f"({len(audio) / 32000:.1f} s), {args.seconds:g} s per level, one transcription at a "
        f"time (default settings).\nMachine: {machine()}\nCommand: `{cmd.strip()}`\n\n{table}\n"
        f"\nAbandoned requests: 4 clients send `{LONG.name}` (141 s) and hang up after 3 s; "
        f"then the clip: its latency {drop['next_latency']:.1f} s; audio the server still "
        f"transcribed for the clients that left: {max(0.0, drop['abandoned_audio_s']):.0f} s; "
        f"no transcription running {drop['idle_after_drop_s']:.1f} s after the hang-ups; "
        f"{drop['cancelled']:.0f} jobs cancelled.\n"
    )
    if args.soak:
        report += (
            f"\nSoak: {soaked['requests']} requests of 1 s of speech, 2 clients, "
            f"{soaked['wall']:.0f} s, {soaked['ok']:.0f} answered 200, p50 "
            f"{soaked['p50']:.2f} s; server RSS after 100 requests {soaked['rss_first']:.0f} MB, "
            f"min {soaked['rss_min']:.0f}, max {soaked['rss_max']:.0f}, last "
            f"{soaked['rss_last']:.0f} MB "
            f"({(soaked['rss_max'] / max(soaked['rss_min'], 1) - 1) * 100:.1f}% spread).\n"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "server_load.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
