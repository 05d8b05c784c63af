"""One batch worker: load the model once, then claim files from the job database until none
is left (or told to stop), writing each file's outputs atomically before marking it done."""

from __future__ import annotations

import ctypes
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import MalsoriError
from .jobs import JobStore, worker_id


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class BatchConfig:
    input_dir: str
    output_dir: str
    model: str = "base"
    compute_type: str = "int8"
    device: str = "auto"
    threads: int | None = None
    formats: tuple[str, ...] = ("txt", "srt", "vtt", "json", "tsv")
    options: dict[str, Any] = field(default_factory=dict)  # DecodeOptions fields


def output_stem(config: BatchConfig, rel: str) -> tuple[Path, str]:
    """The directory and stem of ``rel``'s outputs: the input tree mirrored under OUT."""
    p = Path(rel)
    return Path(config.output_dir) / p.parent, p.stem


def process_file(config: BatchConfig, loaded: Any, rel: str) -> tuple[list[str], float, float]:
    """Transcribe one file and write its outputs; returns (outputs, duration, seconds)."""
    from ..engine import transcribe
    from ..options import DecodeOptions
    from ..writers import write_transcript

    options = DecodeOptions(**config.options)
    t0 = time.perf_counter()
    result = transcribe(Path(config.input_dir) / rel, loaded, options=options)
    out_dir, stem = output_stem(config, rel)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = write_transcript(result, out_dir, stem, config.formats)
    return [str(p) for p in paths], result.duration, time.perf_counter() - t0


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent dies (so a kill -9 of `malsori batch` leaves no
    orphan worker claiming files; its running rows are reclaimed on the next run)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_worker(config: BatchConfig, stop: StopFlag, in_process: bool = False) -> None:
    from ..engine import load_model

    if not in_process:
        _die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; we finish the file
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    store = JobStore(config.output_dir)
    me = worker_id()
    loaded = load_model(
        config.model,
        device=config.device,
        compute_type=config.compute_type,
        cpu_threads=config.threads,
    )
    try:
        while not stop.is_set():
            rel = store.claim(me)
            if rel is None:
                break
            try:
                outputs, duration, seconds = process_file(config, loaded, rel)
            except MalsoriError as exc:
                store.mark_failed(rel, str(exc))
            except Exception as exc:  # never let one file take the worker down
                store.mark_failed(rel, f"{type(exc).__name__}: {exc}")
            else:
                store.mark_done(rel, outputs, duration, seconds, loaded.name, config.options)
    finally:
        store.close()
