"""Per-epoch training history: CSV/JSON files and a loss-curve PNG."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._atomic import atomic_write_many
from .._tables import csv_text, figure_png, new_figure, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    valid_loss: float | None
    lr: float
    time_s: float
    samples_per_s: float


@dataclass
class History:
    epochs: list[EpochStats] = field(default_factory=list)
    best_epoch: int | None = None
    best_valid_loss: float | None = None
    stopped_early: bool = False

    @property
    def train_loss(self) -> list[float]:
        return [e.train_loss for e in self.epochs]

    @property
    def valid_loss(self) -> list[float | None]:
        return [e.valid_loss for e in self.epochs]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(
            epochs=[EpochStats(**e) for e in data.get("epochs", [])],
            best_epoch=data.get("best_epoch"),
            best_valid_loss=data.get("best_valid_loss"),
            stopped_early=bool(data.get("stopped_early", False)),
        )

    def files(self) -> list[tuple[str, str | bytes]]:
        """(name, content) of history.json, history.csv and loss.png."""
        names = [f.name for f in fields(EpochStats)]
        rows = (
            ["" if getattr(e, n) is None else getattr(e, n) for n in names] for e in self.epochs
        )
        return [
            ("history.json", json.dumps(self.to_dict(), indent=2)),
            ("history.csv", csv_text(names, rows)),
            ("loss.png", figure_png(self._figure())),
        ]

    def save(self, directory: str | Path) -> list[Path]:
        """Write history.json, history.csv and loss.png into ``directory``: all three or
        none (a full disk keeps the previous three)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        files = [(out / name, content) for name, content in self.files()]
        atomic_write_many(files)
        return [path for path, _ in files]

    def plot(self, path: str | Path) -> None:
        """The loss curves (log scale when every loss is positive), best epoch marked."""
        save_figure(self._figure(), path)

    def _figure(self) -> Figure:
        fig, ax = new_figure(6, 4)
        xs = [e.epoch for e in self.epochs]
        ax.plot(xs, self.train_loss, marker="o", label="train")
        valid = [math.nan if v is None else v for v in self.valid_loss]
        if any(not math.isnan(v) for v in valid):
            ax.plot(xs, valid, marker="o", label="validation")
        if self.best_epoch is not None:
            ax.axvline(self.best_epoch, color="grey", linestyle="--", label="best")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_yscale("log" if min(self.train_loss, default=1) > 0 else "linear")
        ax.legend()
        ax.grid(alpha=0.3)
        return fig
