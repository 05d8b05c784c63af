"""Read a CTranslate2 ``model.bin`` into NumPy arrays (no torch, no CTranslate2 needed).

The layout, from CTranslate2's ``src/models/model.cc`` (binary versions 2-6):

    uint32 binary_version
    string spec_name, uint32 spec_revision             (version >= 2)
    uint32 num_variables, then for each:
        string name; uint8 rank; uint32 dims[rank]
        uint8 dtype; uint32 num_bytes                   (version >= 4; dtype = DataType enum)
        bytes data
    uint32 num_aliases, then (string alias, string target) pairs   (version >= 3)

A string is a uint16 length followed by that many bytes, the last one NUL. DataType is
FLOAT32, INT8, INT16, INT32, FLOAT16, BFLOAT16 (0-5). Quantized weights come with a
``<name>_scale`` variable; they are de-quantized here to float32.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from ..errors import ModelFormatError

_DTYPES: dict[int, str] = {
    0: "float32",
    1: "int8",
    2: "int16",
    3: "int32",
    4: "float16",
    5: "bfloat16",
}


@dataclass(eq=False)  # identity: == would compare its numpy arrays
class CT2Model:
    spec: str
    revision: int
    binary_version: int
    variables: dict[str, npt.NDArray[np.generic]]
    aliases: dict[str, str]

    def get(self, name: str) -> npt.NDArray[np.generic]:
        return self.variables[self.aliases.get(name, name)]

    def float32(self, name: str) -> npt.NDArray[np.float32]:
        """A variable as float32, de-quantized with its ``_scale`` when it is int8/int16."""
        value = self.get(name)
        if value.dtype in (np.int8, np.int16):
            scale = self.get(name + "_scale").astype(np.float32)
            return value.astype(np.float32) / scale.reshape(-1, *([1] * (value.ndim - 1)))
        return value.astype(np.float32)


def _u(fh: BinaryIO, fmt: str) -> int:
    """One little-endian integer of struct format ``fmt``."""
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise ModelFormatError("unexpected end of CTranslate2 model.bin")
    return int(struct.unpack("<" + fmt, data)[0])


def _string(fh: BinaryIO) -> str:
    """A uint16 length, then that many bytes, the last one NUL."""
    n = _u(fh, "H")
    return fh.read(n).rstrip(b"\0").decode("utf-8")


def _variable(fh: BinaryIO, version: int) -> tuple[str, npt.NDArray[np.generic]]:
    """One named variable: its shape, dtype and data (bfloat16 widened to float32)."""
    name = _string(fh)
    rank = _u(fh, "B")
    dims = [_u(fh, "I") for _ in range(rank)]
    if version >= 4:
        dtype = _DTYPES[_u(fh, "B")]
        num_bytes = _u(fh, "I")
    else:
        item_size = _u(fh, "B")
        dtype = {4: "float32", 2: "int16", 1: "int8"}[item_size]
        num_bytes = _u(fh, "I") * item_size
    raw = fh.read(num_bytes)
    if dtype == "bfloat16":
        u16 = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
        arr: npt.NDArray[np.generic] = u16.view(np.float32)
    else:
        arr = np.frombuffer(raw, dtype=dtype).copy()
    return name, arr.reshape(dims) if dims else arr.reshape(())


def _read(fh: BinaryIO, model_bin: Path) -> CT2Model:
    """The layout in the module docstring, read front to back."""
    version = _u(fh, "I")
    if not 2 <= version <= 6:
        raise ModelFormatError(f"{model_bin}: unsupported CTranslate2 binary version {version}")
    spec, revision = _string(fh), _u(fh, "I")
    variables = dict(_variable(fh, version) for _ in range(_u(fh, "I")))
    aliases = {}
    if version >= 3:
        for _ in range(_u(fh, "I")):
            alias = _string(fh)
            aliases[alias] = _string(fh)
    return CT2Model(spec, revision, version, variables, aliases)


def read_ct2_model(path: str | Path) -> CT2Model:
    """Every variable of a CTranslate2 ``model.bin`` (or of the directory holding it).
    A file that is not one is a :class:`~malsori.errors.ModelFormatError`, one line."""
    p = Path(path)
    model_bin = p / "model.bin" if p.is_dir() else p
    try:
        with open(model_bin, "rb") as fh:
            return _read(fh, model_bin)
    except OSError as exc:
        raise ModelFormatError(f"{model_bin}: cannot read: {exc.strerror or exc}") from exc
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise ModelFormatError(
            f"{model_bin}: not a CTranslate2 model.bin this reader understands ({exc!r})"
        ) from exc
