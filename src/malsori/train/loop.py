"""``fit``: the five-step PyTorch workflow, written out, plus what a real trainer needs
(validation split, early stopping, checkpoints with exact resume, progress, DDP).

The steps, as in the original notes:

1. data as tensors                       -> the caller's ``train_data`` (tensors or a Dataset)
2. ``TensorDataset`` + ``DataLoader``     -> :func:`make_loaders` (batch_size, shuffle, workers)
3. a model, an ``nn.Module``             -> the caller's ``model``
4. a loss such as ``nn.MSELoss``          -> the caller's ``loss_fn``
5. an optimizer and the loop             -> :func:`train_epoch`: zero_grad(); backward(); step()

``fit`` reads top to bottom: set-up, then one :func:`train_epoch` per epoch, the validation
loss, :class:`EarlyStopping`, and the checkpoint, which is the :class:`TrainState` saved.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset, random_split

from .._progress import progress_bar
from ..errors import OptionsError
from .checkpoint import (
    CHECKPOINT,
    Scheduler,
    Trainables,
    TrainState,
    checkpoint_path,
    existing_checkpoint,
)
from .distributed import DistributedContext
from .history import EpochStats, History

#: Called after every epoch with its stats and the (unwrapped) model; return True to stop.
Callback = Callable[[EpochStats, nn.Module], "bool | None"]
#: Computes the loss of one batch: steps 3 and 4 (forward pass, then the loss).
LossStep = Callable[[nn.Module, Any, Callable[..., torch.Tensor]], torch.Tensor]

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}
__all__ = [
    "CHECKPOINT",
    "Callback",
    "EarlyStopping",
    "Loaders",
    "LossStep",
    "TrainState",
    "checkpoint_path",
    "default_loss_step",
    "fit",
    "make_loaders",
    "resolve_device",
    "seed_everything",
    "train_epoch",
]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise OptionsError(f"device {device!r} requested but torch sees no CUDA device")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's random numbers."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_loss_step(
    model: nn.Module, batch: Any, loss_fn: Callable[..., torch.Tensor]
) -> torch.Tensor:
    """``(*inputs, target)`` batches: ``loss_fn(model(*inputs), target)``."""
    *inputs, target = batch
    return loss_fn(model(*inputs), target)


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch (tensor, mapping or sequence of them) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _batch_len(batch: Any) -> int:
    """The number of samples in a batch (the first dimension of its first tensor)."""
    first = next(iter(batch.values())) if isinstance(batch, Mapping) else batch[0]
    return int(first.shape[0])


def _as_dataset(data: Dataset[Any] | Sequence[torch.Tensor]) -> Dataset[Any]:
    """A Dataset as it is; tensors ``(inputs..., target)`` as a TensorDataset."""
    if isinstance(data, Dataset):
        return data
    return TensorDataset(*data)  # step 2: tensors -> TensorDataset


def _make_optimizer(
    optimizer: str | torch.optim.Optimizer,
    params: Iterable[nn.Parameter],
    lr: float,
    weight_decay: float,
) -> torch.optim.Optimizer:
    """An optimizer by name (``OPTIMIZERS``), or the caller's own."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    cls = OPTIMIZERS.get(optimizer.lower())
    if cls is None:
        raise OptionsError(
            f"unknown optimizer {optimizer!r}; expected one of {', '.join(OPTIMIZERS)}"
        )
    return cls(params, lr=lr, weight_decay=weight_decay)


@dataclass
class Loaders:
    """Step 2's output: the DataLoaders and what the loop needs to know about them."""

    train: DataLoader[Any]
    valid: DataLoader[Any] | None
    sampler: DistributedSampler[Any] | None  # under DDP: set_epoch() before each epoch
    generator: torch.Generator  # the shuffle order (saved in the checkpoint)
    n_train: int


def _split(
    dataset: Dataset[Any],
    valid_data: Dataset[Any] | Sequence[torch.Tensor] | None,
    valid_fraction: float,
    seed: int,
) -> tuple[Dataset[Any], Dataset[Any] | None]:
    """(train, validation): ``valid_data``, or a random, seeded ``valid_fraction``."""
    if valid_data is not None:
        return dataset, _as_dataset(valid_data)
    if valid_fraction <= 0:
        return dataset, None
    n = len(dataset)  # type: ignore[arg-type]
    n_valid = max(1, round(n * valid_fraction))
    if n - n_valid < 1:
        raise OptionsError(f"{n} samples are too few for a {valid_fraction:.0%} validation split")
    split_gen = torch.Generator().manual_seed(seed)
    train_set, valid_set = random_split(dataset, [n - n_valid, n_valid], generator=split_gen)
    return train_set, valid_set


