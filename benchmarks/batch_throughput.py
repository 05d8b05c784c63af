"""Batch throughput: --workers 1 vs --workers 2 vs Ray (local, 2 workers) on one folder.

    .venv/bin/python benchmarks/batch_throughput.py [--model base]

The folder is every clip of ../shared/evaldata (English and Korean, short and long: about
11 minutes of real speech in 46 files), linked into a temp directory. Each configuration
runs `malsori batch` as a fresh process into an empty output directory; reported: wall time
(process start to exit, model loading included), files/s, x-realtime and peak RSS of the
whole process tree (sampled every 0.2 s).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EVALDATA, OUT, machine, manifest_rows, markdown_table

CONFIGS = {
    "workers 1": ["--workers", "1"],
    "workers 2": ["--workers", "2"],
    "ray-local-2": ["--engine", "ray", "--workers", "2"],  # a local Ray runtime, 2 actors
}


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="base")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    args = ap.parse_args()
    rows_in = manifest_rows()
    audio_s = sum(float(r["duration_s"]) for r in rows_in)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        for r in rows_in:
            dst = src / r["path"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to((EVALDATA / r["path"]).resolve())
        for name in args.configs.split(","):
            out = Path(tmp) / f"out-{len(results)}"
            cmd = [
                sys.executable,
                "-m",
                "malsori.cli",
                "batch",
                str(src),
                "-o",
                str(out),
                "--model",
                args.model,
                "-q",
                "--format",
                "txt,json",
                *CONFIGS[name],
            ]
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            ps = psutil.Process(proc.pid)
            peak = 0
            while proc.poll() is None:
                peak = max(peak, tree_rss(ps))
                time.sleep(0.2)
            wall = time.perf_counter() - t0
            err = proc.stderr.read().decode() if proc.stderr else ""
            if proc.returncode != 0:
                raise SystemExit(f"{name} failed ({proc.returncode}): {err[-2000:]}")
            results.append(
                [
                    name,
                    f"{wall:.1f}",
                    f"{len(rows_in) / wall:.2f}",
                    f"{audio_s / wall:.1f}x",
                    f"{peak / 2**20:.0f} MB",
                ]
            )
            print(results[-1], file=sys.stderr, flush=True)
    table = markdown_table(
        ["configuration", "wall s", "files/s", "x-realtime", "peak RSS (tree)"], results
    )
    cmd_line = "python benchmarks/batch_throughput.py " + " ".join(sys.argv[1:])
    report = (
        f"Model `{args.model}` (default decoding), {len(rows_in)} files, {audio_s / 60:.1f} min "
        f"of speech.\nMachine: {machine()}\nCommand: `{cmd_line.strip()}`\n\n{table}\n"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "batch_throughput.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
