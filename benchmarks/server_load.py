"""Server throughput and latency at 1, 4 and 16 concurrent clients, short clip, loopback.

    .venv/bin/python benchmarks/server_load.py [--model base] [--seconds 30]

Starts ``malsori serve`` (max 1 transcription at a time, queue large enough that no
request is refused), warms it up, then for each concurrency level runs closed-loop clients
for --seconds and reports requests/s, p50/p95 latency, status counts and the server's RSS.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="base")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--clip", default=str(EVALDATA / "en" / "jfk.wav"))
    ap.add_argument("--port", type=int, default=8765)
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
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "server_load.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
