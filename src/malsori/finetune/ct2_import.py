"""Import: a CTranslate2 Whisper directory -> a trainable ``WhisperForConditionalGeneration``.

The way back is :mod:`malsori.finetune.ct2_export`; :mod:`malsori.finetune.ct2_format` reads
the ``model.bin`` both start from. (This module was ``finetune/hf_model.py``.)

The model is built from a config derived from the CTranslate2 weights themselves (no hub,
no ``from_pretrained``), then loaded with the weights of ``model.bin``. The mapping below is
the inverse of CTranslate2's own ``TransformersConverter`` (``WhisperLoader``), which
:mod:`malsori.finetune.ct2_export` uses to go back, so an import followed by an export returns
the same tensors. Written once, as data; ``docs/finetuning.md`` prints the same table.

CTranslate2 fuses the self-attention projections into one linear (rows: query, key, value;
Whisper's key projection has no bias, stored as zeros) and the cross-attention key/value
into another (rows: key, value). The output projection is tied to the token embedding.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..capabilities import is_multilingual_vocab
from ..errors import ModelFormatError
from .ct2_format import CT2Model, read_ct2_model

if TYPE_CHECKING:
    from transformers import GenerationConfig, WhisperForConditionalGeneration

#: (Hugging Face parameter, CTranslate2 variable, part). ``{i}`` is the layer index; the part
#: is ``None`` for a one-to-one copy, or ``(k, n)``: the k-th of n equal row blocks of a
#: fused matrix. Layer norms map ``weight``/``bias`` to ``gamma``/``beta``; linears and
#: convolutions map ``weight``/``bias`` to ``weight``/``bias``.
Part = tuple[int, int] | None
GLOBAL_MAP: list[tuple[str, str, Part]] = [
    ("model.encoder.conv1", "encoder/conv1", None),
    ("model.encoder.conv2", "encoder/conv2", None),
    ("model.encoder.embed_positions.weight", "encoder/position_encodings/encodings", None),
    ("model.encoder.layer_norm", "encoder/layer_norm", None),
    ("model.decoder.embed_tokens.weight", "decoder/embeddings/weight", None),
    ("model.decoder.embed_positions.weight", "decoder/position_encodings/encodings", None),
    ("model.decoder.layer_norm", "decoder/layer_norm", None),
    # proj_out.weight is tied to model.decoder.embed_tokens.weight (CTranslate2 stores an
    # alias decoder/projection/weight -> decoder/embeddings/weight).
]
ENCODER_LAYER_MAP: list[tuple[str, str, Part]] = [
    ("self_attn.q_proj", "self_attention/linear_0", (0, 3)),
    ("self_attn.k_proj", "self_attention/linear_0", (1, 3)),
    ("self_attn.v_proj", "self_attention/linear_0", (2, 3)),
    ("self_attn.out_proj", "self_attention/linear_1", None),
    ("self_attn_layer_norm", "self_attention/layer_norm", None),
    ("fc1", "ffn/linear_0", None),
    ("fc2", "ffn/linear_1", None),
    ("final_layer_norm", "ffn/layer_norm", None),
]
DECODER_LAYER_MAP: list[tuple[str, str, Part]] = [
    *ENCODER_LAYER_MAP,
    ("encoder_attn.q_proj", "attention/linear_0", None),
    ("encoder_attn.k_proj", "attention/linear_1", (0, 2)),
    ("encoder_attn.v_proj", "attention/linear_1", (1, 2)),
    ("encoder_attn.out_proj", "attention/linear_2", None),
    ("encoder_attn_layer_norm", "attention/layer_norm", None),
]


def mapping_rows(num_layers: dict[str, int] | None = None) -> list[tuple[str, str, str]]:
    """The mapping as printable rows (used by the docs); layers shown as ``{i}``."""
    rows = []
    for hf, ct2, _part in GLOBAL_MAP:
        rows.append((hf, ct2, "copy"))
    for stack, table in (("encoder", ENCODER_LAYER_MAP), ("decoder", DECODER_LAYER_MAP)):
        for hf, ct2, part in table:
            how = "copy" if part is None else f"rows block {part[0] + 1} of {part[1]}"
            rows.append((f"model.{stack}.layers.{{i}}.{hf}", f"{stack}/layer_{{i}}/{ct2}", how))
    rows.append(("proj_out.weight", "decoder/embeddings/weight", "tied"))
    return rows


def _num_layers(m: CT2Model, stack: str) -> int:
    pattern = re.compile(rf"{stack}/layer_(\d+)/")
    found = {int(g.group(1)) for k in m.variables if (g := pattern.match(k))}
    if not found:
        raise ModelFormatError(f"CTranslate2 model has no {stack} layers (is it a Whisper model?)")
    return max(found) + 1


def _params(m: CT2Model, hf: str, ct2: str, part: Part) -> dict[str, npt.NDArray[np.float32]]:
    """The HF tensors for one mapping entry (a module's weight/bias, or a single tensor)."""
    if ct2.endswith(("/weight", "/encodings")):
        return {hf: m.float32(ct2)}
    out: dict[str, npt.NDArray[np.float32]] = {}
    is_norm = f"{ct2}/gamma" in m.variables
    for hf_name, ct2_name in (
        (("weight", "gamma"), ("bias", "beta"))
        if is_norm
        else (("weight", "weight"), ("bias", "bias"))
    ):
        key = f"{ct2}/{ct2_name}"
        if key not in m.variables:
            continue
        value = m.float32(key)
        if part is not None:
            k, n = part
            rows = value.shape[0] // n
            value = value[k * rows : (k + 1) * rows]
        out[f"{hf}.{hf_name}"] = value
    return out


def ct2_state_dict(m: CT2Model) -> dict[str, npt.NDArray[np.float32]]:
    """All Hugging Face tensors, keyed by HF parameter name, from a CTranslate2 model."""
    sd: dict[str, npt.NDArray[np.float32]] = {}
    for hf, ct2, part in GLOBAL_MAP:
        sd.update(_params(m, hf, ct2, part))
    for stack, table in (("encoder", ENCODER_LAYER_MAP), ("decoder", DECODER_LAYER_MAP)):
        for i in range(_num_layers(m, stack)):
            for hf, ct2, part in table:
                sd.update(
                    _params(m, f"model.{stack}.layers.{i}.{hf}", f"{stack}/layer_{i}/{ct2}", part)
                )
    # HF's key projections have no bias; CTranslate2 stores zeros there.
    return {k: v for k, v in sd.items() if not k.endswith("k_proj.bias")}


def _token_id(tokenizer: Any, token: str) -> int:
    tid = tokenizer.token_to_id(token)
    if tid is None:
        raise ModelFormatError(f"tokenizer.json has no {token} token (is it a Whisper tokenizer?)")
    return int(tid)


def read_ct2_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"{path}: cannot read the CTranslate2 config: {exc}") from exc
    return data


