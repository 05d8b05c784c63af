"""malsori.train: the PyTorch five-step workflow as a small, explicit trainer.

1. data as tensors  2. TensorDataset + DataLoader  3. an nn.Module  4. a loss
5. an optimizer and the loop ``optimizer.zero_grad(); loss.backward(); optimizer.step()``.

``fit`` runs steps 2 and 5 for any model (1, 3 and 4 are the caller's); ``regression`` is a
complete recipe (CSV -> MLP -> saved model directory). Requires the ``train`` extra (torch).
"""

from __future__ import annotations

from .distributed import DistributedContext
from .history import EpochStats, History
from .loop import Callback, fit, resolve_device, seed_everything

__all__ = [
    "Callback",
    "DistributedContext",
    "EpochStats",
    "History",
    "fit",
    "resolve_device",
    "seed_everything",
]
