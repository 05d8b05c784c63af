"""The local engine: worker processes (``spawn``; one model each) claiming files from the job
database, watched by the parent.

The parent notices a worker that died (killed with SIGKILL, out of memory...): it warns
once, counts the attempt against the file, re-queues the file within ``--retries`` and starts
a replacement worker. Ctrl-C / SIGTERM stop after the files in progress (a second signal
aborts them); a full disk stops all new work.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from typing import Any

from ..errors import MalsoriError
from .config import BatchConfig
from .jobs import JobStore
from .progress import BatchResult, Progress
from .worker import run_worker


def _signal_name(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


class _Pool:
    """Worker processes (or, for one worker, a thread in this process)."""

    def __init__(self, config: BatchConfig, size: int) -> None:
        self.config, self.size = config, size
        self.in_process = size == 1
        if self.in_process:
            self.stop: Any = threading.Event()
            self.notes: Any = queue.SimpleQueue()
            self.threads: list[threading.Thread] = []
        else:
            self.ctx = mp.get_context("spawn")
            self.stop = self.ctx.Event()
            self.notes = self.ctx.SimpleQueue()
        self.procs: list[Any] = []
        self.started = 0

    def start_one(self) -> None:
        self.started += 1
        if self.in_process:
            t = threading.Thread(
                target=run_worker, args=(self.config, self.stop, self.notes, True), daemon=True
            )
            t.start()
            self.threads.append(t)
        else:
            p = self.ctx.Process(
                target=run_worker, args=(self.config, self.stop, self.notes), daemon=True
            )
            p.start()
            self.procs.append(p)

    def alive(self) -> int:
        if self.in_process:
            return sum(t.is_alive() for t in self.threads)
        return sum(p.is_alive() for p in self.procs)

    def dead(self) -> list[Any]:
        """Worker processes that ended abnormally since the last call (reaped)."""
        gone = [p for p in self.procs if not p.is_alive() and p.exitcode not in (0, None)]
        for p in gone:
            p.join()
            self.procs.remove(p)
        return gone

    def drain_notes(self) -> list[str]:
        out = []
        while not self.notes.empty():
            out.append(str(self.notes.get()))
        return out

    def kill(self) -> None:
        for p in self.procs:
            p.kill()

    def join(self) -> None:
        for p in self.procs:
            p.join(timeout=5)

    def close(self) -> None:
        """Release the queue's and the event's semaphores now, while this process still runs
        (left to interpreter exit, Python's resource tracker warns about a worker killed
        with SIGKILL as if malsori had leaked them)."""
        if not self.in_process:
            self.notes.close()
            for p in self.procs:
                p.close()
            self.procs.clear()
        self.notes = self.stop = None


def run_local(
    config: BatchConfig, store: JobStore, workers: int, retries: int, progress: bool
) -> BatchResult:
    pool = _Pool(config, workers)
    result = BatchResult(store.summary())
    host = os.uname().nodename
    signals: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        signals.append(signum)
        pool.stop.set()
        if len(signals) == 1:
            print(
                "\nmalsori: stopping after the files in progress (again to abort them)",
                file=sys.stderr,
            )
        else:
            pool.kill()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    view = Progress(store, progress)
    max_starts = workers * (retries + 2)  # a worker that keeps dying must not loop forever
    try:
        for _ in range(min(workers, max(1, len(store.pending())))):
            pool.start_one()
        with view.bar:
            while True:
                for p in pool.dead():
                    if signals:
                        continue  # aborted by the second signal: left pending below
                    lost = store.running_by(f"{host}:{p.pid}")
                    how = _signal_name(p.exitcode)
                    for rel in lost:
                        store.mark_failed(rel, f"worker process died ({how})")
                    requeued = store.retry_failed(retries) if lost else 0
                    msg = f"malsori: warning: worker pid {p.pid} died ({how}); " + (
                        f"its file {lost[0]} goes back to the queue"
                        if lost and requeued
                        else (f"its file {lost[0]} failed" if lost else "it held no file")
                    )
                    result.warnings.append(msg)
                    print(msg, file=sys.stderr)
                notes = pool.drain_notes()
                if notes and result.fatal is None:
                    result.fatal = notes[0]
                stopping = pool.stop.is_set()
                if (
                    not stopping
                    and pool.alive() < workers
                    and pool.started < max_starts
                    and len(store.pending()) > pool.alive()
                    and not pool.in_process
                ):
                    pool.start_one()  # replaces a dead worker, or picks up re-queued files
                view.refresh()
                if pool.alive() == 0:
                    break
                if signals and len(signals) > 1 and pool.in_process:
                    break  # the in-process file cannot be aborted mid-way; leave it pending
                time.sleep(0.5)
            notes = pool.drain_notes()
            if notes and result.fatal is None:
                result.fatal = notes[0]
            view.refresh()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        pool.join()
        pool.close()
        try:
            store.reclaim()  # whatever dead workers left running goes back to pending
            if pool.in_process and len(signals) > 1:
                store.release([r.path for r in store.rows() if r.status == "running"])
        except MalsoriError as exc:
            result.fatal = result.fatal or str(exc)
    result.summary = store.summary()
    result.interrupted = bool(signals)
    result.signal = signals[0] if signals else 0
    return result
