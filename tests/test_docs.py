"""docs/pytorch-basics.md: every python block runs, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "pytorch-basics.md"


def test_pytorch_basics_guide_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 12
    namespace: dict[str, object] = {"__name__": "pytorch_basics"}
    for i, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"{DOC.name}[block {i}]", "exec"), namespace)
        except Exception as exc:  # name the block that broke
            raise AssertionError(f"block {i} of {DOC.name} failed: {exc!r}\n{block}") from exc


def test_finetuning_guide_lists_the_whole_weight_mapping() -> None:
    """The mapping table of docs/finetuning.md is the code's table (finetune/hf_model.py)."""
    from malsori.finetune.hf_model import DECODER_LAYER_MAP, ENCODER_LAYER_MAP, GLOBAL_MAP

    doc = (DOC.parent / "finetuning.md").read_text(encoding="utf-8")
    table = [line for line in doc.splitlines() if line.startswith("| `")]
    for hf, ct2, part in GLOBAL_MAP + ENCODER_LAYER_MAP + DECODER_LAYER_MAP:
        rows = [r for r in table if f"{hf}`" in r and f"{ct2}`" in r]
        assert rows, (hf, ct2)
        if part is not None:
            assert f"block {part[0] + 1} of {part[1]}" in rows[0], (hf, ct2, rows[0])
