"""The core path must not import torch: neither ``import malsori`` nor a CLI transcription."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BLOCK_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch must not be imported on the core path")
        return None
sys.meta_path.insert(0, _Block())
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + code], capture_output=True, text=True, timeout=300
    )


def test_import_malsori_does_not_import_torch() -> None:
    proc = _run("import malsori; assert 'torch' not in sys.modules; print('ok')")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_cli_transcription_does_not_import_torch(window_wav: Path) -> None:
    proc = _run(
        "from malsori.cli import main\n"
        f"rc = main(['transcribe', {str(window_wav)!r}, '--model', 'tiny.en', '-q'])\n"
        "assert 'torch' not in sys.modules\n"
        "print('rc', rc)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("rc 0")
