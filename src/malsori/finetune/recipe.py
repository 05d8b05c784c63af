"""The fine-tuning recipe: a CTranslate2 Whisper model + manifests -> a fine-tuned
CTranslate2 model. (This module was ``finetune/run.py``; cf. ``train/regression.py``, the
regression recipe.)

The five steps, as everywhere in malsori:

1. data as tensors        audio -> log-mel features, references -> token ids (data.py)
2. Dataset + DataLoader   ``SpeechDataset`` + ``Collator``; the DataLoader is built by ``fit``
3. the nn.Module          ``WhisperForConditionalGeneration``, weights imported from model.bin
4. the loss               ``nn.CrossEntropyLoss`` over the text tokens (prompt/padding ignored);
                          with a frozen encoder, its outputs are computed once and kept
                          (``FrozenEncoderStep``), so later epochs run only the decoder
5. optimizer + loop       AdamW; ``fit`` runs zero_grad(); loss.backward(); optimizer.step()

Around them: word error rate before and after on the evaluation manifest (with faster-whisper,
the engine that will serve the model), the best epoch's weights kept, a checkpoint after
every epoch for ``resume``, and the export back to CTranslate2.
"""

from __future__ import annotations

import contextlib
import json
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .._atomic import atomic_write_text
from .._dirlock import hold_folder
from ..capabilities import is_multilingual_vocab
from ..engine import DEFAULT_COMPUTE_TYPE
from ..errors import CheckpointError, MalsoriError, ManifestError, OptionsError, OutputError
from ..manifest import ManifestRow
from ..models import (
    Registration,
    check_model_name,
    register_model,
    registration_conflict,
    resolve_model,
)
from ..options import normalize_language
from ..train import DistributedContext, History, fit, resolve_device
from ..train.checkpoint import checkpoint_path, existing_checkpoint
from .ct2_export import QUANTIZATIONS, export_ct2
from .ct2_import import load_whisper
from .data import IGNORE, Collator, Example, SpeechDataset, WhisperTokens, load_examples

if TYPE_CHECKING:
    from transformers import WhisperForConditionalGeneration

REPORT = "finetune_report.json"
CHECKPOINTS = "checkpoints"  # OUT/checkpoints/last.pt: fit's checkpoint, for --resume
RUN_OPTIONS = "finetune_run.json"  # what the run was started with, checked by --resume
#: The options a resumed run must keep (field -> flag): the checkpoint holds the model, the
#: optimizer (its learning rate) and the data order of the run that made it. ``--epochs``,
#: ``--max-steps`` and the export/eval settings may change.
RUN_KEYS = {
    "model": "--model",
    "train": "--train",
    "eval": "--eval",
    "freeze_encoder": "--freeze-encoder",
    "batch_size": "--batch-size",
    "grad_accum": "--grad-accum",
    "lr": "--lr",
    "language": "--language",
    "valid_fraction": "--valid-fraction",
    "weight_decay": "weight_decay (API)",
    "seed": "--seed",
}


@dataclass
class FinetuneConfig:
    """Everything one run needs; the CLI fills it from its flags."""

    model: str
    train: Path
    output_dir: Path
    eval: Path | None = None
    epochs: int = 3
    lr: float | None = None  # None: 1e-4 with freeze_encoder (decoder only), else 1e-5
    batch_size: int = 8
    grad_accum: int = 1
    max_steps: int | None = None
    freeze_encoder: bool = False
    language: str | None = None
    quantization: str = "float16"
    valid_fraction: float = 0.1
    weight_decay: float = 0.01
    device: str = "auto"
    seed: int = 0
    resume: bool = False
    workers: int = 0
    eval_compute_type: str = DEFAULT_COMPUTE_TYPE
    eval_beam_size: int = 5
    name: str | None = None  # register under this name in the user models directory
    progress: bool = True


@dataclass
class WerResult:
    wer: float
    utterances: int
    ref_words: int


