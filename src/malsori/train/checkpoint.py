"""``TrainState``: where a training run stands. Saved as it is, it *is* the checkpoint.

``fit`` keeps one ``TrainState`` (epoch, optimizer step, history, best weights, early-stopping
counter, RNG and DataLoader-shuffle state) and, after every epoch, writes it with the model's,
optimizer's and scheduler's own state dicts to ``DIR/last.pt`` (atomically). ``resume``
reads it back and continues to the same result as an uninterrupted run.

The file is a dict of the fields below plus ``"format": 2``. Format 1, the unversioned
11-key dict of earlier malsori versions (``best_state``, ``bad_epochs``, ``steps``,
``loader_generator``, ...), is read too: its keys are renamed on load. Anything else is
refused with one line (:class:`~malsori.errors.CheckpointError`).
"""

from __future__ import annotations

import pickle
import random
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._atomic import atomic_open
from ..errors import CheckpointError
from .history import History

#: The checkpoint file in a checkpoint directory (fit's ``checkpoint_dir``, finetune's
#: ``OUT/checkpoints``).
CHECKPOINT = "last.pt"
#: The layout written today; 1 was the unversioned dict of malsori 0.1.
CHECKPOINT_FORMAT = 2
#: Format-1 keys that have another name now (the rest are the same).
_FORMAT1_NAMES = {"best_state": "best_weights", "steps": "step", "loader_generator": "loader_rng"}
_FORMAT1_KEYS = frozenset({"epoch", "model", "optimizer", "history", "best_state", "rng"})

Scheduler = Any  # torch's LRScheduler or ReduceLROnPlateau: both have state_dict/load_state_dict


def checkpoint_path(location: str | Path) -> Path:
    """The checkpoint file of ``location``: ``location/last.pt`` for a directory (existing
    or still to be created), ``location`` itself when it names a ``.pt`` file."""
    path = Path(location)
    return path if path.is_file() or path.suffix == ".pt" else path / CHECKPOINT


def existing_checkpoint(location: str | Path) -> Path:
    """:func:`checkpoint_path`, which must exist (``resume``)."""
    path = checkpoint_path(location)
    if not path.is_file():
        raise CheckpointError(f"cannot resume: no checkpoint at {path}")
    return path


def rng_state() -> dict[str, Any]:
    """The Python, NumPy, torch (and CUDA) random states, to continue the same draws."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Undo :func:`rng_state`: the next random draws are the ones the saved run made."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass(frozen=True)
class Trainables:
    """The live objects whose own state dicts the checkpoint holds beside TrainState's."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Scheduler | None
    loader_rng: torch.Generator  # the DataLoader's generator: the shuffle order


@dataclass
class TrainState:
    """Everything ``fit`` needs to continue a run exactly; the checkpoint is this, saved."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken, across epochs
    history: History = field(default_factory=History)
    best_weights: dict[str, torch.Tensor] | None = None  # kept with restore_best/patience
    bad_epochs: int = 0  # epochs since the best one: the early-stopping counter
    seed: int = 0
    loader_rng: torch.Tensor | None = None  # the DataLoader generator: the shuffle order
    rng: dict[str, Any] = field(default_factory=dict)  # see rng_state()
    model: dict[str, Any] = field(default_factory=dict)  # the state dicts of the model,
    optimizer: dict[str, Any] = field(default_factory=dict)  # the optimizer
    scheduler: dict[str, Any] | None = None  # and the learning-rate scheduler

    def capture(self, live: Trainables) -> None:
        """Take the current states of the model, optimizer, scheduler and random numbers."""
        self.model = live.model.state_dict()
        self.optimizer = live.optimizer.state_dict()
        self.scheduler = live.scheduler.state_dict() if live.scheduler is not None else None
        self.loader_rng = live.loader_rng.get_state()
        self.rng = rng_state()

    def restore(self, live: Trainables) -> None:
        """Put the captured states back (the random states last, as they were saved)."""
        live.model.load_state_dict(self.model)
        live.optimizer.load_state_dict(self.optimizer)
        if live.scheduler is not None and self.scheduler is not None:
            live.scheduler.load_state_dict(self.scheduler)
        if self.loader_rng is not None:
            live.loader_rng.set_state(self.loader_rng)
        set_rng_state(self.rng)
        self.model, self.optimizer, self.scheduler = {}, {}, None  # they live in the objects now

    def save(self, path: str | Path) -> None:
        """Write the checkpoint atomically: a crash leaves the previous one."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["history"] = self.history.to_dict()
        with atomic_open(path, "wb") as fh:
            torch.save({"format": CHECKPOINT_FORMAT, **data}, fh)

    def save_checkpoint(self, directory: str | Path, live: Trainables) -> Path:
        """Capture ``live`` and save everything to ``directory/last.pt``; return that path."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.capture(live)
        path = checkpoint_path(directory)
        self.save(path)
        return path

    @classmethod
    def load(cls, path: str | Path, map_location: torch.device | str = "cpu") -> TrainState:
        """Read a checkpoint of format 2 or 1; anything else is a :class:`CheckpointError`."""
        try:
            data = torch.load(path, map_location=map_location, weights_only=False)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
        data = _upgrade(data, path)
        data["history"] = History.from_dict(data["history"])
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _upgrade(data: object, path: str | Path) -> dict[str, Any]:
    """The checkpoint dict in today's names; format 1 is renamed, others refused."""
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not a malsori training checkpoint")
    version = data.get("format")
    if version == CHECKPOINT_FORMAT:
        return data
    if version is None and data.keys() >= _FORMAT1_KEYS:
        return {_FORMAT1_NAMES.get(str(k), str(k)): v for k, v in data.items()}
    raise CheckpointError(
        f"{path}: checkpoint format {version!r} is not one this malsori reads "
        f"(1 or {CHECKPOINT_FORMAT}); resume it with the malsori that wrote it"
    )
