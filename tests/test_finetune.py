"""Fine-tuning Whisper: CTranslate2 -> PyTorch -> CTranslate2 round trip, data preparation,
bad input, resume, and the small version of the jargon proof (tiny.en learns new words)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import EVALDATA, ROOT, SENTENCES, convert, espeak

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch

from malsori.errors import ModelFormatError, ModelLoadError
from malsori.finetune import (
    Collator,
    SpeechDataset,
    WhisperTokens,
    export_ct2,
    load_examples,
    load_whisper,
    log_mel,
)
from malsori.finetune.ct2_format import read_ct2_model
from malsori.models import resolve_model

Run = Callable[..., subprocess.CompletedProcess[str]]
EN_CLIPS = ["en/jfk.wav", "en/librispeech_1272-128104-0000.wav"]


@pytest.fixture(scope="module")
def tiny_dir() -> Path:
    return resolve_model("tiny.en").path


@pytest.fixture(scope="module")
def tiny_model(tiny_dir: Path):  # type: ignore[no-untyped-def]
    return load_whisper(tiny_dir).eval()


@pytest.fixture(scope="module")
def round_trip(tiny_model, tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("export") / "tiny-rt"
    # tiny.en ships float16 weights: a float16 export must reproduce them bit for bit.
    return export_ct2(tiny_model, tiny_dir, out, quantization="float16")


def write_manifest(path: Path, rows: list[tuple[str, str]], language: bool = True) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["path", "language", "reference"] if language else ["path", "reference"])
        for audio, ref in rows:
            w.writerow([audio, "en", ref] if language else [audio, ref])
    return path


def test_round_trip_tensors_are_identical(tiny_dir: Path, round_trip: Path) -> None:
    original, exported = read_ct2_model(tiny_dir), read_ct2_model(round_trip)
    # Newer converters add two scalar flags; every tensor the original has must be equal.
    assert set(original.variables) <= set(exported.variables)
    for name, value in original.variables.items():
        other = exported.variables[name]
        assert other.dtype == value.dtype and np.array_equal(other, value), name
    assert exported.aliases == original.aliases
    for key in ("alignment_heads", "lang_ids", "suppress_ids", "suppress_ids_begin"):
        assert (
            json.loads((round_trip / "config.json").read_text())[key]
            == json.loads((tiny_dir / "config.json").read_text())[key]
        ), key
    assert (round_trip / "tokenizer.json").read_bytes() == (
        tiny_dir / "tokenizer.json"
    ).read_bytes()


def test_round_trip_transcripts_are_identical(
    tiny_dir: Path, round_trip: Path, speech_dir: Path
) -> None:
    from malsori import load_model, transcribe
    from malsori.options import DecodeOptions

    clips = [speech_dir / f"{name}.wav" for name in SENTENCES] + [EVALDATA / c for c in EN_CLIPS]
    options = DecodeOptions(beam_size=5, batch_size=1, word_timestamps=True)
    a, b = load_model(str(tiny_dir)), load_model(str(round_trip))
    for clip in clips:
        ta, tb = transcribe(clip, a, options=options), transcribe(clip, b, options=options)
        assert ta.text.strip() and ta.text == tb.text, clip.name
        wa = [(w.word, w.start, w.end) for s in ta.segments for w in s.words or []]
        wb = [(w.word, w.start, w.end) for s in tb.segments for w in s.words or []]
        assert wa and wa == wb, clip.name


def test_pytorch_logits_match_ctranslate2(tiny_model, tiny_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """Teacher-force CTranslate2's own greedy output through the PyTorch model."""
    import ctranslate2
    from faster_whisper.feature_extractor import FeatureExtractor

    from malsori.audio import load_audio

    feats = log_mel(load_audio(EVALDATA / EN_CLIPS[0]), FeatureExtractor(feature_size=80))
    ct2 = ctranslate2.models.Whisper(str(tiny_dir), device="cpu", compute_type="float32")
    tokens = WhisperTokens(tiny_dir, multilingual=False, max_positions=448)
    prompt = tokens.prompt("en")
    res = ct2.generate(
        ctranslate2.StorageView.from_array(feats[None]),
        [prompt],
        beam_size=1,
        return_logits_vocab=True,
        suppress_blank=False,
        suppress_tokens=[],
    )[0]
    generated = res.sequences_ids[0]
    ct2_logits = np.stack([np.asarray(x) for x in res.logits[0]])
    assert len(generated) > 10
    with torch.no_grad():
        pt = (
            tiny_model(
                input_features=torch.from_numpy(feats[None]),
                decoder_input_ids=torch.tensor([prompt + generated]),
            )
            .logits[0]
            .numpy()
        )
    pt = pt[len(prompt) - 1 : len(prompt) - 1 + len(ct2_logits)]
    assert np.abs(pt - ct2_logits).max() < 1e-3
    assert (pt.argmax(-1)[: len(generated)] == np.array(generated)).all()


