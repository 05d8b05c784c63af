"""Load a CTranslate2 Whisper model into openai-whisper (the PyTorch reference), same weights.

Benchmark-only helper. CTranslate2 stores the self-attention q/k/v fused in one linear
(``self_attention/linear_0``, rows q, k, v; Whisper's key has no bias, stored as zeros) and
the cross-attention k/v fused in ``attention/linear_1``. Everything else maps one to one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

from malsori.finetune.ct2_format import CT2Model, read_ct2_model


def _layers(m: CT2Model, prefix: str) -> int:
    return len({k.split("/")[1] for k in m.variables if re.match(rf"{prefix}/layer_\d+/", k)})


def ct2_to_openai_state(m: CT2Model) -> tuple[dict[str, int], dict[str, torch.Tensor]]:
    f = m.float32
    d_enc = f("encoder/conv1/weight").shape[0]
    d_dec = f("decoder/embeddings/weight").shape[1]
    dims = {
        "n_mels": f("encoder/conv1/weight").shape[1],
        "n_audio_ctx": f("encoder/position_encodings/encodings").shape[0],
        "n_audio_state": d_enc,
        "n_audio_head": int(m.get("encoder/num_heads")),
        "n_audio_layer": _layers(m, "encoder"),
        "n_vocab": f("decoder/embeddings/weight").shape[0],
        "n_text_ctx": f("decoder/position_encodings/encodings").shape[0],
        "n_text_state": d_dec,
        "n_text_head": int(m.get("decoder/num_heads")),
        "n_text_layer": _layers(m, "decoder"),
    }
    sd: dict[str, np.ndarray] = {}

    def ln(dst: str, src: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = f(f"{src}/gamma"), f(f"{src}/beta")

    def lin(dst: str, src: str, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = f(f"{src}/weight")
        if bias:
            sd[f"{dst}.bias"] = f(f"{src}/bias")

    def fused_qkv(dst: str, src: str, d: int) -> None:
        w, b = f(f"{src}/weight"), f(f"{src}/bias")
        for i, name in enumerate(("query", "key", "value")):
            sd[f"{dst}.{name}.weight"] = w[i * d : (i + 1) * d]
            if name != "key":
                sd[f"{dst}.{name}.bias"] = b[i * d : (i + 1) * d]

    for conv in ("conv1", "conv2"):
        lin(f"encoder.{conv}", f"encoder/{conv}")
    sd["encoder.positional_embedding"] = f("encoder/position_encodings/encodings")

    def self_attention_and_mlp(t: str, s: str, d: int) -> None:
        """The parts encoder and decoder blocks share."""
        fused_qkv(f"{t}.attn", f"{s}/self_attention/linear_0", d)
        lin(f"{t}.attn.out", f"{s}/self_attention/linear_1")
        ln(f"{t}.attn_ln", f"{s}/self_attention/layer_norm")
        lin(f"{t}.mlp.0", f"{s}/ffn/linear_0")
        lin(f"{t}.mlp.2", f"{s}/ffn/linear_1")
        ln(f"{t}.mlp_ln", f"{s}/ffn/layer_norm")

    for i in range(dims["n_audio_layer"]):
        self_attention_and_mlp(f"encoder.blocks.{i}", f"encoder/layer_{i}", d_enc)
    ln("encoder.ln_post", "encoder/layer_norm")

    sd["decoder.token_embedding.weight"] = f("decoder/embeddings/weight")
    sd["decoder.positional_embedding"] = f("decoder/position_encodings/encodings")
    for i in range(dims["n_text_layer"]):
        s, t = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        self_attention_and_mlp(t, s, d_dec)
        lin(f"{t}.cross_attn.query", f"{s}/attention/linear_0")
        kv_w, kv_b = f(f"{s}/attention/linear_1/weight"), f(f"{s}/attention/linear_1/bias")
        sd[f"{t}.cross_attn.key.weight"] = kv_w[:d_dec]
        sd[f"{t}.cross_attn.value.weight"] = kv_w[d_dec:]
        sd[f"{t}.cross_attn.value.bias"] = kv_b[d_dec:]
        lin(f"{t}.cross_attn.out", f"{s}/attention/linear_2")
        ln(f"{t}.cross_attn_ln", f"{s}/attention/layer_norm")
    ln("decoder.ln", "decoder/layer_norm")
    return dims, {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}


def load_openai_whisper(model_dir: str | Path):  # type: ignore[no-untyped-def]
    """An openai-whisper ``Whisper`` model (float32, CPU) with the CTranslate2 weights."""
    import whisper
    from whisper.model import ModelDimensions, Whisper

    del whisper
    m = read_ct2_model(model_dir)
    dims, state = ct2_to_openai_state(m)
    model = Whisper(ModelDimensions(**dims))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert set(missing) <= {"alignment_heads"}, missing
    config = json.loads((Path(model_dir) / "config.json").read_text())
    heads = torch.zeros(dims["n_text_layer"], dims["n_text_head"], dtype=torch.bool)
    for layer, head in config.get("alignment_heads", []):
        heads[layer, head] = True
    model.register_buffer("alignment_heads", heads.to_sparse(), persistent=False)
    return model.eval()
