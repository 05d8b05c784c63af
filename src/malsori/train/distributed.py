"""Data-parallel training under ``torchrun``: one process per CPU/GPU, gloo on CPU, nccl on GPU.

``torchrun --nproc-per-node N script.py`` sets RANK, WORLD_SIZE and LOCAL_RANK; ``fit`` sees
them, joins the process group, wraps the model in DistributedDataParallel and shards the
data with DistributedSampler. Only rank 0 writes files or shows progress.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


def _leave_group() -> None:
    if dist.is_initialized():
        with contextlib.suppress(Exception):  # the other ranks may be gone already
            dist.barrier()
        dist.destroy_process_group()


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DistributedContext:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))

    def init(self, device: torch.device) -> None:
        """Join the process group (idempotent). gloo on CPU, nccl on CUDA."""
        if not self.enabled or dist.is_initialized():
            return
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=self.rank, world_size=self.world_size)
        # Leave the group before the interpreter tears down: gloo's threads destroyed while
        # still joinable abort the process ("terminate called without an active exception",
        # SIGABRT) now and then, failing a run that had finished its work.
        atexit.register(_leave_group)

    def all_reduce_sum(self, value: float, device: torch.device) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item())

    def mean(self, total: float, count: int, device: torch.device) -> float:
        """``total / count`` over every process (each passes its own sum and count)."""
        return self.all_reduce_sum(total, device) / max(
            self.all_reduce_sum(float(count), device), 1
        )

    def barrier(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.barrier()