def test_training_batches_mask_prompt_and_padding(tiny_dir: Path, tmp_path: Path) -> None:
    wav = espeak(SENTENCES["window"], tmp_path / "a.wav")
    short = espeak("Yes.", tmp_path / "b.wav")
    manifest = write_manifest(
        tmp_path / "m.tsv", [("a.wav", SENTENCES["window"]), ("b.wav", "Yes.")], language=False
    )
    tokens = WhisperTokens(tiny_dir, multilingual=False, max_positions=448)
    examples, problems = load_examples(manifest, tokens)
    assert not problems and [e.path for e in examples] == [wav, short]
    batch = Collator(tokens.eot)([SpeechDataset(examples, 80, tokens.eot)[i] for i in (0, 1)])
    ids, labels = batch["decoder_input_ids"], batch["labels"]
    assert batch["input_features"].shape == (2, 80, 3000)
    sot, no_ts = tokens.prompt("en")
    assert ids[:, 0].tolist() == [sot, sot] and ids[:, 1].tolist() == [no_ts, no_ts]
    # Labels: shifted ids, the prompt position masked, end-of-text once, padding masked.
    assert labels[0, 0] == -100 and labels[0, 1:-1].tolist() == ids[0, 2:].tolist()
    assert labels[0, -1] == tokens.eot
    n_short = len(examples[1].tokens)
    assert labels[1, n_short - 1] == tokens.eot and (labels[1, n_short:] == -100).all()
    assert (ids[1, n_short:] == tokens.eot).all()  # pad id is end-of-text: masked by length
    # References are encoded with a leading space, as Whisper writes them.
    import tokenizers

    tok = tokenizers.Tokenizer.from_file(str(tiny_dir / "tokenizer.json"))
    assert tok.decode(ids[0, 2:].tolist()) == " " + SENTENCES["window"]


def test_frozen_encoder_step_keeps_encoder_outputs_and_the_same_loss(
    tiny_model: Any, tiny_dir: Path, tmp_path: Path
) -> None:
    """With the encoder frozen, each example is encoded once (the second pass runs only the
    decoder) and the loss equals the plain step's; past the budget nothing is kept."""
    from malsori.finetune.recipe import FrozenEncoderStep, whisper_loss_step

    espeak(SENTENCES["window"], tmp_path / "a.wav")
    espeak("Yes.", tmp_path / "b.wav")
    manifest = write_manifest(
        tmp_path / "m.tsv", [("a.wav", SENTENCES["window"]), ("b.wav", "Yes.")], language=False
    )
    tokens = WhisperTokens(tiny_dir, multilingual=False, max_positions=448)
    examples, _ = load_examples(manifest, tokens)
    batch = Collator(tokens.eot)([SpeechDataset(examples, 80, tokens.eot)[i] for i in (0, 1)])
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100)
    calls = 0

    def count(*_: object) -> None:
        nonlocal calls
        calls += 1

    hook = tiny_model.get_encoder().register_forward_hook(count)
    try:
        step = FrozenEncoderStep()
        with torch.no_grad():
            plain = whisper_loss_step(tiny_model, batch, loss_fn)
            first = step(tiny_model, batch, loss_fn)
            second = step(tiny_model, batch, loss_fn)
        assert calls == 2  # the plain step's, then the cache's first pass; not the second
        assert sorted(step.cache) == [0, 1] and step.used_bytes == 2 * 1500 * 384 * 4
        assert torch.allclose(plain, first, atol=1e-5) and torch.equal(first, second)
        tight = FrozenEncoderStep(budget_bytes=1500 * 384 * 4)  # room for one example
        with torch.no_grad():
            tight(tiny_model, batch, loss_fn)
            tight(tiny_model, batch, loss_fn)
        assert len(tight.cache) == 1 and calls == 4  # the other is encoded every time
    finally:
        hook.remove()


