"""What a batch run reports: the result object and the live progress bar (files, audio hours,
x-realtime, ETA), both read from the job database. Shared by the local and the Ray engine."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .._progress import progress_bar
from .jobs import JobStore


@dataclass
class BatchResult:
    """Totals after a run. ``signal`` is the signal that stopped it (SIGINT/SIGTERM) or 0;
    ``fatal`` a reason the run stopped early on its own (a full disk...)."""

    summary: dict[str, float]
    interrupted: bool = False
    signal: int = 0
    fatal: str | None = None
    warnings: list[str] = field(default_factory=list)


class Progress:
    """Live progress from the job database: files, audio hours, x-realtime, ETA."""

    def __init__(self, store: JobStore, enabled: bool) -> None:
        self.store, self.t0 = store, time.monotonic()
        self.bar = progress_bar(
            "{task.description}",
            "{task.completed:.0f}/{task.total:.0f} files",
            "{task.fields[info]}",
            enabled=enabled,
        )
        s = store.summary()
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
