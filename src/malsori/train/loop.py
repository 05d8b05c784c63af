"""``fit``: the five-step PyTorch workflow, written out, plus what a real trainer needs
(validation split, early stopping, checkpoints with exact resume, progress, DDP).

The steps, as in the original notes:

1. data as tensors                       -> the caller's ``train_data`` (tensors or a Dataset)
2. ``TensorDataset`` + ``DataLoader``     -> built here (batch_size, shuffle, num_workers)
3. a model, an ``nn.Module``             -> the caller's ``model``
4. a loss such as ``nn.MSELoss``          -> the caller's ``loss_fn``
5. an optimizer and the loop             -> built here: zero_grad(); backward(); step()
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset, random_split

from .._atomic import atomic_open
from ..errors import MalsoriError, OptionsError
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
CHECKPOINT = "last.pt"


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
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _batch_len(batch: Any) -> int:
    first = next(iter(batch.values())) if isinstance(batch, Mapping) else batch[0]
    return int(first.shape[0])


def _as_dataset(data: Dataset[Any] | Sequence[torch.Tensor]) -> Dataset[Any]:
    if isinstance(data, Dataset):
        return data
    return TensorDataset(*data)  # step 2: tensors -> TensorDataset


def _make_optimizer(
    optimizer: str | torch.optim.Optimizer,
    params: Iterable[nn.Parameter],
    lr: float,
    weight_decay: float,
) -> torch.optim.Optimizer:
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    cls = OPTIMIZERS.get(optimizer.lower())
    if cls is None:
        raise OptionsError(
            f"unknown optimizer {optimizer!r}; expected one of {', '.join(OPTIMIZERS)}"
        )
    return cls(params, lr=lr, weight_decay=weight_decay)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _checkpoint_path(resume: str | Path) -> Path:
    path = Path(resume)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise MalsoriError(f"cannot resume: no checkpoint at {path}")
    return path


def _evaluate(
    model: nn.Module,
    loader: DataLoader[Any],
    loss_fn: Callable[..., torch.Tensor],
    loss_step: LossStep,
    device: torch.device,
    ctx: DistributedContext,
) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            batch = to_device(batch, device)
            n = _batch_len(batch)
            total += float(loss_step(model, batch, loss_fn).item()) * n
            count += n
    total = ctx.all_reduce_sum(total, device)
    count = int(ctx.all_reduce_sum(float(count), device))
    return total / max(count, 1)


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
    if epochs < 1 or batch_size < 1 or grad_accum_steps < 1:
        raise OptionsError("epochs, batch_size and grad_accum_steps must be >= 1")
    if max_steps is not None and max_steps < 1:
        raise OptionsError("max_steps must be >= 1")
    keep_best = restore_best or early_stopping_patience is not None
    ctx = DistributedContext.from_env()
    dev = resolve_device(device)
    if dev.type == "cuda" and ctx.enabled:
        dev = torch.device("cuda", ctx.local_rank)
    ctx.init(dev)
    seed_everything(seed)

    # Step 2: Dataset + DataLoader, with a seeded random validation split.
    dataset = _as_dataset(train_data)
    if valid_data is not None:
        train_set, valid_set = dataset, _as_dataset(valid_data)
    elif valid_fraction > 0:
        n = len(dataset)  # type: ignore[arg-type]
        n_valid = max(1, round(n * valid_fraction))
        if n - n_valid < 1:
            raise OptionsError(
                f"{n} samples are too few for a {valid_fraction:.0%} validation split"
            )
        split_gen = torch.Generator().manual_seed(seed)
        train_set, valid_set = random_split(dataset, [n - n_valid, n_valid], generator=split_gen)
    else:
        train_set, valid_set = dataset, None
    per_rank_batch = max(1, batch_size // ctx.world_size)
    loader_gen = torch.Generator().manual_seed(seed)
    sampler: DistributedSampler[Any] | None = (
        DistributedSampler(train_set, ctx.world_size, ctx.rank, shuffle=shuffle, seed=seed)
        if ctx.enabled
        else None
    )
    train_loader: DataLoader[Any] = DataLoader(
        train_set,
        batch_size=per_rank_batch,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        generator=loader_gen,
        collate_fn=collate_fn,
        pin_memory=dev.type == "cuda",
    )
    valid_loader: DataLoader[Any] | None = None
    if valid_set is not None:
        valid_sampler: DistributedSampler[Any] | None = (
            DistributedSampler(valid_set, ctx.world_size, ctx.rank, shuffle=False)
            if ctx.enabled
            else None
        )
        valid_loader = DataLoader(
            valid_set,
            batch_size=per_rank_batch,
            sampler=valid_sampler,
            num_workers=num_workers,
            collate_fn=collate_fn,
        )

    # Step 3 is the caller's nn.Module; move it to the device (and wrap it for DDP).
    model.to(dev)
    net: nn.Module = model
    if ctx.enabled:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None
        )

    # Step 5 (set-up): the optimizer and an optional learning-rate scheduler.
    opt = _make_optimizer(optimizer, model.parameters(), lr, weight_decay)
    sched = scheduler(opt) if scheduler is not None else None

    history = History()
    start_epoch = 1
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs = 0
    steps = 0  # optimizer steps taken, across epochs
    if resume is not None:
        ckpt = torch.load(_checkpoint_path(resume), map_location=dev, weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if sched is not None and ckpt.get("scheduler") is not None:
            sched.load_state_dict(ckpt["scheduler"])
        history = History.from_dict(ckpt["history"])
        best_state, bad_epochs = ckpt["best_state"], ckpt["bad_epochs"]
        loader_gen.set_state(ckpt["loader_generator"])
        _set_rng_state(ckpt["rng"])
        start_epoch = ckpt["epoch"] + 1
        steps = int(ckpt.get("steps", 0))

    show = progress and ctx.is_main
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} samples"),
        TextColumn("loss {task.fields[loss]:.4g}  {task.fields[speed]:.0f} samples/s"),
        TimeRemainingColumn(),
        disable=not show,
        transient=False,
    )
    n_train = len(train_set)  # type: ignore[arg-type]
    with bar:
        for epoch in range(start_epoch, epochs + 1):
            if max_steps is not None and steps >= max_steps:
                break
            task = bar.add_task(
                "", total=n_train, epoch=epoch, epochs=epochs, loss=math.nan, speed=0.0
            )
            if sampler is not None:
                sampler.set_epoch(epoch)
            net.train()
            t0 = time.perf_counter()
            total, seen = 0.0, 0
            last_draw = t0
            n_batches = len(train_loader)
            for i, batch in enumerate(train_loader):
                batch = to_device(batch, dev)
                n = _batch_len(batch)
                # Step 5: the loop. Clear old gradients, forward + loss (steps 3-4),
                # back-propagate, (optionally clip), update the weights. With gradient
                # accumulation, zero_grad/step happen once per grad_accum_steps batches and
                # each loss is scaled so the summed gradient is that of their mean.
                first_of_group = i % grad_accum_steps == 0
                group = min(grad_accum_steps, n_batches - (i - i % grad_accum_steps))
                if first_of_group:
                    opt.zero_grad()
                loss = loss_step(net, batch, loss_fn)
                (loss / group if group > 1 else loss).backward()  # type: ignore[no-untyped-call]
                total += float(loss.item()) * n
                seen += n
                if (i + 1) % grad_accum_steps == 0 or i + 1 == n_batches:
                    if max_grad_norm is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
                    opt.step()
                    steps += 1
                if show and (now := time.perf_counter()) - last_draw >= 0.2:
                    # Redrawing every batch would cost ~0.5 ms each: update 5 times a second.
                    last_draw = now
                    bar.update(
                        task,
                        completed=seen * ctx.world_size,
                        loss=total / seen,
                        speed=seen * ctx.world_size / max(now - t0, 1e-9),
                    )
                if max_steps is not None and steps >= max_steps:
                    break
            train_time = time.perf_counter() - t0
            train_loss = ctx.all_reduce_sum(total, dev) / max(
                ctx.all_reduce_sum(float(seen), dev), 1
            )
            valid_loss = (
                _evaluate(net, valid_loader, loss_fn, loss_step, dev, ctx)
                if valid_loader is not None
                else None
            )
            if sched is not None:
                if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    sched.step(valid_loss if valid_loss is not None else train_loss)
                else:
                    sched.step()
            stats = EpochStats(
                epoch=epoch,
                train_loss=train_loss,
                valid_loss=valid_loss,
                lr=float(opt.param_groups[0]["lr"]),
                time_s=time.perf_counter() - t0,
                samples_per_s=seen * ctx.world_size / max(train_time, 1e-9),
            )
            history.epochs.append(stats)

            # Early stopping: remember the best weights; stop after `patience` worse epochs.
            monitored = valid_loss if valid_loss is not None else train_loss
            if history.best_valid_loss is None or monitored < history.best_valid_loss:
                history.best_valid_loss, history.best_epoch, bad_epochs = monitored, epoch, 0
                if keep_best:
                    best_state = copy.deepcopy(
                        {k: v.detach() for k, v in model.state_dict().items()}
                    )
            else:
                bad_epochs += 1
            stop = early_stopping_patience is not None and bad_epochs >= early_stopping_patience
            history.stopped_early = stop and epoch < epochs

            if checkpoint_dir is not None and ctx.is_main:
                Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
                with atomic_open(Path(checkpoint_dir) / CHECKPOINT, "wb") as fh:
                    torch.save(
                        {
                            "epoch": epoch,
                            "model": model.state_dict(),
                            "optimizer": opt.state_dict(),
                            "scheduler": sched.state_dict() if sched is not None else None,
                            "history": history.to_dict(),
                            "best_state": best_state,
                            "bad_epochs": bad_epochs,
                            "steps": steps,
                            "loader_generator": loader_gen.get_state(),
                            "rng": _rng_state(),
                            "seed": seed,
                        },
                        fh,
                    )
            ctx.barrier()
            for callback in callbacks:
                if callback(stats, model):
                    stop = True
            bar.update(task, completed=n_train)
            if stop:
                break

    if keep_best and best_state is not None:
        model.load_state_dict(best_state)  # "until the loss is minimal": keep the best epoch
    if output_dir is not None and ctx.is_main:
        history.save(output_dir)
    return history