def make_loaders(
    train_data: Dataset[Any] | Sequence[torch.Tensor],
    *,
    valid_data: Dataset[Any] | Sequence[torch.Tensor] | None = None,
    valid_fraction: float = 0.2,
    batch_size: int = 32,
    shuffle: bool = True,
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    seed: int = 0,
    ctx: DistributedContext | None = None,
    device: torch.device | None = None,
) -> Loaders:
    """Step 2: Dataset + DataLoader, with a seeded random validation split. Under DDP each
    of the N processes reads its own shard, batch_size // N samples at a time."""
    ctx = ctx or DistributedContext()
    train_set, valid_set = _split(_as_dataset(train_data), valid_data, valid_fraction, seed)
    per_rank_batch = max(1, batch_size // ctx.world_size)
    generator = torch.Generator().manual_seed(seed)
    sampler: DistributedSampler[Any] | None = (
        DistributedSampler(train_set, ctx.world_size, ctx.rank, shuffle=shuffle, seed=seed)
        if ctx.enabled
        else None
    )
    train: DataLoader[Any] = DataLoader(
        train_set,
        batch_size=per_rank_batch,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        generator=generator,
        collate_fn=collate_fn,
        pin_memory=device is not None and device.type == "cuda",
    )
    valid: DataLoader[Any] | None = None
    if valid_set is not None:
        valid_sampler: DistributedSampler[Any] | None = (
            DistributedSampler(valid_set, ctx.world_size, ctx.rank, shuffle=False)
            if ctx.enabled
            else None
        )
        valid = DataLoader(
            valid_set,
            batch_size=per_rank_batch,
            sampler=valid_sampler,
            num_workers=num_workers,
            collate_fn=collate_fn,
        )
    return Loaders(train, valid, sampler, generator, len(train_set))  # type: ignore[arg-type]


def train_epoch(
    net: nn.Module,
    loader: DataLoader[Any],
    opt: torch.optim.Optimizer,
    loss_fn: Callable[..., torch.Tensor],
    state: TrainState,
    *,
    device: torch.device,
    loss_step: LossStep = default_loss_step,
    grad_accum_steps: int = 1,
    max_grad_norm: float | None = None,
    max_steps: int | None = None,
    on_batch: Callable[[int, float], None] | None = None,
) -> tuple[float, int]:
    """One pass over the training data, the loop of the notes. Counts optimizer steps in
    ``state.step``; stops early at ``max_steps``. Returns (sum of losses, samples seen)."""
    net.train()
    total, seen = 0.0, 0
    n_batches = len(loader)
    for i, batch in enumerate(loader):  # step 2: the DataLoader hands out batches
        batch = to_device(batch, device)
        n = _batch_len(batch)
        # Step 5: the loop. Clear old gradients, forward + loss (steps 3-4),
        # back-propagate, (optionally clip), update the weights. With gradient
        # accumulation, zero_grad/step happen once per grad_accum_steps batches and
        # each loss is scaled so the summed gradient is that of their mean.
        first_of_group = i % grad_accum_steps == 0
        group = min(grad_accum_steps, n_batches - (i - i % grad_accum_steps))
        if first_of_group:
            opt.zero_grad()  # optimizer.zero_grad()
        loss = loss_step(net, batch, loss_fn)  # steps 3-4: model(inputs), then loss_fn
        (loss / group if group > 1 else loss).backward()  # type: ignore[no-untyped-call]
        total += float(loss.item()) * n
        seen += n
        if (i + 1) % grad_accum_steps == 0 or i + 1 == n_batches:
            if max_grad_norm is not None:
                nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm)
            opt.step()  # optimizer.step()
            state.step += 1
        if on_batch is not None:
            on_batch(seen, total)
        if max_steps is not None and state.step >= max_steps:
            break
    return total, seen


def evaluate_loss(
    net: nn.Module,
    loader: DataLoader[Any],
    loss_fn: Callable[..., torch.Tensor],
    loss_step: LossStep,
    device: torch.device,
    ctx: DistributedContext,
) -> float:
    """The mean loss over ``loader`` without gradients (summed over every process)."""
    net.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            batch = to_device(batch, device)
            n = _batch_len(batch)
            total += float(loss_step(net, batch, loss_fn).item()) * n
            count += n
    return ctx.mean(total, count, device)


