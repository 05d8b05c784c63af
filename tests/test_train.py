"""malsori.train: the trainer recovers known coefficients, early stopping restores the best
weights, resume equals an uninterrupted run, torchrun matches one process, and bad CSVs get
clear errors. Real training on small data; no mocks."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from malsori.errors import CheckpointError
from malsori.train import EpochStats, TrainState, checkpoint_path, fit
from malsori.train.regression import MLP, linear_coefficients, load_regression, train_regression

Run = Callable[..., subprocess.CompletedProcess[str]]


def linear_data(n: int = 600, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = 3 * x[:, :1] - 2 * x[:, 1:] + 1 + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


def write_csv(
    path: Path, x: np.ndarray, y: np.ndarray, names: tuple[str, ...] = ("x1", "x2", "y")
) -> Path:
    with open(path, "w") as fh:
        fh.write(",".join(names) + "\n")
        for row, target in zip(x, y, strict=True):
            fh.write(",".join(f"{v:.6f}" for v in (*row, *np.atleast_1d(target))) + "\n")
    return path


@pytest.mark.parametrize(("optimizer", "lr"), [("sgd", 0.05), ("adam", 0.05)])
def test_linear_model_recovers_coefficients(optimizer: str, lr: float) -> None:
    x, y = linear_data()
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    history = fit(
        model,
        (x, y),
        loss_fn=nn.MSELoss(),
        optimizer=optimizer,
        lr=lr,
        epochs=40,
        batch_size=32,
        progress=False,
    )
    w, b = model.weight.detach()[0], model.bias.detach()[0]
    assert abs(w[0] - 3) < 0.05 and abs(w[1] + 2) < 0.05 and abs(b - 1) < 0.05, (w, b)
    assert history.train_loss[-1] < history.train_loss[0] / 10
    assert all(v is not None for v in history.valid_loss)
    assert len(history.epochs) == 40 and history.epochs[-1].samples_per_s > 0


def test_mlp_fits_nonlinear_function_better_than_linear() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(800, 2, generator=g) * 4 - 2
    y = torch.sin(2 * x[:, :1]) + x[:, 1:] ** 2
    losses = {}
    for name, hidden in (("linear", []), ("mlp", [32, 32])):
        torch.manual_seed(0)
        history = fit(
            MLP(2, hidden),
            (x, y),
            loss_fn=nn.MSELoss(),
            lr=0.01,
            epochs=60,
            batch_size=32,
            progress=False,
            early_stopping_patience=10,
        )
        assert history.best_valid_loss is not None
        losses[name] = history.best_valid_loss
    assert losses["mlp"] < losses["linear"] / 5, losses


def test_validation_split_is_random_and_seeded() -> None:
    # y = row index: a "last 20%" split would have validation targets all >= 80.
    x = torch.arange(100, dtype=torch.float32).unsqueeze(1)
    seen: list[float] = []

    def spy(
        model: nn.Module, batch: tuple[torch.Tensor, ...], loss_fn: Callable[..., torch.Tensor]
    ) -> torch.Tensor:
        if not model.training:
            seen.extend(batch[1][:, 0].tolist())
        return loss_fn(model(batch[0]), batch[1])

    validation_targets: list[list[float]] = []
    for _ in range(2):
        seen.clear()
        fit(nn.Linear(1, 1), (x, x.clone()), loss_fn=nn.MSELoss(), epochs=1, progress=False,
            loss_step=spy, seed=3)  # fmt: skip
        validation_targets.append(sorted(seen))
    first, second = validation_targets
    assert second == first and len(first) == 20
    assert min(first) < 80, "validation rows must be drawn at random, not the last 20%"


def test_early_stopping_stops_and_restores_best_weights() -> None:
    # A big MLP on 40 noisy points overfits: validation loss turns up and training stops.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g)
    y = x[:, :1] + torch.randn(40, 1, generator=g)
    torch.manual_seed(0)
    model = MLP(3, [256, 256])
    history = fit(
        model,
        (x, y),
        loss_fn=nn.MSELoss(),
        lr=0.01,
        epochs=300,
        batch_size=8,
        early_stopping_patience=5,
        progress=False,
        seed=0,
    )
    assert history.stopped_early and len(history.epochs) < 300
    assert history.best_epoch == len(history.epochs) - 5
    assert history.valid_loss[-1] > history.best_valid_loss  # type: ignore[operator]
    # The returned weights are the best epoch's: re-evaluating gives the best validation loss.
    split = torch.utils.data.random_split(
        range(40), [32, 8], generator=torch.Generator().manual_seed(0)
    )
    idx = list(split[1])
    with torch.no_grad():
        valid_loss = nn.MSELoss()(model(x[idx]), y[idx]).item()
    assert valid_loss == pytest.approx(history.best_valid_loss, rel=1e-5)


class Interrupt(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path: Path) -> None:
    x, y = linear_data(300)

    def make() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(2, 16), nn.Dropout(0.2), nn.ReLU(), nn.Linear(16, 1))

    kwargs = dict(
        loss_fn=nn.MSELoss(),
        optimizer="adam",
        lr=0.01,
        epochs=6,
        batch_size=16,
        progress=False,
        seed=7,
        early_stopping_patience=10,
        scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5),
    )
    full = make()
    full_history = fit(full, (x, y), **kwargs)  # type: ignore[arg-type]

    def stop_after_3(stats: EpochStats, model: nn.Module) -> None:
        if stats.epoch == 3:
            raise Interrupt

    part = make()
    with pytest.raises(Interrupt):
        fit(part, (x, y), checkpoint_dir=tmp_path, callbacks=[stop_after_3], **kwargs)  # type: ignore[arg-type]
    assert (tmp_path / "last.pt").is_file() and not list(tmp_path.glob("*.tmp"))
    resumed = make()
    history = fit(resumed, (x, y), checkpoint_dir=tmp_path, resume=tmp_path, **kwargs)  # type: ignore[arg-type]
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert history.train_loss == full_history.train_loss
    assert [e.lr for e in history.epochs] == [e.lr for e in full_history.epochs]


def test_format_1_checkpoint_resumes_and_unknown_formats_are_refused(tmp_path: Path) -> None:
    """A checkpoint in the unversioned 11-key layout of malsori 0.1 resumes to the same
    weights as an uninterrupted run; an unknown format is one line, not a traceback."""
    x, y = linear_data(200)

    def make() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.2), nn.ReLU(), nn.Linear(8, 1))

    kwargs = dict(loss_fn=nn.MSELoss(), lr=0.01, batch_size=16, progress=False, seed=3)
    full = make()
    fit(full, (x, y), epochs=4, **kwargs)  # type: ignore[arg-type]
    fit(make(), (x, y), epochs=2, checkpoint_dir=tmp_path, **kwargs)  # type: ignore[arg-type]
    new = torch.load(tmp_path / "last.pt", weights_only=False)
    old = {
        "epoch": new["epoch"],
        "model": new["model"],
        "optimizer": new["optimizer"],
        "scheduler": new["scheduler"],
        "history": new["history"],
        "best_state": new["best_weights"],
        "bad_epochs": new["bad_epochs"],
        "steps": new["step"],
        "loader_generator": new["loader_rng"],
        "rng": new["rng"],
        "seed": new["seed"],
    }
    torch.save(old, tmp_path / "old.pt")
    resumed = make()
    fit(resumed, (x, y), epochs=4, resume=tmp_path / "old.pt", **kwargs)  # type: ignore[arg-type]
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    torch.save({**new, "format": 99}, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match=r"format 99 is not one this malsori reads"):
        fit(make(), (x, y), epochs=4, resume=tmp_path / "future.pt", **kwargs)  # type: ignore[arg-type]
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        fit(make(), (x, y), epochs=4, resume=tmp_path / "garbage.pt", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        fit(make(), (x, y), epochs=4, resume=tmp_path / "none", **kwargs)  # type: ignore[arg-type]


def test_gradient_accumulation_equals_the_larger_batch() -> None:
    """batch 4 x 2 accumulated steps == batch 8 (mean loss): same SGD weights."""
    x, y = linear_data(64)

    def run(batch_size: int, accum: int) -> nn.Module:
        torch.manual_seed(0)
        model = nn.Linear(2, 1)
        fit(
            model, (x, y), loss_fn=nn.MSELoss(), optimizer="sgd", lr=0.1, epochs=3,
            batch_size=batch_size, grad_accum_steps=accum, shuffle=False, valid_fraction=0,
            progress=False,
        )  # fmt: skip
        return model

    big, accumulated, plain = run(8, 1), run(4, 2), run(4, 1)
    for a, b, c in zip(big.parameters(), accumulated.parameters(), plain.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
        assert not torch.allclose(a, c, atol=1e-4)  # twice the steps: really different


def test_max_steps_stops_mid_epoch_and_resume_respects_it(tmp_path: Path) -> None:
    x, y = linear_data(64)
    seen: list[int] = []

    def model() -> nn.Module:
        torch.manual_seed(0)
        return nn.Linear(2, 1)

    kwargs = dict(loss_fn=nn.MSELoss(), epochs=10, batch_size=16, valid_fraction=0,
                  progress=False, max_steps=6, checkpoint_dir=tmp_path)  # fmt: skip
    history = fit(model(), (x, y), callbacks=[lambda s, m: seen.append(s.epoch)], **kwargs)  # type: ignore[arg-type]
    # 4 steps per epoch: epoch 1 takes 4, epoch 2 stops after 2 more.
    assert [e.epoch for e in history.epochs] == [1, 2] == seen
    assert TrainState.load(checkpoint_path(tmp_path)).step == 6
    again = fit(model(), (x, y), resume=tmp_path, **kwargs)  # type: ignore[arg-type]
    assert len(again.epochs) == 2  # nothing left to do


def test_history_files(tmp_path: Path) -> None:
    x, y = linear_data(200)
    fit(
        nn.Linear(2, 1), (x, y), loss_fn=nn.MSELoss(), epochs=3, progress=False, output_dir=tmp_path
    )
    data = json.loads((tmp_path / "history.json").read_text())
    assert [e["epoch"] for e in data["epochs"]] == [1, 2, 3]
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines[0].split(",")[:3] == ["epoch", "train_loss", "valid_loss"] and len(lines) == 4
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the regression recipe and its CLI ---------------------------------------------------


@pytest.fixture(scope="module")
def linear_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x, y = linear_data(400, seed=2)
    return write_csv(tmp_path_factory.mktemp("csv") / "linear.csv", x.numpy(), y.numpy())


def test_regression_recipe_saves_a_usable_model(linear_csv: Path, tmp_path: Path) -> None:
    result = train_regression(
        linear_csv, target="y", hidden="", epochs=60, output_dir=tmp_path, progress=False
    )
    assert result.metrics["r2"] > 0.99
    model, config = load_regression(tmp_path)
    coef, intercept = linear_coefficients(model, config)
    assert abs(coef[0] - 3) < 0.05 and abs(coef[1] + 2) < 0.05 and abs(intercept - 1) < 0.05
    assert {"model.pt", "config.json", "history.csv", "history.json", "loss.png"} <= {
        p.name for p in tmp_path.iterdir()
    }


def test_train_and_predict_cli(run_cli: Run, linear_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    proc = run_cli(
        "train",
        "regression",
        str(linear_csv),
        "--target",
        "y",
        "--hidden",
        "16",
        "--epochs",
        "40",
        "--output",
        str(out),
        env={"COLUMNS": "150"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "validation RMSE" in proc.stdout and "R2 0.99" in proc.stdout
    assert "(best " in proc.stdout and " on cpu" in proc.stdout  # where it trained
    # Every epoch line shows the epoch's loss and speed, also when the epoch is shorter than
    # the bar's redraw interval (it showed "loss nan  0 samples/s" then).
    epochs = [ln for ln in proc.stderr.splitlines() if ln.startswith("epoch ")]
    assert len(epochs) == 40, proc.stderr
    losses = [float(re.search(r"loss (\S+)", ln)[1]) for ln in epochs]  # type: ignore[index]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0], epochs
    pred_file = tmp_path / "pred.csv"
    proc = run_cli("predict", str(out), str(linear_csv), "-o", str(pred_file))
    assert proc.returncode == 0, proc.stderr
    rows = [line.split(",") for line in pred_file.read_text().splitlines()]
    assert rows[0] == ["x1", "x2", "y", "predicted_y"]
    err = [abs(float(r[2]) - float(r[3])) for r in rows[1:]]
    assert len(err) == 400 and sum(err) / len(err) < 0.2


def test_torchrun_two_processes_matches_single_process(linear_csv: Path, tmp_path: Path) -> None:
    common = [
        "train",
        "regression",
        str(linear_csv),
        "--target",
        "y",
        "--hidden",
        "",
        "--epochs",
        "40",
        "--patience",
        "0",
        "-q",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = subprocess.run(
        [sys.executable, "-m", "malsori.cli", *common, "--output", str(tmp_path / "one")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "-m",
            "malsori.cli",
            *common,
            "--output",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr
    assert ddp.stdout.count("validation RMSE") == 1  # only rank 0 prints
    coefs = []
    for d in ("one", "two"):
        model, config = load_regression(tmp_path / d)
        coef, intercept = linear_coefficients(model, config)
        coefs.append([*coef.tolist(), intercept])
    assert np.allclose(coefs[0], coefs[1], atol=0.03), coefs
    assert np.allclose(coefs[1], [3, -2, 1], atol=0.05), coefs


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("", (), "the file is empty"),
        ("x1,x2,y\n", (), "no data rows"),
        ("x1,x2,z\n1,2,3\n" * 1, (), "target column 'y' not found; columns are: x1, x2, z"),
        (
            "x1,x2,y\n" + "1,2,3\n" * 40 + "1,abc,3\n",
            (),
            ":42: column 'x2' has non-numeric value 'abc'",
        ),
        ("x1,x2,y\n" + "1,2,3\n" * 40 + "1,nan,3\n", (), "NaN/inf not allowed"),
        ("x1,x2,y\n" + "1,,3\n" * 40, (), ":2: column 'x2' has an empty cell"),
        ("x1,x2,y\n" + "1,2,3\n" * 10, ("--batch-size", "32"), "fewer than the batch size 32"),
        ("x1,x2,y\n" + "1,2,3\n" * 40, ("--features", "x1,x9"), "column(s) 'x9' not found"),
        ("x1,x2,y\n" + "1,2,3\n" * 40, ("--hidden", "a,b"), "--hidden must be comma-separated"),
    ],
)
def test_bad_csv_inputs(
    run_cli: Run, tmp_path: Path, content: str, args: tuple[str, ...], message: str
) -> None:
    data = tmp_path / "data.csv"
    data.write_text(content)
    proc = run_cli(
        "train",
        "regression",
        str(data),
        "--target",
        "y",
        "--epochs",
        "1",
        "-q",
        "--output",
        str(tmp_path / "m"),
        *args,
    )
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "m").exists()


def test_predict_errors(run_cli: Run, tmp_path: Path) -> None:
    proc = run_cli("predict", str(tmp_path), str(tmp_path / "x.csv"))
    assert proc.returncode == 1 and "not a malsori regression model directory" in proc.stderr


def _train_cli(run_cli: Run, data: Path, out: Path, *args: str, **kw: object):  # type: ignore[no-untyped-def]
    return run_cli(
        "train", "regression", str(data), "--target", "y", "--epochs", "3", "-q",
        "--output", str(out), *args, **kw,
    )  # fmt: skip


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_train_output_never_writes_over_files_it_did_not_make(
    run_cli: Run, linear_csv: Path, tmp_path: Path
) -> None:
    """`--output` into a Whisper model's folder replaced its config.json (the model was
    broken after); into a project folder, the user's config.json, history.csv and loss.png.
    Both are refused now, before training; a folder holding this recipe's model is reused."""
    whisper = tmp_path / "whisper-model"
    whisper.mkdir()
    (whisper / "config.json").write_text('{"alignment_heads": [[1, 0]], "lang_ids": []}')
    (whisper / "model.bin").write_bytes(b"\0" * 64)
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.json").write_text('{"mine": true}')
    (project / "history.csv").write_text("my,own\n1,2\n")
    for folder in (whisper, project):
        before = _contents(folder)
        proc = _train_cli(run_cli, linear_csv, folder)
        assert proc.returncode == 1, proc.stderr
        assert "not a model of 'malsori train regression'" in proc.stderr, proc.stderr
        assert "epoch" not in proc.stderr  # refused before training, not after
        assert _contents(folder) == before
    a_file = tmp_path / "a_file"
    a_file.write_text("keep")
    proc = _train_cli(run_cli, linear_csv, a_file)
    assert proc.returncode == 1 and "is a file" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and a_file.read_text() == "keep"
    # its own model: replaced by the rerun (another architecture), a note beside it kept
    model = tmp_path / "model"
    assert _train_cli(run_cli, linear_csv, model, "--hidden", "8").returncode == 0
    (model / "notes.txt").write_text("mine")
    proc = _train_cli(run_cli, linear_csv, model, "--hidden", "")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((model / "config.json").read_text())["hidden"] == []
    assert (model / "notes.txt").read_text() == "mine"


