"""``malsori finetune``: fine-tune a Whisper model on your recordings, export it for
faster-whisper, and report the word error rate before and after.

Runs under ``torchrun --nproc-per-node N -m malsori.cli finetune ...`` as well
(data-parallel through the training library; rank 0 evaluates, exports and prints).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._extras import require_extra
from ..engine import DEFAULT_COMPUTE_TYPE


def register(sub: Any) -> None:
    p = sub.add_parser(
        "finetune",
        help="fine-tune Whisper on your audio (needs the train extra)",
        description="Fine-tune a CTranslate2 Whisper model (tiny.en, base, or a directory) in "
        "PyTorch on a manifest of clips (TSV: path, reference[, language, ...]; clips up to "
        "30 s), export the best epoch to OUTPUT_DIR as a CTranslate2 model and report WER "
        "before/after on --eval. Use the result with --model OUTPUT_DIR (or --model NAME).",
    )
    p.add_argument("--model", default="tiny.en", help="model to start from [tiny.en]")
    p.add_argument("--train", required=True, type=Path, metavar="TRAIN.tsv")
    p.add_argument(
        "--eval",
        type=Path,
        default=None,
        metavar="EVAL.tsv",
        help="clips for WER before/after (never trained on)",
    )
    p.add_argument("--output-dir", required=True, type=Path, metavar="OUT")
    p.add_argument("--epochs", type=int, default=3, help="[3]")
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="AdamW learning rate [1e-4 with --freeze-encoder, else 1e-5]",
    )
    p.add_argument("--batch-size", type=int, default=8, help="[8]")
    p.add_argument(
        "--grad-accum",
        type=int,
        default=1,
        metavar="N",
        help="add the gradients of N batches per optimizer step [1]",
    )
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    p.add_argument(
        "--freeze-encoder",
        action="store_true",
        help="train the decoder only (faster, less memory; good for vocabulary)",
    )
    p.add_argument(
        "--language",
        default=None,
        help="language of every clip (default: the manifest's column, else en)",
    )
    p.add_argument(
        "--quantization",
        default="float16",
        choices=("float16", "int8", "float32"),
        help="export weights as [float16]",
    )
    p.add_argument(
        "--valid-fraction",
        type=float,
        default=0.1,
        help="share of TRAIN held out to pick the best epoch [0.1]",
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda [auto]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes [0]")
    p.add_argument(
        "--resume", action="store_true", help="continue the run saved in OUT/checkpoints"
    )
    p.add_argument(
        "--name",
        default=None,
        help="register it as a model named NAME (a link in the user models directory; "
        "`malsori models remove NAME` undoes it) [default: the output directory's name]",
    )
    p.add_argument(
        "--no-register",
        action="store_true",
        help="do not register it (use it with --model OUT only)",
    )
    p.add_argument(
        "--eval-compute-type",
        default=DEFAULT_COMPUTE_TYPE,
        help=f"compute type for WER [{DEFAULT_COMPUTE_TYPE}]",
    )
    p.add_argument("--eval-beam-size", type=int, default=5, help="beam size for WER [5]")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=run)


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f} MiB"


def run(args: argparse.Namespace) -> int:
    require_extra("train", "'malsori finetune'")
    from ..finetune.recipe import FinetuneConfig, finetune
    from ..train.distributed import DistributedContext

    cfg = FinetuneConfig(
        model=args.model,
        train=args.train,
        eval=args.eval,
        output_dir=args.output_dir,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        max_steps=args.max_steps,
        freeze_encoder=args.freeze_encoder,
        language=args.language,
        quantization=args.quantization,
        valid_fraction=args.valid_fraction,
        device=args.device,
        seed=args.seed,
        resume=args.resume,
        workers=args.workers,
        eval_compute_type=args.eval_compute_type,
        eval_beam_size=args.eval_beam_size,
        name=None if args.no_register else (args.name or args.output_dir.resolve().name),
        progress=not args.quiet,
    )
    result = finetune(cfg)
    if not DistributedContext.from_env().is_main:
        return 0
    best = f", best {result.best_epoch}" if result.best_epoch else ""
    print(
        f"epochs: {result.epochs_run}{best}; training took {result.train_time_s:.0f} s, "
        f"all {result.total_time_s:.0f} s; peak RSS {_mb(result.peak_rss_bytes)}"
        + (f", peak CUDA {_mb(result.peak_cuda_bytes)}" if result.peak_cuda_bytes else "")
    )
    if result.wer_before is not None and result.wer_after is not None:
        b, a = result.wer_before.wer, result.wer_after.wer
        rel = (b - a) / b if b else 0.0
        print(
            f"WER on {args.eval}: {b:.2%} -> {a:.2%} ({rel:+.0%} relative reduction, "
            f"{result.wer_after.utterances} clips)"
        )
    if result.skipped:
        print(f"skipped {len(result.skipped)} row(s) (listed above)")
    reg = result.registration
    where = f" or --model {reg.name}" if reg else ""
    out = result.output_dir.resolve()
    print(f"model: {out} (use --model {out}{where})")
    if reg is not None:
        replaced = f", replacing the registration of {reg.replaced} (gone)" if reg.replaced else ""
        print(
            f"registered as {reg.name!r}: {reg.link} -> {reg.target}{replaced} "
            f"(undo: malsori models remove {reg.name})"
        )
    return 0