@dataclass(frozen=True)
class EarlyStopping:
    """Remember the best epoch (lowest validation loss, else training loss) and, with
    ``keep_best``, its weights; stop after ``patience`` epochs in a row without a new best."""

    patience: int | None = None
    keep_best: bool = False

    def update(self, state: TrainState, loss: float, model: nn.Module) -> bool:
        """Record the loss of epoch ``state.epoch``; True when training should stop."""
        history = state.history
        if history.best_valid_loss is None or loss < history.best_valid_loss:
            history.best_valid_loss, history.best_epoch, state.bad_epochs = loss, state.epoch, 0
            if self.keep_best:
                weights = {k: v.detach() for k, v in model.state_dict().items()}
                state.best_weights = copy.deepcopy(weights)
        else:
            state.bad_epochs += 1
        return self.patience is not None and state.bad_epochs >= self.patience


class _EpochBar:
    """The training progress bar: a line per epoch, redrawn at most five times a second
    (redrawing every batch would cost ~0.5 ms each)."""

    def __init__(self, enabled: bool, n_samples: int, epochs: int, world_size: int) -> None:
        self.bar = progress_bar(
            "epoch {task.fields[epoch]}/{task.fields[epochs]}",
            "{task.completed}/{task.total} samples",
            "loss {task.fields[loss]:.4g}  {task.fields[speed]:.0f} samples/s",
            enabled=enabled,
        )
        self.enabled, self.n_samples, self.epochs = enabled, n_samples, epochs
        self.world_size = world_size
        self.task: Any = None
        self.t0 = self.last_draw = 0.0
        self.seen, self.loss_sum = 0, 0.0

    def __enter__(self) -> _EpochBar:
        self.bar.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.bar.__exit__(exc_type, exc, tb)

    def start(self, epoch: int) -> None:
        """A new line for ``epoch``."""
        self.task = self.bar.add_task(
            "", total=self.n_samples, epoch=epoch, epochs=self.epochs, loss=math.nan, speed=0.0
        )
        self.t0 = self.last_draw = time.perf_counter()
        self.seen, self.loss_sum = 0, 0.0

    def batch_done(self, seen: int, loss_sum: float) -> None:
        """After a batch: samples so far, running mean loss and speed (all processes)."""
        self.seen, self.loss_sum = seen, loss_sum
        if self.enabled and (now := time.perf_counter()) - self.last_draw >= 0.2:
            self.last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        self.bar.update(
            self.task,
            completed=self.seen * self.world_size,
            loss=self.loss_sum / self.seen if self.seen else math.nan,
            speed=self.seen * self.world_size / max(now - self.t0, 1e-9),
        )

    def finish(self) -> None:
        """The epoch is over: a full bar with the epoch's mean loss and speed (an epoch
        shorter than one redraw interval is drawn only here)."""
        if self.enabled:
            self._draw(time.perf_counter())
            self.bar.update(self.task, completed=self.n_samples)


def _step_scheduler(sched: Scheduler | None, loss: float) -> None:
    """One scheduler step per epoch; ReduceLROnPlateau is given the monitored loss."""
    if sched is None:
        return
    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        sched.step(loss)
    else:
        sched.step()


def _check_counts(
    epochs: int, batch_size: int, grad_accum_steps: int, max_steps: int | None
) -> None:
    """Refuse counts that make no sense, before any work."""
    if epochs < 1 or batch_size < 1 or grad_accum_steps < 1:
        raise OptionsError("epochs, batch_size and grad_accum_steps must be >= 1")
    if max_steps is not None and max_steps < 1:
        raise OptionsError("max_steps must be >= 1")


def _start(device: str | torch.device) -> tuple[DistributedContext, torch.device]:
    """The process group (under torchrun) and this process's device."""
    ctx = DistributedContext.from_env()
    dev = resolve_device(device)
    if dev.type == "cuda" and ctx.enabled:
        dev = torch.device("cuda", ctx.local_rank)
    ctx.init(dev)
    return ctx, dev


def _place(model: nn.Module, dev: torch.device, ctx: DistributedContext) -> nn.Module:
    """The model on ``dev``; under torchrun wrapped in DistributedDataParallel."""
    model.to(dev)
    if not ctx.enabled:
        return model
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[dev.index] if dev.type == "cuda" else None
    )