def test_a_second_training_into_a_held_folder_is_refused(
    run_cli: Run, linear_csv: Path, tmp_path: Path
) -> None:
    """Two runs into one folder both said "saved model to ..."; the last writer won, and
    loss.png could come from the other run. A run holds its folder; a second one is refused
    at once (here the first holder is this test, holding the same lock a run takes)."""
    import fcntl

    out = tmp_path / "model"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        proc = _train_cli(run_cli, linear_csv, out)
        assert proc.returncode == 1, proc.stderr
        assert "another 'malsori train' run is saving into" in proc.stderr, proc.stderr
        assert list(out.iterdir()) == []
    finally:
        os.close(fd)
    assert _train_cli(run_cli, linear_csv, out).returncode == 0  # released: it runs


def test_a_failed_save_keeps_the_previous_model_whole(
    run_cli: Run, linear_csv: Path, tmp_path: Path
) -> None:
    """A rerun that hit a file-size limit while saving exited 1, but model.pt and
    config.json were already the new run's while loss.png was the old one's: a model mixed
    from two runs that the user believed untouched. All five files are written or none."""
    import resource

    model = tmp_path / "model"
    assert _train_cli(run_cli, linear_csv, model, "--hidden", "").returncode == 0
    before = _contents(model)
    limit = max(len(v) for v in before.values()) // 2  # the plot does not fit, the rest does
    assert sorted(len(v) < limit for v in before.values()).count(True) >= 3

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [sys.executable, "-m", "malsori.cli", "train", "regression", str(linear_csv),
         "--target", "y", "--epochs", "5", "--hidden", "", "--lr", "0.02", "-q",
         "--output", str(model)],
        capture_output=True, text=True, preexec_fn=small_files, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "file too large writing" in proc.stderr and str(model) in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert _contents(model) == before