@dataclass
class FinetuneResult:
    output_dir: Path
    train_examples: int
    valid_examples: int
    eval_examples: int
    skipped: list[str]
    wer_before: WerResult | None
    wer_after: WerResult | None
    train_time_s: float
    total_time_s: float
    peak_rss_bytes: int
    peak_cuda_bytes: int | None
    epochs_run: int
    best_epoch: int | None
    registered_as: str | None = None
    registration: Registration | None = None  # where the name went (a link to output_dir)
    history: list[dict[str, Any]] = field(default_factory=list)


def whisper_loss_step(
    model: nn.Module, batch: dict[str, torch.Tensor], loss_fn: Callable[..., torch.Tensor]
) -> torch.Tensor:
    """Steps 3-4 for one batch: the forward pass, then cross-entropy over the labels."""
    logits = model(
        input_features=batch["input_features"], decoder_input_ids=batch["decoder_input_ids"]
    ).logits
    # CrossEntropyLoss wants (batch, classes, positions).
    return loss_fn(logits.transpose(1, 2), batch["labels"])


#: Encoder outputs kept by :class:`FrozenEncoderStep` (tiny: 2.3 MB per example, base: 3.1
#: MB, large: 7.7 MB, float32); examples past the budget are encoded every epoch.
ENCODER_CACHE_BYTES = 2 * 2**30