def test_multilingual_prompt_has_language_and_task(tmp_path: Path) -> None:
    """base is multilingual: <|startoftranscript|><|ko|><|transcribe|><|notimestamps|>."""
    base_dir = resolve_model("base").path
    import tokenizers

    tok = tokenizers.Tokenizer.from_file(str(base_dir / "tokenizer.json"))
    tokens = WhisperTokens(base_dir, multilingual=True, max_positions=448)
    prompt = tokens.prompt("ko")
    assert [tok.id_to_token(t) for t in prompt] == [
        "<|startoftranscript|>", "<|ko|>", "<|transcribe|>", "<|notimestamps|>",
    ]  # fmt: skip
    ids, prompt_len = tokens.encode("안녕하세요, 반갑습니다.", "ko")
    assert prompt_len == 4 and tok.decode(list(ids[4:])) == " 안녕하세요, 반갑습니다."
    assert tokens.eot == tok.token_to_id("<|endoftext|>")


@pytest.mark.slow
def test_base_round_trip_tensors_are_identical(tmp_path: Path) -> None:
    base_dir = resolve_model("base").path
    out = export_ct2(load_whisper(base_dir), base_dir, tmp_path / "base-rt")
    original, exported = read_ct2_model(base_dir), read_ct2_model(out)
    for name, value in original.variables.items():
        other = exported.variables[name]
        assert other.dtype == value.dtype and np.array_equal(other, value), name
    config, original_config = (json.loads((d / "config.json").read_text()) for d in (out, base_dir))
    for key, value in original_config.items():
        assert config[key] == value, key


def test_unusable_rows_are_reported_and_skipped(tiny_dir: Path, tmp_path: Path) -> None:
    good = espeak(SENTENCES["report"], tmp_path / "good.wav")
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    long_raw = tmp_path / "long.raw.wav"
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", str(long_raw), "synth", "31", "sine", "440"],
        check=True,
    )
    convert(long_raw, tmp_path / "long.wav")
    rows = [
        ("good.wav", SENTENCES["report"]),
        ("broken.wav", "whatever"),
        ("long.wav", "a tone"),
        ("good.wav", " ".join(["supercalifragilistic"] * 120)),
        ("missing.wav", "nothing"),
    ]
    tokens = WhisperTokens(tiny_dir, multilingual=False, max_positions=448)
    examples, problems = load_examples(write_manifest(tmp_path / "m.tsv", rows), tokens)
    assert [e.path for e in examples] == [good]
    text = "\n".join(map(str, problems))
    assert [p.line for p in problems] == [6, 3, 4, 5] or sorted(p.line for p in problems) == [
        3,
        4,
        5,
        6,
    ]
    assert "broken.wav" in text and "31.0 s" in text and "decoder takes at most 448" in text
    assert "missing.wav" in text


def test_model_readers_refuse_damaged_files_with_one_error(tiny_dir: Path, tmp_path: Path) -> None:
    """A truncated or foreign model.bin is a ModelFormatError (a ModelLoadError), not a
    KeyError or struct error from inside the reader."""
    data = (tiny_dir / "model.bin").read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "short": data[:3],
        "version": (99).to_bytes(4, "little") + data[4:64],
        "garbage": b"\x05\x00\x00\x00" + bytes(range(256)) * 4,
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.bin"
        path.write_bytes(content)
        with pytest.raises(ModelFormatError) as info:
            read_ct2_model(path)
        assert str(path) in str(info.value) or "model.bin" in str(info.value), name
        assert isinstance(info.value, ModelLoadError)
    with pytest.raises(ModelFormatError, match="cannot read"):
        read_ct2_model(tmp_path / "absent.bin")


