"""How soon ``stream=true`` deltas arrive, what streaming costs, and how fast a dropped
request stops (issue 13, §3 and §1).

    .venv/bin/python benchmarks/server_stream.py [--model base] [--port 8766]

Starts ``malsori serve --model MODEL``; for the 141 s English and the 271 s Korean long
evaldata files: one plain request (wall time), then one ``stream=true`` request (time to the
first delta, number of deltas, largest gap between two deltas, wall time). Then a 271 s
request that hangs up after 3 s: seconds from the hang-up until no transcription runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EVALDATA, machine, markdown_table

FILES = {
    "en 141 s": EVALDATA / "long" / "ljspeech_LJ001-0001_to_0020_concat.wav",
    "ko 271 s": EVALDATA / "long" / "emotiontts_ava00001_to_ava00025_concat.wav",
}


def running(url: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith("malsori_jobs_running "):
            return float(line.split()[1])
    return 0.0


def plain(url: str, path: Path) -> float:
    t0 = time.perf_counter()
    with open(path, "rb") as fh:
        resp = httpx.post(
            url + "/v1/audio/transcriptions",
            files={"file": (path.name, fh)},
            data={"model": "whisper-1"},
            timeout=900,
        )
    resp.raise_for_status()
    return time.perf_counter() - t0


def streamed(url: str, path: Path) -> dict[str, float]:
    arrivals: list[float] = []
    t0 = time.perf_counter()
    with (
        httpx.Client(timeout=900) as client,
        open(path, "rb") as fh,
        client.stream(
            "POST",
            url + "/v1/audio/transcriptions",
            files={"file": (path.name, fh)},
            data={"model": "whisper-1", "stream": "true"},
        ) as resp,
    ):
        for line in resp.iter_lines():
            if line.startswith("data: ") and json.loads(line[6:])["type"].endswith(".delta"):
                arrivals.append(time.perf_counter() - t0)
    wall = time.perf_counter() - t0
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    return {
        "first": arrivals[0],
        "deltas": len(arrivals),
        "max_gap": max(gaps, default=0.0),
        "wall": wall,
    }


def dropped(url: str, path: Path) -> float:
    try:
        with httpx.Client(timeout=3) as client, open(path, "rb") as fh:
            client.post(
                url + "/v1/audio/transcriptions",
                files={"file": (path.name, fh)},
                data={"model": "whisper-1"},
            )
    except httpx.TimeoutException:
        pass
    t0 = time.perf_counter()
    while running(url) > 0 and time.perf_counter() - t0 < 600:
        time.sleep(0.05)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="base")
    ap.add_argument("--port", type=int, default=8766)
    args = ap.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    cmd = [sys.executable, "-m", "malsori.cli", "serve", "--port", str(args.port)]
    cmd += ["--model", args.model, "--idle-unload", "0", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        plain(url, FILES["en 141 s"])  # warm-up: the model is loaded on first use
        rows = []
        for name, path in FILES.items():
            wall = plain(url, path)
            s = streamed(url, path)
            rows.append(
                [
                    name,
                    f"{wall:.1f} s",
                    f"{s['wall']:.1f} s ({s['wall'] / wall:.2f}x)",
                    f"{s['first']:.1f} s",
                    str(int(s["deltas"])),
                    f"{s['max_gap']:.1f} s",
                ]
            )
        stop = dropped(url, FILES["ko 271 s"])
    finally:
        proc.terminate()
        proc.wait(30)
    print(machine())
    print(f"model {args.model}\n")
    header = ["file", "plain", "stream=true", "first delta", "deltas", "largest gap"]
    print(markdown_table(header, rows))
    print(f"\nhang-up after 3 s (271 s Korean file): no transcription running {stop:.1f} s later")


if __name__ == "__main__":
    main()
