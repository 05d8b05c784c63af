"""Run a batch job: scan, sync the job database, then transcribe with local worker processes
or on Ray, showing live progress; Ctrl-C/SIGTERM stop cleanly."""

from __future__ import annotations

import multiprocessing as mp
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MalsoriError
from .jobs import JobStore
from .scan import scan
from .worker import BatchConfig, run_worker


@dataclass
class BatchResult:
    summary: dict[str, float]
    interrupted: bool


def prepare(
    config: BatchConfig, pattern: str | None, retries: int
) -> tuple[JobStore, dict[str, int]]:
    """Scan the input and bring the job database up to date; returns the store and counts."""
    root = Path(config.input_dir)
    if not root.is_dir():
        raise MalsoriError(f"{root}: not a directory")
    out = Path(config.output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MalsoriError(f"cannot create output directory {out}: {exc.strerror or exc}") from exc
    found = scan(root, pattern)
    store = JobStore(out)
    counts = store.sync(found.files, config.model, config.options)
    for rel, reason in found.unreadable:
        store.record_unreadable(rel, reason)
    counts["unreadable"] = len(found.unreadable)
    counts["reclaimed"] = store.reclaim()
    counts["retried"] = store.retry_failed(retries)
    return store, counts


class _Progress:
    """Live progress from the job database: files, audio hours, x-realtime, ETA."""

    def __init__(self, store: JobStore, enabled: bool) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.store, self.t0 = store, time.monotonic()
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} files"),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            disable=not enabled,
        )
        s = store.summary()
        self.start_done = s["done"] + s["failed"]
        self.start_audio = s["audio_s"]
        self.task = self.bar.add_task("batch", total=s["total"], info="")

    def refresh(self) -> None:
        s = self.store.summary()
        elapsed = time.monotonic() - self.t0
        audio = s["audio_s"] - self.start_audio
        speed = f"{audio / elapsed:.1f}x realtime" if elapsed > 1 and audio else ""
        self.bar.update(
            self.task,
            completed=s["done"] + s["failed"],
            total=s["total"],
            info=f"{int(s['failed'])} failed · {s['audio_s'] / 3600:.2f} h audio {speed}",
        )


def run_local(config: BatchConfig, store: JobStore, workers: int, progress: bool) -> BatchResult:
    stop: Any
    procs: list[Any] = []
    if workers == 1:
        stop = threading.Event()
        thread = threading.Thread(target=run_worker, args=(config, stop, True), daemon=True)
        thread.start()
        alive = thread.is_alive
    else:
        ctx = mp.get_context("spawn")
        stop = ctx.Event()
        procs = [
            ctx.Process(target=run_worker, args=(config, stop), daemon=True) for _ in range(workers)
        ]
        for p in procs:
            p.start()

        def alive() -> bool:
            return any(p.is_alive() for p in procs)

    signals = {"count": 0}

    def on_signal(signum: int, frame: Any) -> None:
        signals["count"] += 1
        stop.set()
        if signals["count"] == 1:
            print(
                "\nmalsori: stopping after the files in progress (again to abort them)",
                file=sys.stderr,
            )
        else:
            for p in procs:
                p.kill()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    view = _Progress(store, progress)
    try:
        with view.bar:
            while alive():
                view.refresh()
                time.sleep(0.5)
                if signals["count"] > 1 and workers == 1:
                    break  # the in-process file cannot be aborted mid-way; leave it pending
            view.refresh()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        for p in procs:
            p.join(timeout=5)
        # Whatever is still marked running by this process tree goes back to pending.
        store.reclaim()
        if workers == 1 and signals["count"] > 1:
            store.release([r.path for r in store.rows() if r.status == "running"])
    return BatchResult(store.summary(), signals["count"] > 0)


def run_batch(
    config: BatchConfig,
    *,
    workers: int = 1,
    retries: int = 2,
    pattern: str | None = None,
    engine: str = "local",
    address: str | None = None,
    progress: bool = True,
) -> tuple[BatchResult, dict[str, int]]:
    from ..engine import default_cpu_threads

    if workers < 1:
        raise MalsoriError("--workers must be >= 1")
    if config.threads is None:  # workers x threads <= cores
        config = BatchConfig(
            **{**config.__dict__, "threads": max(1, default_cpu_threads() // workers)}
        )
    store, counts = prepare(config, pattern, retries)
    try:
        if engine == "ray":
            from .ray_engine import run_ray

            result = run_ray(config, store, workers, address, progress)
        elif engine == "local":
            result = run_local(config, store, workers, progress)
        else:
            raise MalsoriError(f"unknown engine {engine!r} (local or ray)")
    finally:
        store.close()
    return result, counts