def test_finetune_cli_rejects_bad_input(run_cli: Run, tmp_path: Path) -> None:
    train = write_manifest(tmp_path / "t.tsv", [])
    cases = [
        (["--train", str(tmp_path / "nope.tsv")], "no such manifest"),
        (["--train", str(train), "--quantization", "int4"], "invalid choice"),
        (["--train", str(train), "--lr", "0"], "--lr must be > 0"),
        (["--train", str(train), "--model", str(tmp_path)], "not a CTranslate2 model directory"),
        (["--train", str(train)], "no usable training examples"),
        (["--train", str(train), "--resume"], "cannot resume"),
    ]
    for extra, message in cases:
        proc = run_cli("finetune", "--output-dir", str(tmp_path / "out"), "--no-register", *extra)
        assert proc.returncode != 0, extra
        assert message in proc.stderr, (extra, proc.stderr)
        assert "Traceback" not in proc.stderr
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    proc = run_cli("finetune", "--train", str(train), "--output-dir", str(tmp_path / "used"))
    assert proc.returncode == 1 and "not empty" in proc.stderr
    assert (tmp_path / "used" / "keep.txt").read_text() == "mine"


def test_finetune_resumes_from_its_checkpoint(run_cli: Run, tmp_path: Path) -> None:
    clips = []
    for name, text in SENTENCES.items():
        espeak(text, tmp_path / f"{name}.wav")
        clips.append((f"{name}.wav", text))
    train = write_manifest(tmp_path / "train.tsv", clips)
    evaluation = write_manifest(tmp_path / "eval.tsv", clips[:1])
    out = tmp_path / "out"
    common = ["finetune", "--train", str(train), "--eval", str(evaluation), "--output-dir",
              str(out), "--freeze-encoder", "--batch-size", "2", "--lr", "1e-5",
              "--no-register", "--quiet", "--eval-beam-size", "1"]  # fmt: skip
    first = run_cli(*common, "--epochs", "1")
    assert first.returncode == 0, first.stderr
    report1 = json.loads((out / "finetune_report.json").read_text())
    assert report1["epochs_run"] == 1 and report1["wer_before"]["utterances"] == 1
    # Resumed with other options: they were taken silently (the banner showed the new lr,
    # the restored optimizer kept the old one; another model failed with 170 lines of size
    # mismatches). Refused now, each named, before anything is loaded.
    changed = [a for a in common if a != "--freeze-encoder"]
    changed[changed.index("1e-5")] = "0.5"
    refused = run_cli(*changed, "--model", "base", "--epochs", "2", "--resume")
    assert refused.returncode == 1, refused.stderr
    for named in ("--lr 0.5 (the run has 1e-05)", "--freeze-encoder False", "--model base"):
        assert named in refused.stderr, refused.stderr
    assert json.loads((out / "finetune_report.json").read_text()) == report1
    # a checkpoint half-written when its run was killed (380 MB for tiny) is swept
    partial = out / "checkpoints" / ".last.pt.k9x.tmp"
    partial.write_bytes(b"\0" * 1024)
    second = run_cli(*common, "--epochs", "2", "--resume")
    assert second.returncode == 0, second.stderr
    assert not partial.exists()
    report2 = json.loads((out / "finetune_report.json").read_text())
    assert report2["epochs_run"] == 2 and report2["wer_before"] == report1["wer_before"]
    assert report2["history"][0] == report1["history"][0]  # epoch 1 was not trained again
    assert "measured by the first run" in second.stdout  # not evaluated again
    assert (out / "model.bin").is_file() and not list(out.glob(".export-*"))