def test_values_float32_cannot_hold_and_diverged_training_save_nothing(
    run_cli: Run, linear_csv: Path, tmp_path: Path
) -> None:
    """1e300 passed the finite check and became inf in float32: RMSE nan, predictions nan,
    a config.json with NaN (not JSON), exit 0, over a previous good model."""
    huge = tmp_path / "huge.csv"
    huge.write_text("x1,x2,y\n" + "1,2,3\n" * 40 + "1e300,2,3\n")
    out = tmp_path / "m"
    proc = _train_cli(run_cli, huge, tmp_path / "deep" / "a" / "b")
    assert proc.returncode == 1 and "huge.csv:42: column 'x1' is 1e300" in proc.stderr, proc.stderr
    assert not (tmp_path / "deep").exists()  # refused before any folder was made
    # one validation row: R2 is undefined (NaN) without anything having diverged
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("x1,x2,y\n" + "".join(f"{i},{i % 3},{2 * i}\n" for i in range(10)))
    proc = _train_cli(run_cli, tiny, out, "--valid-fraction", "0.1", "--batch-size", "4")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "config.json").read_text())["metrics"]["r2"] is None
    out = tmp_path / "m2"
    proc = _train_cli(run_cli, linear_csv, out, "--optimizer", "sgd", "--lr", "1e12")
    assert proc.returncode == 1, proc.stderr
    assert "training diverged" in proc.stderr and "nothing was saved" in proc.stderr
    assert not out.exists()


