"""One file of a batch job, the same in both engines: transcribe it, write its outputs as a
set, record them (size + sha256) and retire outputs that the new ones replace; and the
local worker loop that claims files from the job database until none is left."""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import hashlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..errors import MalsoriError, NoSpaceError
from .config import BatchConfig
from .jobs import JobStore, linked_folder, output_intact, worker_id


class StopFlag(Protocol):
    def is_set(self) -> bool: ...
    def set(self) -> None: ...


class Notes(Protocol):
    def put(self, obj: Any, /) -> None: ...


def process_file(
    config: BatchConfig,
    loaded: Any,
    rel: str,
    intend: Callable[[list[dict[str, Any]], str], None] | None = None,
) -> tuple[list[dict[str, Any]], float, float]:
    """Transcribe one file and write its outputs; returns (output records, duration, s).

    Just before writing, every output path that exists must still be exactly as the run
    found it (``config.replaceable``): a file written into OUT while this one was decoding
    (your notes, a ``transcribe -o`` result, a hand correction) is kept and the file fails.
    ``intend`` gets the records of the outputs and ``rel`` before they are written (the job
    database keeps them as loose outputs of ``rel``: a run killed before recording them
    may still replace them)."""
    from .._atomic import atomic_write_many
    from .._warnings import collecting
    from ..engine import transcribe
    from ..subtitles import SubtitleOptions
    from ..writers import render_transcript, using_subtitle_options

    options = config.options_for(rel)  # word timings for a kept srt/vtt too
    t0 = time.perf_counter()
    source = Path(config.input_dir) / rel
    if config.speakers is None:
        result = transcribe(source, loaded, options=options)
    else:  # --diarize: speakers for the words (word timings on)
        from ..audio import load_audio
        from ..diarize import DiarizeOptions, assign_speakers, shared_diarizer, token_encoder

        with collecting() as read_warnings:  # kept in the json, as transcribe's own
            audio = load_audio(source)
        options = options.replace(word_timestamps=True)
        pending = shared_diarizer().submit(audio, DiarizeOptions(**config.speakers))
        result = transcribe(audio, loaded, options=options)  # while the speakers are found
        result = dataclasses.replace(result, warnings=[*read_warnings, *result.warnings])
        encode = token_encoder(loaded.model)  # split segments keep their own token ids
        result = assign_speakers(result, pending.result().turns, encode)
    base = config.output_base(rel)
    out = Path(config.output_dir)
    linked = linked_folder(out, [os.path.relpath(base, out)])  # made since the run started
    if linked is not None:
        raise MalsoriError(linked)
    folder = out
    try:  # the folders below OUT, never OUT itself (deleted or moved during the run)
        for part in Path(os.path.relpath(base.parent, out)).parts:
            if part == ".":
                continue
            folder = folder / part
            folder.mkdir(exist_ok=True)
    except FileNotFoundError:
        raise MalsoriError(out_gone(out)) from None
    except OSError as exc:
        raise MalsoriError(f"cannot create {folder}: {exc.strerror or exc}") from exc
    if not out.is_dir():
        raise MalsoriError(out_gone(out))
    with using_subtitle_options(SubtitleOptions(**config.subtitles) if config.subtitles else None):
        files = render_transcript(result, base.parent, base.name, config.formats_for(rel))
    records: list[dict[str, Any]] = []
    fresh = True  # none of the outputs exists yet
    for path, text in files:
        data = text.encode("utf-8")
        name = Path(os.path.relpath(path, out)).as_posix()
        record: dict[str, Any] = {
            "path": name,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        records.append(record)
        if os.path.lexists(path):
            fresh = False
            known = config.replaceable.get(name)
            if known is None or not output_intact(out, known):
                raise MalsoriError(
                    f"{path} was written or changed while this file was being transcribed; "
                    "it is kept (move it away and run again)"
                )
    if intend is not None:
        intend(records, rel)
    # New outputs are created, never put over a file that appeared since the check (another
    # worker's output whose name differs only in case, on a case-insensitive share; a file
    # saved there meanwhile): the write then fails and that file is kept.
    atomic_write_many(files, replace=not fresh)
    return records, result.duration, time.perf_counter() - t0


def out_gone(out: str | Path) -> str:
    """The reason given when OUT disappears during a run."""
    return f"{out} is gone (deleted or moved during the run)"


def failure_reason(exc: BaseException) -> str:
    """The one line recorded for a failed file."""
    if isinstance(exc, MalsoriError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def finish_file(
    store: JobStore,
    config: BatchConfig,
    rel: str,
    outputs: list[dict[str, Any]],
    duration: float,
    seconds: float,
) -> None:
    """Record a done file, then tidy its previous outputs that are still exactly as written:
    one of a format just rewritten under a new name is deleted (superseded); one of a format
    not asked this time, left under an old name, moves to the new name."""
    previous = store.previous_outputs(rel)
    store.mark_done(rel, outputs, duration, seconds, config.request_for(rel))
    out = Path(config.output_dir)
    new = {o["path"] for o in outputs}
    formats = {Path(o["path"]).suffix for o in outputs}
    base = config.names.get(rel, str(Path(rel).with_suffix("")))
    for old in previous:
        old_path = Path(old["path"])
        if old["path"] in new or not output_intact(out, old):
            continue
        with contextlib.suppress(OSError):
            if old_path.suffix in formats:
                (out / old_path).unlink()
            elif str(old_path.with_suffix("")) != base:
                target = out / (base + old_path.suffix)
                if not target.exists():
                    os.replace(out / old_path, target)


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent dies (so a kill -9 of `malsori batch` leaves no
    orphan worker claiming files; its running rows are reclaimed on the next run)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_worker(config: BatchConfig, stop: StopFlag, notes: Notes, in_process: bool = False) -> None:
    """Claim and transcribe files until none is left or ``stop`` is set. A full disk (or a
    job database that cannot be written) stops every worker: ``notes`` gets the reason."""
    from ..engine import load_model

    if not in_process:
        _die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; we finish the file
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    me = worker_id()
    try:
        store = JobStore(config.output_dir, create=False)
    except MalsoriError as exc:
        notes.put(str(exc))
        stop.set()
        return
    try:
        loaded = load_model(config.engine)
        while not stop.is_set():
            rel = store.claim(me)
            if rel is None:
                break
            try:
                outputs, duration, seconds = process_file(config, loaded, rel, store.add_loose)
            except NoSpaceError as exc:
                store.mark_failed(rel, str(exc))
                notes.put(str(exc))
                stop.set()
            except Exception as exc:  # never let one file take the worker down
                if not Path(config.output_dir).is_dir():
                    # OUT was moved or deleted: not this file's failure; it stays pending for
                    # the rerun (a tester's rerun with --retries 0 never did it again)
                    store.release([rel])
                    notes.put(out_gone(config.output_dir))
                    stop.set()
                else:
                    store.mark_failed(rel, failure_reason(exc))
            else:
                finish_file(store, config, rel, outputs, duration, seconds)
    except MalsoriError as exc:  # the model failed to load, or the database is full
        notes.put(str(exc))
        stop.set()
    finally:
        store.close()