def load_tokenizer(model_dir: Path) -> Any:
    """The ``tokenizers.Tokenizer`` of a model directory (the one faster-whisper uses)."""
    import tokenizers

    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise ModelFormatError(
            f"{model_dir} has no tokenizer.json; fine-tuning needs the model's own tokenizer"
        )
    return tokenizers.Tokenizer.from_file(str(path))


def hf_config(m: CT2Model, tokenizer: Any) -> dict[str, Any]:
    """``WhisperConfig`` arguments that describe the CTranslate2 model's architecture."""
    emb = m.float32("decoder/embeddings/weight")
    vocab_size, d_model = emb.shape
    eot = _token_id(tokenizer, "<|endoftext|>")
    sot = _token_id(tokenizer, "<|startoftranscript|>")
    return {
        "vocab_size": int(vocab_size),
        "num_mel_bins": int(m.get("encoder/conv1/weight").shape[1]),
        "d_model": int(d_model),
        "encoder_layers": _num_layers(m, "encoder"),
        "decoder_layers": _num_layers(m, "decoder"),
        "encoder_attention_heads": int(m.get("encoder/num_heads")),
        "decoder_attention_heads": int(m.get("decoder/num_heads")),
        "encoder_ffn_dim": int(m.get("encoder/layer_0/ffn/linear_0/weight").shape[0]),
        "decoder_ffn_dim": int(m.get("decoder/layer_0/ffn/linear_0/weight").shape[0]),
        "max_source_positions": int(m.get("encoder/position_encodings/encodings").shape[0]),
        "max_target_positions": int(m.get("decoder/position_encodings/encodings").shape[0]),
        "activation_function": "gelu",
        "scale_embedding": False,
        "tie_word_embeddings": True,
        "pad_token_id": eot,
        "eos_token_id": eot,
        "bos_token_id": eot,
        "decoder_start_token_id": sot,
    }


def generation_config(model_dir: Path, tokenizer: Any, config: dict[str, Any]) -> GenerationConfig:
    """The generation config CTranslate2's converter reads back into config.json:
    alignment heads, suppress tokens and language ids, all taken from the original."""
    from transformers import GenerationConfig

    ct2 = read_ct2_config(model_dir)
    lang_to_id = {}
    for tid in ct2.get("lang_ids", []):
        token = tokenizer.id_to_token(int(tid))
        if token is None:
            raise ModelFormatError(f"{model_dir}/config.json: language id {tid} not in tokenizer")
        lang_to_id[token] = int(tid)
    return GenerationConfig(  # type: ignore[no-untyped-call]
        alignment_heads=[list(h) for h in ct2.get("alignment_heads", [])],
        suppress_tokens=list(ct2.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2.get("suppress_ids_begin", [])),
        lang_to_id=lang_to_id,
        is_multilingual=is_multilingual_vocab(config["vocab_size"]),
        decoder_start_token_id=config["decoder_start_token_id"],
        eos_token_id=config["eos_token_id"],
        pad_token_id=config["pad_token_id"],
        bos_token_id=config["bos_token_id"],
        no_timestamps_token_id=_token_id(tokenizer, "<|notimestamps|>"),
        max_length=config["max_target_positions"],
    )


def load_whisper(model_dir: str | Path) -> WhisperForConditionalGeneration:
    """Build a float32 ``WhisperForConditionalGeneration`` from a CTranslate2 directory."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    directory = Path(model_dir)
    m = read_ct2_model(directory)
    if m.spec != "WhisperSpec":
        raise ModelFormatError(f"{directory}: a {m.spec} model, not a Whisper model")
    tokenizer = load_tokenizer(directory)
    args = hf_config(m, tokenizer)
    model = WhisperForConditionalGeneration(WhisperConfig(**args))
    model.generation_config = generation_config(directory, tokenizer, args)
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in ct2_state_dict(m).items()}
    expected = {k for k in model.state_dict() if k != "proj_out.weight"}
    missing, unexpected = expected - state.keys(), state.keys() - expected
    if missing or unexpected:
        raise ModelFormatError(
            f"{directory}: weights do not fit the Whisper architecture "
            f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
        )
    model.load_state_dict(state, strict=False)
    model.tie_weights()
    model.float()  # type: ignore[no-untyped-call]
    return model