def test_utf16_csv_from_excel_is_read(run_cli: Run, linear_csv: Path, tmp_path: Path) -> None:
    """Excel's "Unicode text" export is UTF-16 with a BOM: a UnicodeDecodeError traceback."""
    utf16 = tmp_path / "utf16.csv"
    utf16.write_text(linear_csv.read_text(), encoding="utf-16")
    proc = _train_cli(run_cli, utf16, tmp_path / "m")
    assert proc.returncode == 0, proc.stderr
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"x1,x2,y\n" + b"1,2,3\n" * 40 + "\xe9,2,3\n".encode("latin-1"))
    proc = _train_cli(run_cli, latin, tmp_path / "m2")
    assert proc.returncode == 1 and "not a UTF-8 (or UTF-16) text file" in proc.stderr, proc.stderr


def test_predict_output_keeps_inputs_and_other_files(
    run_cli: Run, linear_csv: Path, tmp_path: Path
) -> None:
    """`predict -o keep.csv` replaced any file, `-o DATA.csv` the input itself; and predict
    run on its own output added a second predicted_y column."""
    model = tmp_path / "model"
    assert _train_cli(run_cli, linear_csv, model, "--hidden", "").returncode == 0
    data = tmp_path / "data.csv"
    data.write_text(linear_csv.read_text())
    keep = tmp_path / "keep.csv"
    keep.write_text("precious\n")
    proc = run_cli("predict", str(model), str(data), "-o", str(data))
    assert proc.returncode == 1 and "is the input" in proc.stderr, proc.stderr
    assert data.read_text() == linear_csv.read_text()
    proc = run_cli("predict", str(model), str(data), "-o", str(keep))
    assert proc.returncode == 1 and "--overwrite" in proc.stderr, proc.stderr
    assert keep.read_text() == "precious\n"
    proc = run_cli("predict", str(model), str(data), "-o", str(keep), "--overwrite")
    assert proc.returncode == 0, proc.stderr
    again = tmp_path / "again.csv"
    proc = run_cli("predict", str(model), str(keep), "-o", str(again))
    assert proc.returncode == 0, proc.stderr
    assert again.read_text().splitlines()[0] == "x1,x2,y,predicted_y"
    assert "its values are replaced" in proc.stderr
    assert again.read_text() == keep.read_text()