def fit(
    model: nn.Module,
    train_data: Dataset[Any] | Sequence[torch.Tensor],
    *,
    loss_fn: Callable[..., torch.Tensor],
    optimizer: str | torch.optim.Optimizer = "adam",
    lr: float = 1e-3,
    epochs: int = 10,
    batch_size: int = 32,
    shuffle: bool = True,
    num_workers: int = 0,
    valid_fraction: float = 0.2,
    valid_data: Dataset[Any] | Sequence[torch.Tensor] | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    early_stopping_patience: int | None = None,
    max_grad_norm: float | None = None,
    callbacks: Sequence[Callback] = (),
    scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
    weight_decay: float = 0.0,
    checkpoint_dir: str | Path | None = None,
    resume: str | Path | None = None,
    output_dir: str | Path | None = None,
    progress: bool = True,
    loss_step: LossStep = default_loss_step,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    grad_accum_steps: int = 1,
    max_steps: int | None = None,
    restore_best: bool = False,
) -> History:
    """Train ``model`` on ``train_data`` and return its per-epoch :class:`History`.

    ``train_data`` is a Dataset or a sequence of tensors ``(inputs..., target)``. The
    validation set is ``valid_data`` or a random, seeded ``valid_fraction`` of the training
    data. With ``early_stopping_patience`` training stops after that many epochs without a
    better validation loss and the best weights are restored. ``checkpoint_dir`` gets an
    atomically written ``last.pt`` after every epoch; ``resume`` (that file or its directory)
    continues to the same result as an uninterrupted run. Under ``torchrun`` the model is
    wrapped in DistributedDataParallel, ``batch_size`` is the global batch (each of N
    processes takes batch_size // N) and only rank 0 writes files.

    ``grad_accum_steps`` adds up the gradients of that many batches before each optimizer
    step (an effective batch of batch_size * grad_accum_steps in the memory of one batch);
    ``max_steps`` stops after that many optimizer steps in all; ``restore_best`` keeps the
    weights of the epoch with the best validation loss even without early stopping.
    """
    _check_counts(epochs, batch_size, grad_accum_steps, max_steps)
    ctx, dev = _start(device)
    seed_everything(seed)

    # Step 2: Dataset + DataLoader, with a seeded random validation split.
    data = make_loaders(
        train_data, valid_data=valid_data, valid_fraction=valid_fraction,
        batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
        collate_fn=collate_fn, seed=seed, ctx=ctx, device=dev,
    )  # fmt: skip
    # Step 3 is the caller's nn.Module; move it to the device (and wrap it for DDP).
    net = _place(model, dev, ctx)
    # Step 5 (set-up): the optimizer and an optional learning-rate scheduler.
    opt = _make_optimizer(optimizer, model.parameters(), lr, weight_decay)
    sched = scheduler(opt) if scheduler is not None else None

    live = Trainables(model, opt, sched, data.generator)  # what the checkpoint saves besides
    state = TrainState(seed=seed)
    if resume is not None:
        state = TrainState.load(existing_checkpoint(resume), dev)
        state.restore(live)
    keep_best = restore_best or early_stopping_patience is not None
    stopper = EarlyStopping(early_stopping_patience, keep_best)
    with _EpochBar(progress and ctx.is_main, data.n_train, epochs, ctx.world_size) as bar:
        for epoch in range(state.epoch + 1, epochs + 1):
            if max_steps is not None and state.step >= max_steps:
                break
            if data.sampler is not None:
                data.sampler.set_epoch(epoch)
            bar.start(epoch)
            t0 = time.perf_counter()
            loss_sum, seen = train_epoch(
                net, data.train, opt, loss_fn, state, device=dev, loss_step=loss_step,
                grad_accum_steps=grad_accum_steps, max_grad_norm=max_grad_norm,
                max_steps=max_steps, on_batch=bar.batch_done,
            )  # fmt: skip
            train_time = time.perf_counter() - t0
            train_loss = ctx.mean(loss_sum, seen, dev)
            valid_loss = (
                evaluate_loss(net, data.valid, loss_fn, loss_step, dev, ctx)
                if data.valid is not None
                else None
            )
            monitored = valid_loss if valid_loss is not None else train_loss
            _step_scheduler(sched, monitored)
            stats = EpochStats(
                epoch=epoch,
                train_loss=train_loss,
                valid_loss=valid_loss,
                lr=float(opt.param_groups[0]["lr"]),
                time_s=time.perf_counter() - t0,
                samples_per_s=seen * ctx.world_size / max(train_time, 1e-9),
            )
            state.history.epochs.append(stats)
            state.epoch = epoch

            # Early stopping: remember the best weights; stop after `patience` worse epochs.
            stop = stopper.update(state, monitored, model)
            state.history.stopped_early = stop and epoch < epochs
            if checkpoint_dir is not None and ctx.is_main:
                state.save_checkpoint(checkpoint_dir, live)
            ctx.barrier()
            stop = any([callback(stats, model) for callback in callbacks]) or stop
            bar.finish()
            if stop:
                break

    if stopper.keep_best and state.best_weights is not None:
        model.load_state_dict(state.best_weights)  # "until the loss is minimal": the best epoch
    if output_dir is not None and ctx.is_main:
        state.history.save(output_dir)
    return state.history
