"""The same batch job on a Ray cluster with Ray Data (``--engine ray``; the ``dist`` extra).

The driver reads the pending rows from the job database, builds a Ray dataset of paths and
maps it with an actor pool (``map_batches`` with a callable class): each actor loads the
model once and transcribes files, writing outputs itself (inputs and outputs must be on
storage every node sees). Results stream back to the driver, which records them in the same
SQLite database, so a job can move between the local engine and Ray and still resume.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from .._extras import require_extra
from ..errors import MalsoriError, NoSpaceError
from .config import BatchConfig
from .jobs import JobStore, worker_id
from .progress import BatchResult, Progress
from .worker import failure_reason, finish_file, out_gone, process_file


class RayTranscriber:
    """A Ray Data actor: the model is loaded once per actor, in ``__init__``."""

    def __init__(self, config: dict[str, Any]) -> None:
        from ..engine import load_model

        self.config = BatchConfig(**{**config, "formats": tuple(config["formats"])})
        self.full: str | None = None  # a full disk: fail the rest fast, the driver stops
        self.loaded = load_model(self.config.engine)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {
            "path": [],
            "status": [],
            "error": [],
            "outputs": [],
            "duration": [],
            "processing_time": [],
        }
        # The job database lies in OUT, which every node sees. Outputs are listed in it (as
        # loose outputs of their input) before they are written, as the local workers do:
        # a driver killed after an actor wrote a file but before it recorded it leaves
        # outputs the next run may replace, not files it refuses as not its own. (Opened
        # per call: Ray may call the actor from another thread than the one that made it.)
        with contextlib.closing(JobStore(self.config.output_dir, create=False)) as store:
            self._transcribe(batch, store, out)
        return out

    def _transcribe(
        self, batch: dict[str, Any], store: JobStore, out: dict[str, list[Any]]
    ) -> None:
        for rel in batch["path"]:
            rel = str(rel)
            outputs: list[Any] = []
            duration = seconds = 0.0
            if self.full is not None:
                status, error = "skipped", self.full
            else:
                try:
                    outputs, duration, seconds = process_file(
                        self.config, self.loaded, rel, store.add_loose
                    )
                    status, error = "done", ""
                except NoSpaceError as exc:
                    self.full = str(exc)
                    status, error = "nospace", str(exc)
                except Exception as exc:  # one file never takes the actor down
                    status, error = "failed", failure_reason(exc)
            out["path"].append(rel)
            out["status"].append(status)
            out["error"].append(error)
            out["outputs"].append(json.dumps(outputs))
            out["duration"].append(duration)
            out["processing_time"].append(seconds)


RAY_LOG = ".malsori-ray.log"


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """``host:port`` or ``ray://host:port``: one TCP connect first. ``ray.init`` retries an
    unreachable GCS for many minutes; this answers in seconds with one line."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and other forms: Ray resolves them itself
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise MalsoriError(f"cannot reach the Ray cluster at {address}: {reason}") from None


@contextlib.contextmanager
def _ray_stderr_to(path: Path) -> Iterator[TextIO]:
    """``-q``: Ray writes start-up notices, Ray Data INFO lines and its C++ core worker's log
    to file descriptor 2, some through Python handlers it sets up lazily. Point fd 2 itself
    at ``path`` (nothing is lost; ``sys.stderr`` stays the object every handler holds) and
    yield a stream on the real stderr for malsori's own messages."""
    sys.stderr.flush()
    saved = os.dup(2)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    os.close(log)
    real = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
    try:
        yield real
    finally:
        sys.stderr.flush()
        real.close()
        os.dup2(saved, 2)
        os.close(saved)


def run_ray(
    config: BatchConfig,
    store: JobStore,
    workers: int,
    address: str | None,
    progress: bool,
    quiet: bool = False,
) -> BatchResult:
    """Transcribe the pending files on Ray; with ``quiet`` Ray's own output goes to
    ``OUT/.malsori-ray.log``."""
    if not quiet:
        return _run_ray(config, store, workers, address, progress, sys.stderr)
    require_extra("dist", "--engine ray")
    for name in [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "ray"]:
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("ray").setLevel(logging.ERROR)
    with _ray_stderr_to(Path(config.output_dir) / RAY_LOG) as say:
        return _run_ray(config, store, workers, address, progress, say)


def _run_ray(
    config: BatchConfig,
    store: JobStore,
    workers: int,
    address: str | None,
    progress: bool,
    say: TextIO,
) -> BatchResult:
    require_extra("dist", "--engine ray")
    import ray
    import ray.data

    pending = store.pending()
    if not pending:
        return BatchResult(store.summary())
    threads = config.threads or 1
    started_here = not ray.is_initialized()
    if started_here:
        try:
            if address in (None, "", "local"):
                # address="local": always a new Ray of our own, never a cluster that happens
                # to run on this machine (ray.init() alone would join it).
                ray.init(
                    address="local",
                    num_cpus=workers * threads,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            else:
                check_reachable(str(address))
                ray.init(address=address, log_to_driver=False, configure_logging=False)
        except MalsoriError:
            raise
        except Exception as exc:  # Ray raises ConnectionError, ValueError, RuntimeError...
            where = "start a local Ray" if address in (None, "", "local") else address
            raise MalsoriError(
                f"cannot {'' if 'local' in where else 'connect to Ray at '}{where}: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from exc
    me = worker_id()
    store.mark_running(pending, me)  # reclaimed by the next run if this driver dies
    finished: set[str] = set()
    result = BatchResult(store.summary())
    view = Progress(store, progress)

    def on_term(signum: int, frame: object) -> None:  # SIGTERM stops like Ctrl-C: exit 143
        result.signal = signal.SIGTERM
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_term)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ds = ray.data.from_items([{"path": p} for p in pending], override_num_blocks=len(pending))
        results = ds.map_batches(
            RayTranscriber,
            fn_constructor_kwargs={"config": asdict(config)},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=threads,
            batch_format="numpy",
        )
        with view.bar:
            for row in results.iter_rows():
                rel = str(row["path"])
                status = str(row["status"])
                if status == "done":
                    finish_file(
                        store,
                        config,
                        rel,
                        json.loads(str(row["outputs"])),
                        float(row["duration"]),
                        float(row["processing_time"]),
                    )
                elif status == "skipped":
                    continue  # left pending (released below)
                elif not Path(config.output_dir).is_dir():  # OUT moved: not this file's
                    # fault; it and the rest stay pending (the runner names the move)
                    result.fatal = out_gone(config.output_dir)
                    break
                else:
                    store.mark_failed(rel, str(row["error"]))
                    if status == "nospace" and result.fatal is None:
                        result.fatal = str(row["error"])
                finished.add(rel)
                view.refresh()
    except KeyboardInterrupt:
        result.interrupted = True
        result.signal = result.signal or signal.SIGINT
        print("\nmalsori: interrupted; unfinished files go back to pending", file=say)
    finally:
        signal.signal(signal.SIGTERM, old_term)
        store.release([p for p in pending if p not in finished])
        if started_here:
            ray.shutdown()
    result.summary = store.summary()
    return result
