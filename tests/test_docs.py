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
