"""malsori.train: the PyTorch five-step workflow as a small, explicit trainer.

1. data as tensors  2. TensorDataset + DataLoader  3. an nn.Module  4. a loss
5. an optimizer and the loop ``optimizer.zero_grad(); loss.backward(); optimizer.step()``.

``fit`` runs steps 2 (``make_loaders``) and 5 (``train_epoch``) for any model (1, 3 and 4
are the caller's) and saves its ``TrainState`` as the checkpoint; ``regression`` is a
complete recipe (CSV -> MLP -> saved model directory). Requires the ``train`` extra (torch).
"""

from __future__ import annotations

from .checkpoint import Trainables, TrainState, checkpoint_path
from .distributed import DistributedContext
from .history import EpochStats, History
from .loop import (
    Callback,
    EarlyStopping,
    fit,
    make_loaders,
    resolve_device,
    seed_everything,
    train_epoch,
)

__all__ = [
    "Callback",
    "DistributedContext",
    "EarlyStopping",
    "EpochStats",
    "History",
    "TrainState",
    "Trainables",
    "checkpoint_path",
    "fit",
    "make_loaders",
    "resolve_device",
    "seed_everything",
    "train_epoch",
]