def test_second_round_of_train_and_predict_findings(
    run_cli: Run, linear_csv: Path, tmp_path: Path
) -> None:
    """A hostile tester's second round: an unwritable --output failed only after training;
    Excel's tab-separated "Unicode text" and semicolon CSVs were one column; a damaged model
    folder was a traceback in predict; values of 1e20 overflowed float32 statistics; --lr
    nan was a traceback; `-o -` wrote a file named "-"."""
    # an output folder that cannot be written (chattr +i): refused before training
    locked = tmp_path / "locked"
    locked.mkdir()
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        proc = _train_cli(run_cli, linear_csv, locked, "--epochs", "200")
        assert proc.returncode == 1 and "cannot write" in proc.stderr, proc.stderr
        assert "epoch" not in proc.stderr and "Traceback" not in proc.stderr
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    rows = [line.split(",") for line in linear_csv.read_text().splitlines()]
    for name, sep, encoding in (("tabs.txt", "\t", "utf-16"), ("semi.csv", ";", "utf-8")):
        data = tmp_path / name
        data.write_text("\r\n".join(sep.join(r) for r in rows) + "\r\n", encoding=encoding)
        proc = _train_cli(run_cli, data, tmp_path / f"m-{name}")
        assert proc.returncode == 0, (name, proc.stderr)
    # values of 1e20: fine in float32, not squared in it
    big = tmp_path / "big.csv"
    big.write_text("x1,x2,y\n" + "".join(f"{i * 1e20},{i % 7},{3 * i}\n" for i in range(60)))
    proc = _train_cli(run_cli, big, tmp_path / "m-big", "--hidden", "")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    for lr in ("nan", "-1"):
        proc = _train_cli(run_cli, linear_csv, tmp_path / "m-lr", "--lr", lr)
        assert proc.returncode == 1 and "--lr must be a positive number" in proc.stderr
    # a damaged model folder: one line, not a traceback
    model = tmp_path / "m-big"
    proc = run_cli("predict", str(model), str(big), "-o", "-")
    assert proc.returncode == 0 and proc.stdout.startswith("x1,x2,y,predicted_y")
    assert not (tmp_path / "-").exists()
    (model / "model.pt").write_bytes((model / "model.pt").read_bytes()[:100])
    proc = run_cli("predict", str(model), str(big))
    assert proc.returncode == 1 and "the model is damaged or incomplete" in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def test_weights_from_another_save_are_told_apart(
    run_cli: Run, linear_csv: Path, tmp_path: Path
) -> None:
    """A save killed between its renames leaves the new model.pt beside the old config.json.
    With the same shapes, predict used to give the mixed model's numbers without a word."""
    first, second = tmp_path / "first", tmp_path / "second"
    for out, seed in ((first, "1"), (second, "2")):
        proc = _train_cli(run_cli, linear_csv, out, "--seed", seed)
        assert proc.returncode == 0, proc.stderr
    proc = run_cli("predict", str(first), str(linear_csv), "-o", "-")
    assert proc.returncode == 0, proc.stderr
    (first / "model.pt").write_bytes((second / "model.pt").read_bytes())  # the same shapes
    proc = run_cli("predict", str(first), str(linear_csv), "-o", "-")
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout
    assert "model.pt is not the one config.json was saved with" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