def test_a_run_that_failed_before_training_can_start_again(run_cli: Run, tmp_path: Path) -> None:
    """A run that stopped before its first checkpoint (no usable rows) leaves its options
    file; a new run into the same folder must not be refused as "not empty" then, with
    --resume refused too for want of a checkpoint."""
    train = tmp_path / "train.tsv"
    train.write_text("path\tlanguage\treference\ngone.wav\ten\thello\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["finetune", "--train", str(train), "--output-dir", str(out), "--no-register", "-q"]
    for _ in range(2):
        proc = run_cli(*args)
        assert proc.returncode == 1 and "no usable training examples" in proc.stderr, proc.stderr
        assert "not empty" not in proc.stderr


JARGON = ROOT / "examples" / "finetune" / "make_dataset.py"


@pytest.mark.slow
def test_finetune_learns_jargon_and_serves_it(run_cli: Run, tmp_path: Path) -> None:
    """The small version of the proof: tiny.en, decoder only, a few minutes of CPU.

    Held-out sentences (never trained on) must improve by >= 30% relative; real English
    speech (the short evaldata clips) must not get worse by more than 2 points. The
    exported model is then used by `malsori transcribe` and listed by `malsori models`."""
    data = tmp_path / "jargon"
    subprocess.run(
        [sys.executable, str(JARGON), str(data), "--voices", "en-us,en", "--speeds", "150"],
        check=True,
        capture_output=True,
    )
    # The real English speech of evaldata: the 28 short clips (194 s), not the long files.
    real = tmp_path / "real.tsv"
    with open(EVALDATA / "manifest.tsv", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    english = [
        line.split("\t") for line in lines[1:] if line.split("\t")[1] == "en"
        and not line.startswith("long/")
    ]  # fmt: skip
    real.write_text(
        "path\tlanguage\treference\n" + "".join(f"{EVALDATA / f[0]}\ten\t{f[3]}\n" for f in english)
    )
    models_dir = tmp_path / "models"
    out = tmp_path / "jargon-tiny"
    proc = run_cli(
        "finetune", "--model", "tiny.en", "--train", str(data / "train.tsv"),
        "--eval", str(data / "test.tsv"), "--output-dir", str(out),
        "--freeze-encoder", "--epochs", "3", "--batch-size", "8",
        "--eval-beam-size", "1", "--quiet",
        env={"MALSORI_MODELS_DIR": str(models_dir)}, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "finetune_report.json").read_text())
    before, after = report["wer_before"]["wer"], report["wer_after"]["wer"]
    assert before > 0.2, report  # the stock model really gets this vocabulary wrong
    assert after <= 0.7 * before, report
    assert "relative reduction" in proc.stdout and "peak RSS" in proc.stdout

    proc = run_cli("eval", str(real), "--model", "tiny.en", "--model", str(out),
                   "--beam-size", "1", "-o", str(tmp_path / "real.json"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    stock, tuned = (
        c["totals"] for c in json.loads((tmp_path / "real.json").read_text())["configs"]
    )
    assert stock["utterances"] == tuned["utterances"] == len(english) >= 20
    assert tuned["wer"] <= stock["wer"] + 0.02, (stock, tuned)

    phrase = espeak("Wrap the tensors in a tensor dataset first.", tmp_path / "new.wav")
    env = {"MALSORI_MODELS_DIR": str(models_dir)}
    proc = run_cli("transcribe", str(phrase), "--model", "jargon-tiny", "--format", "txt",
                   "-o", str(tmp_path / "t"), env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "tensor" in (tmp_path / "t" / "new.txt").read_text().lower()
    proc = run_cli("models", env=env)
    assert "jargon-tiny" in proc.stdout and "fine-tuned from tiny.en" in proc.stdout


def test_resume_options_compare_what_the_run_used(tmp_path: Path) -> None:
    """`--resume --lr 0.0001` on a run started without --lr (whose rate was that default)
    was refused as a different rate; `--language KO` against ko likewise."""
    from malsori.finetune.recipe import FinetuneConfig, _run_options

    train = tmp_path / "t.tsv"
    base = FinetuneConfig(model="tiny.en", train=train, output_dir=tmp_path, freeze_encoder=True)
    typed = FinetuneConfig(model="tiny.en", train=train, output_dir=tmp_path,
                           freeze_encoder=True, lr=1e-4)  # fmt: skip
    assert _run_options(base) == _run_options(typed)
    full = FinetuneConfig(model="tiny.en", train=train, output_dir=tmp_path, lr=1e-4)
    assert _run_options(full)["lr"] != _run_options(FinetuneConfig(
        model="tiny.en", train=train, output_dir=tmp_path))["lr"]  # fmt: skip
    ko = FinetuneConfig(model="tiny.en", train=train, output_dir=tmp_path, language="KO")
    assert _run_options(ko)["language"] == "ko"
