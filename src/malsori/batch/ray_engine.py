"""The same batch job on a Ray cluster with Ray Data (``--engine ray``; the ``dist`` extra).

The driver reads the pending rows from the job database, builds a Ray dataset of paths and
maps it with an actor pool (``map_batches`` with a callable class): each actor loads the
model once and transcribes files, writing outputs itself (inputs and outputs must be on
storage every node sees). Results stream back to the driver, which records them in the same
SQLite database, so a job can move between the local engine and Ray and still resume.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

from ..errors import MalsoriError, NoSpaceError
from .config import BatchConfig
from .jobs import JobStore, worker_id
from .progress import BatchResult, Progress
from .worker import failure_reason, finish_file, process_file


class RayTranscriber:
    """A Ray Data actor: the model is loaded once per actor, in ``__init__``."""

    def __init__(self, config: dict[str, Any]) -> None:
        from ..engine import load_model

        self.config = BatchConfig(**{**config, "formats": tuple(config["formats"])})
        self.full: str | None = None  # a full disk: fail the rest fast, the driver stops
        self.loaded = load_model(
            self.config.model,
            device=self.config.device,
            compute_type=self.config.compute_type,
            cpu_threads=self.config.threads,
        )

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {
            "path": [],
            "status": [],
            "error": [],
            "outputs": [],
            "duration": [],
            "processing_time": [],
        }
        for rel in batch["path"]:
            rel = str(rel)
            outputs: list[Any] = []
            duration = seconds = 0.0
            if self.full is not None:
                status, error = "skipped", self.full
            else:
                try:
                    outputs, duration, seconds = process_file(self.config, self.loaded, rel)
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
        return out


def run_ray(
    config: BatchConfig, store: JobStore, workers: int, address: str | None, progress: bool
) -> BatchResult:
    try:
        import ray
    except ImportError as exc:
        raise MalsoriError("--engine ray needs the dist extra: pip install -e '.[dist]'") from exc

    pending = store.pending()
    if not pending:
        return BatchResult(store.summary())
    threads = config.threads or 1
    started_here = not ray.is_initialized()
    if started_here:
        if address in (None, "", "local"):
            ray.init(
                num_cpus=workers * threads,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    me = worker_id()
    store.mark_running(pending, me)  # reclaimed by the next run if this driver dies
    finished: set[str] = set()
    result = BatchResult(store.summary())
    view = Progress(store, progress)
    try:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ds = ray.data.from_items([{"path": p} for p in pending], override_num_blocks=len(pending))
        results = ds.map_batches(
            RayTranscriber,
            fn_constructor_kwargs={"config": asdict(config)},
            batch_size=1,
            concurrency=workers,
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
                else:
                    store.mark_failed(rel, str(row["error"]))
                    if status == "nospace" and result.fatal is None:
                        result.fatal = str(row["error"])
                finished.add(rel)
                view.refresh()
    except KeyboardInterrupt:
        result.interrupted = True
        print("\nmalsori: interrupted; unfinished files go back to pending", file=sys.stderr)
    finally:
        store.release([p for p in pending if p not in finished])
        if started_here:
            ray.shutdown()
    result.summary = store.summary()
    return result