class FrozenEncoderStep:
    """Steps 3-4 when the encoder is frozen (``--freeze-encoder``): its output for an example
    never changes, so it is computed once, without gradients, and kept (up to
    ``budget_bytes``); later epochs and the validation pass run only the decoder. The loss
    is the same as :func:`whisper_loss_step`'s."""

    def __init__(self, budget_bytes: int = ENCODER_CACHE_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self.cache: dict[int, torch.Tensor] = {}

    def encoder_outputs(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        keys = [int(k) for k in batch["index"].tolist()]
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        fresh: dict[int, torch.Tensor] = {}
        if todo:
            inner: Any = getattr(model, "module", model)  # DDP wraps the model
            encoder = inner.get_encoder()
            with torch.no_grad():
                hidden = encoder(batch["input_features"][todo]).last_hidden_state
            for j, i in enumerate(todo):
                fresh[i] = hidden[j]
                size = hidden[j].numel() * hidden[j].element_size()
                if self.used_bytes + size <= self.budget_bytes:
                    self.cache[keys[i]] = hidden[j].clone()  # not a view of the batch
                    self.used_bytes += size
        return torch.stack([fresh[i] if i in fresh else self.cache[k] for i, k in enumerate(keys)])

    def __call__(
        self, model: nn.Module, batch: dict[str, torch.Tensor], loss_fn: Callable[..., torch.Tensor]
    ) -> torch.Tensor:
        from transformers.modeling_outputs import BaseModelOutput

        hidden = self.encoder_outputs(model, batch)
        logits = model(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
            decoder_input_ids=batch["decoder_input_ids"],
        ).logits
        return loss_fn(logits.transpose(1, 2), batch["labels"])


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def word_error_rate(
    model_dir: Path, examples: list[Example], cfg: FinetuneConfig
) -> WerResult | None:
    """Corpus WER of ``examples`` transcribed by faster-whisper with ``model_dir``."""
    if not examples:
        return None
    from ..engine import unload_models
    from ..evaluate.sweep import EvalConfig, evaluate

    rows = [ManifestRow(e.line, e.path, e.language, e.reference) for e in examples]
    config = EvalConfig(
        model=str(model_dir),
        compute_type=cfg.eval_compute_type,
        beam_size=cfg.eval_beam_size,
        device="cuda" if cfg.device.startswith("cuda") else cfg.device,
    )
    (result,) = evaluate(rows, [config])
    unload_models()
    totals = result.totals()
    return WerResult(float(totals["wer"]), int(totals["utterances"]), int(totals["ref_words"]))


def _run_options(cfg: FinetuneConfig) -> dict[str, Any]:
    options = {key: getattr(cfg, key) for key in RUN_KEYS}
    if options["language"]:
        options["language"] = normalize_language(options["language"])  # KO = ko
    if options["lr"] is None:  # the default, typed out or not, is the same rate
        options["lr"] = _default_lr(cfg)
    for key in ("train", "eval"):
        if options[key] is not None:
            options[key] = str(Path(options[key]).resolve())
    return options


def _default_lr(cfg: FinetuneConfig) -> float:
    """1e-4 for the decoder alone (--freeze-encoder), else 1e-5."""
    return 1e-4 if cfg.freeze_encoder else 1e-5


def _check_resume_options(cfg: FinetuneConfig) -> None:
    """``--resume`` with other options than the run it continues: refused, naming each.
    They were taken silently: the banner showed the new learning rate while the restored
    optimizer kept the old one, the encoder was trained though the run froze it, and a
    checkpoint of another model failed with 170 lines of size mismatches."""
    saved_path = cfg.output_dir / RUN_OPTIONS
    try:
        saved = json.loads(saved_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return  # a run saved before the options were recorded
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{saved_path} cannot be read: {exc}") from exc
    now = _run_options(cfg)
    differ = [
        f"{RUN_KEYS[key]} {_shown(now[key])} (the run has {_shown(saved.get(key))})"
        for key in RUN_KEYS
        if key in saved and saved[key] != now[key]
    ]
    if differ:
        raise OptionsError(
            "--resume continues the saved run with its own options; these differ: "
            + "; ".join(differ)
            + f". Give the run's options (see {saved_path}), or start a new output directory"
        )


def _shown(value: object) -> str:
    return "the default" if value is None else str(value)


#: What a run leaves in OUT before its first checkpoint: a later run may start there again.
_EARLY_FILES = frozenset({REPORT, RUN_OPTIONS, CHECKPOINTS})


def _check_output(cfg: FinetuneConfig) -> None:
    out = cfg.output_dir
    if cfg.resume:
        existing_checkpoint(out / CHECKPOINTS)
    elif out.exists() and any(out.iterdir()):
        names = {p.name for p in out.iterdir()}
        checkpoints = out / CHECKPOINTS
        started = checkpoints.is_dir() and any(
            not p.name.endswith(".tmp") for p in checkpoints.iterdir()
        )
        if not names <= _EARLY_FILES or started:
            raise OutputError(
                f"{out} is not empty; choose a new output directory, or pass --resume to "
                "continue the run saved there"
            )
    if cfg.name is not None:
        conflict = registration_conflict(cfg.name, out)
        if conflict is not None:  # a dangling registration is no conflict: it is replaced
            raise MalsoriError(conflict + " (or pass --no-register)")


def _validate(cfg: FinetuneConfig) -> None:
    if cfg.quantization not in QUANTIZATIONS:
        raise OptionsError(
            f"--quantization {cfg.quantization!r}: expected one of {', '.join(QUANTIZATIONS)}"
        )
    if cfg.lr is not None and cfg.lr <= 0:
        raise OptionsError("--lr must be > 0")
    if not 0 <= cfg.valid_fraction < 1:
        raise OptionsError("--valid-fraction must be in [0, 1)")
    if cfg.name is not None:
        try:
            check_model_name(cfg.name)
        except OptionsError as exc:
            raise OptionsError(f"--name: {exc} (or pass --no-register)") from exc
    for flag, path in (("--train", cfg.train), ("--eval", cfg.eval)):
        if path is not None and not Path(path).is_file():
            raise ManifestError(f"{flag} {path}: no such manifest file")


def _register(name: str, out: Path) -> Registration:
    """Make the export visible to ``malsori models`` and ``--model NAME``: a link
    ``models_dir()/NAME`` -> ``out`` (replacing one whose directory was deleted). The
    export's checksums were just written and recorded, so nothing is hashed again."""
    return register_model(out, name, rehash=False, created_by="malsori finetune")


@dataclass
class _Data:
    """Step 1's outcome: the usable examples, and the rows that were not."""

    train: list[Example]
    eval: list[Example]
    skipped: list[str]  # "MANIFEST line N: why", one per unusable row
    n_valid: int  # training examples held out to pick the best epoch


def _load_data(cfg: FinetuneConfig, tokens: WhisperTokens, say: Callable[[str], None]) -> _Data:
    """Step 1: the examples (audio and references checked; unusable rows reported)."""
    train, problems = load_examples(cfg.train, tokens, language=cfg.language)
    skipped = [f"{cfg.train.name} {p}" for p in problems]
    evaluation: list[Example] = []
    if cfg.eval is not None:
        evaluation, eval_problems = load_examples(cfg.eval, tokens, language=cfg.language)
        skipped += [f"{cfg.eval.name} {p}" for p in eval_problems]
    for line in skipped:
        say(f"skipped: {line}")
    if not train:
        raise ManifestError(f"{cfg.train}: no usable training examples (see the lines above)")
    n_valid = round(len(train) * cfg.valid_fraction) if len(train) >= 10 else 0
    return _Data(train, evaluation, skipped, n_valid)


def _wer_before(
    cfg: FinetuneConfig, source: Path, data: _Data, is_main: bool, say: Callable[[str], None]
) -> WerResult | None:
    """WER of the model we start from; kept in the report so --resume need not redo it."""
    report_path = cfg.output_dir / REPORT
    wer_before = None
    if cfg.resume and report_path.is_file():
        saved = json.loads(report_path.read_text(encoding="utf-8")).get("wer_before")
        wer_before = WerResult(**saved) if saved else None
    elif is_main:
        wer_before = word_error_rate(source, data.eval, cfg)
        cfg.output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            report_path,
            json.dumps({"wer_before": asdict(wer_before) if wer_before else None}) + "\n",
        )
    if wer_before is not None:
        saved_note = ", measured by the first run" if cfg.resume else ""
        say(f"WER before: {wer_before.wer:.2%} ({wer_before.ref_words} words{saved_note})")
    return wer_before


def _train(
    model: WhisperForConditionalGeneration,
    cfg: FinetuneConfig,
    data: _Data,
    tokens: WhisperTokens,
    device: torch.device,
    say: Callable[[str], None],
) -> History:
    """Steps 2, 4 and 5: Dataset (+ DataLoader inside fit), the loss, AdamW and the loop."""
    if cfg.freeze_encoder:
        model.model.encoder.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lr = cfg.lr if cfg.lr is not None else _default_lr(cfg)
    say(f"training {trainable / 1e6:.1f}M parameters on {device}, AdamW lr {lr:g}")
    cfg.output_dir.mkdir(parents=True, exist_ok=True)
    return fit(
        model,
        SpeechDataset(data.train, model.config.num_mel_bins, tokens.eot),
        loss_fn=nn.CrossEntropyLoss(ignore_index=IGNORE),
        loss_step=FrozenEncoderStep() if cfg.freeze_encoder else whisper_loss_step,
        collate_fn=Collator(tokens.eot),
        optimizer="adamw",
        lr=lr,
        weight_decay=cfg.weight_decay,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        grad_accum_steps=cfg.grad_accum,
        max_steps=cfg.max_steps,
        valid_fraction=data.n_valid / len(data.train) if data.n_valid else 0.0,
        device=device,
        seed=cfg.seed,
        num_workers=cfg.workers,
        checkpoint_dir=cfg.output_dir / CHECKPOINTS,
        resume=checkpoint_path(cfg.output_dir / CHECKPOINTS) if cfg.resume else None,
        output_dir=cfg.output_dir,
        restore_best=True,
        progress=cfg.progress,
        max_grad_norm=1.0,
    )


def _export(
    model: WhisperForConditionalGeneration,
    cfg: FinetuneConfig,
    source: Path,
    result: FinetuneResult,
) -> None:
    """The best epoch's weights (fit restored them) -> CTranslate2, with CTranslate2's
    converter, and what they came from recorded beside them."""
    info = {
        "base_model": cfg.model,
        "base_path": str(source),
        "train_manifest": str(cfg.train),
        "epochs": result.epochs_run,
        "best_epoch": result.best_epoch,
    }
    export_ct2(
        model.cpu(),
        source,
        cfg.output_dir,
        quantization=cfg.quantization,
        info=info,
        overwrite=True,
    )


def finetune(cfg: FinetuneConfig, log: Callable[[str], None] = print) -> FinetuneResult:
    """Fine-tune ``cfg.model`` on ``cfg.train``; export to ``cfg.output_dir``; report WER."""
    t_start = time.perf_counter()
    _validate(cfg)
    ctx = DistributedContext.from_env()
    if not ctx.is_main:  # under torchrun, rank 0 checks, holds and writes OUT
        return _finetune(cfg, ctx, lambda _msg: None, t_start)
    _check_output(cfg)
    if cfg.resume:
        _check_resume_options(cfg)
    busy = f"another 'malsori finetune' run is using {cfg.output_dir}; wait for it to end"
    with hold_folder(cfg.output_dir, busy):
        _sweep_partial_checkpoints(cfg.output_dir / CHECKPOINTS)
        if not cfg.resume:
            atomic_write_text(
                cfg.output_dir / RUN_OPTIONS, json.dumps(_run_options(cfg), indent=2) + "\n"
            )
        return _finetune(cfg, ctx, log, t_start)


def _sweep_partial_checkpoints(folder: Path) -> None:
    """A checkpoint being written when its run was killed stays as a temporary file (380 MB
    for tiny); the folder is held, so no other run is writing one now."""
    if folder.is_dir():
        for tmp in folder.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _finetune(
    cfg: FinetuneConfig, ctx: DistributedContext, say: Callable[[str], None], t_start: float
) -> FinetuneResult:
    source = resolve_model(cfg.model).path
    device = resolve_device(cfg.device)

    # Step 3 first: the architecture decides how the data is prepared.
    model = load_whisper(source)
    tokens = WhisperTokens(
        source,
        multilingual=is_multilingual_vocab(model.config.vocab_size),
        max_positions=model.config.max_target_positions,
    )
    data = _load_data(cfg, tokens, say)  # step 1
    train_s = sum(e.duration for e in data.train)
    say(
        f"train: {len(data.train)} clips ({train_s / 60:.1f} min; {data.n_valid} of them held "
        f"out for validation), eval: {len(data.eval)} clips; model {cfg.model} -> {source}"
    )
    wer_before = _wer_before(cfg, source, data, ctx.is_main, say)
    t_train = time.perf_counter()
    history = _train(model, cfg, data, tokens, device, say)  # steps 2, 4 and 5
    result = FinetuneResult(
        output_dir=cfg.output_dir,
        train_examples=len(data.train) - data.n_valid,
        valid_examples=data.n_valid,
        eval_examples=len(data.eval),
        skipped=data.skipped,
        wer_before=wer_before,
        wer_after=None,
        train_time_s=time.perf_counter() - t_train,
        total_time_s=0.0,
        peak_rss_bytes=peak_rss_bytes(),
        peak_cuda_bytes=torch.cuda.max_memory_allocated() if device.type == "cuda" else None,
        epochs_run=len(history.epochs),
        best_epoch=history.best_epoch,
        history=[asdict(e) for e in history.epochs],
    )
    if not ctx.is_main:
        return result

    _export(model, cfg, source, result)
    say(f"exported {cfg.quantization} CTranslate2 model to {cfg.output_dir}")
    del model
    result.wer_after = word_error_rate(cfg.output_dir, data.eval, cfg)
    if cfg.name is not None:
        result.registration = _register(cfg.name, cfg.output_dir)
        result.registered_as = cfg.name
    result.peak_rss_bytes = peak_rss_bytes()
    result.total_time_s = time.perf_counter() - t_start
    atomic_write_text(
        cfg.output_dir / REPORT, json.dumps(asdict(result), indent=2, default=str) + "\n"
    )
    return result


__all__ = [
    "FinetuneConfig",
    "FinetuneResult",
    "FrozenEncoderStep",
    "finetune",
    "whisper_loss_step",
]
