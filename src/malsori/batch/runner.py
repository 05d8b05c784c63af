"""Run a batch job: lock the output directory, scan, bring the job database up to date with
what is on disk and what is asked, then dispatch to the local engine or Ray."""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._atomic import sweep_leftovers
from ..errors import MalsoriError, OptionsError
from .config import BatchConfig
from .jobs import DB_NAME, JobStore, RunLock, linked_folder, output_intact, record_outputs
from .naming import lookalikes, output_bases
from .progress import BatchResult
from .scan import scan


@dataclass
class Preparation:
    """What the start of a run found and did (printed as the run's first lines)."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    unreadable: int = 0
    reclaimed: int = 0
    retried: int = 0
    forced: int = 0
    stale_outputs: list[str] = field(default_factory=list)
    stale_request: list[str] = field(default_factory=list)
    redo_request: int = 0
    moved_from: str | None = None
    warnings: list[str] = field(default_factory=list)
    skipped: int = 0
    gone: list[str] = field(default_factory=list)
    fresh_retries: int = 0
    blocked: int = 0
    swept: int = 0  # temporary files of a killed run, removed
    out_inside: str | None = None  # the output folder, inside the input (not scanned)
    #: failed files of an earlier run that this run's --glob does not cover (left alone)
    failed_outside: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> int:  # counts["new"], as before
        return int(getattr(self, key))


def _model_key(config: BatchConfig) -> tuple[str, str]:
    """The model as recorded per file: a bundled/registered name, or a directory's path,
    and the sha256 of its model.bin (a folder's path stays the same when another model is
    exported into it: a tester's rerun kept tiny.en's English for Korean files).
    Resolving it here also fails fast, before any worker starts or any file is recorded:
    a missing model, or an English-only model asked for another language or to translate
    (each file would fail alone otherwise)."""
    from ..capabilities import is_multilingual_vocab, lacks_language, unsupported
    from ..models import model_fingerprint, resolve_model, vocabulary_size

    resolved = resolve_model(config.model)
    size = vocabulary_size(resolved.path)
    if size is not None:  # unknown: the workers' own check (engine.check_options) decides
        reason = unsupported(
            config.model,
            is_multilingual_vocab(size),
            config.options.get("language"),
            config.options.get("task") or "transcribe",
        )
        reason = reason or lacks_language(config.model, size, config.options.get("language"))
        if reason is not None:
            raise OptionsError(reason)
    key = str(resolved.path) if resolved.source == "local" else resolved.name
    try:
        return key, model_fingerprint(resolved.path)
    except OSError as exc:
        raise MalsoriError(f"cannot read the model {config.model}: {exc.strerror or exc}") from None


def prepare(
    config: BatchConfig, store: JobStore, pattern: str | None, retries: int, force: bool
) -> tuple[BatchConfig, Preparation]:
    """Scan the input and bring the job database up to date; returns the config completed
    with the model key and output names, and what was found."""
    root, out = Path(config.input_dir), Path(config.output_dir)
    prep = Preparation()
    # The output directory is not walked when it lies inside the input, and nothing the job
    # wrote itself is ever taken for an input (-o INPUT_DIR --glob '*').
    inside = out.resolve() != root.resolve()
    found = scan(root, pattern, exclude=out if inside else None)
    if inside and out.resolve().is_relative_to(root.resolve()):
        prep.out_inside = out.resolve().relative_to(root.resolve()).as_posix()
    owned = store.owners()
    if not inside:
        found.files = [(rel, p) for rel, p in found.files if rel not in owned]
    prep.moved_from = store.bind_input(root, found.files)
    counts = store.sync(found.files)
    prep.new, prep.changed, prep.unchanged = counts["new"], counts["changed"], counts["unchanged"]
    for rel, reason in found.unreadable:
        store.record_unreadable(rel, reason)
    prep.unreadable = len(found.unreadable)
    prep.skipped = found.skipped
    prep.warnings = [f"malsori: warning: {rel!r}: {reason}" for rel, reason in found.unreadable]
    prep.gone, spared = store.forget_missing(root, {rel for rel, _ in found.unreadable})
    if spared:
        prep.warnings.append(
            f"malsori: warning: none of the job's {spared} file(s) is in {root} (an unmounted "
            "share? an emptied folder?): nothing is dropped from the job"
        )
    # Output names over every file the job knows and every audio file beside them, so that
    # they stay stable across reruns with other --glob patterns.
    known = [r.path for r in store.rows() if r.sha256] + found.siblings
    config = replace(config, names=output_bases(known))
    this_run = {rel for rel, _ in found.files}
    expected = {rel: config.expected_outputs(rel) for rel in this_run}
    owners, loose = store.owners(), store.loose()  # outputs move no more in this run's set-up
    known_outputs = set(owners) | set(loose) | {p for ps in expected.values() for p in ps}
    prep.swept = sweep_leftovers(out / p for p in known_outputs)
    prep.reclaimed = store.reclaim()
    if force:
        prep.forced = store.force(this_run)
    else:
        stale = store.refresh_done(config.request(), expected)
        prep.stale_outputs = stale["outputs"]
        prep.stale_request = stale["request"]
        prep.redo_request = len(stale["redone_request"])
    prep.fresh_retries = store.new_request(config.request())
    # Failed files outside this run's --glob are an earlier run's (one --glob '*' took in
    # notes.txt): not retried by this run, and not counted in its exit status (a tester's
    # cron job failed on them for ever); said once, with how to retry them.
    covered = this_run | {rel for rel, _ in found.unreadable}
    prep.retried = store.retry_failed(retries, only=covered)
    # (when none of the job's files was found, an unmounted share, nothing is "outside":
    # its failures still fail the run)
    prep.failed_outside = [] if spared else store.failed_outside(covered)
    config = replace(config, also=_kept_formats(store, out, config.formats))
    # Every file this run will do: this run's, and any left pending by an earlier run
    # (another --glob, an interrupted one): each gets its outputs checked.
    expected = {rel: config.expected_outputs(rel) for rel in this_run | set(store.pending())}
    twins = lookalikes(config.names)
    prep.warnings += _edited_left_behind(store, out, expected)
    forced = this_run if force else set()  # --force: this run's files, never the others'
    blocked, replaceable = _check_targets(store, out, expected, forced, twins, owners, loose)
    config = replace(config, replaceable=replaceable)
    prep.blocked = len(blocked)
    prep.stale_outputs = [rel for rel in prep.stale_outputs if rel not in blocked]
    return config, prep


def _edited_left_behind(store: JobStore, out: Path, expected: dict[str, list[str]]) -> list[str]:
    """A file whose outputs take new names this run (another input now shares its stem),
    and whose old output was edited since it was written: that output is kept where it is
    (never moved or deleted), so say where the corrections are and where the new
    transcript goes."""
    notes = []
    for rel in sorted(expected):
        for record in store.previous_outputs(rel):
            old = str(record.get("path", ""))
            if not old or old in expected[rel] or not os.path.isfile(out / old):
                continue
            if output_intact(out, record):
                continue  # as written: moved to the new name when the file is done
            new = next(
                (p for p in expected[rel] if Path(p).suffix == Path(old).suffix), "a new name"
            )
            notes.append(
                f"malsori: warning: {out / old} was edited since it was written and is kept "
                f"as it is; {rel}'s transcript now goes to {out / new}"
            )
    return notes


def _kept_formats(store: JobStore, out: Path, asked: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """For each file to be (re)done: the formats of its earlier outputs that were not asked
    this time but are still exactly as written. They are written again from the new
    transcript; left alone they would contradict it (a json of the old speaker count next
    to a txt of the new one)."""
    kept: dict[str, tuple[str, ...]] = {}
    for rel in store.pending():
        formats = []
        for record in store.previous_outputs(rel):
            fmt = Path(record["path"]).suffix.lstrip(".")
            if fmt and fmt not in asked and fmt not in formats and output_intact(out, record):
                formats.append(fmt)
        if formats:
            kept[rel] = tuple(formats)
    return kept


def _check_targets(
    store: JobStore,
    out: Path,
    expected: dict[str, list[str]],
    forced: set[str],
    twins: dict[str, str],
    owners: dict[str, tuple[str, dict[str, Any]]],
    loose: dict[str, dict[str, Any]],
) -> tuple[set[str], dict[str, dict[str, Any]]]:
    """A pending file whose output path holds something malsori may not overwrite fails now,
    with the reason, instead of replacing it: a folder, a file the job did not write (your
    notes.txt in OUT, another job's result), a file written for another input and edited
    since, or the file's own output edited since (a hand-corrected transcript; ``--force``
    redoes it anyway). ``owners``/``loose``: the job's recorded and loose outputs (read
    once by the caller). A file this job wrote that no input owns any more (a loose output)
    may be replaced while still as written, by the input it was written for (one that
    comes back, or whose run was killed before recording it), never by another. Returns
    the files failed, and each existing output path that may be replaced with its size and
    sha256 now: a worker replaces it only if it is still so (a file written into OUT
    meanwhile is kept)."""
    pending = set(store.pending())
    blocked: set[str] = set()
    replaceable: dict[str, dict[str, Any]] = {}
    # The job's outputs by how their names look (NFC): a dropped input's kept transcript
    # (회의.txt) and a new input's (회의.txt from a Mac, in NFD) would be two files that
    # look the same, and one file on macOS or a normalizing share.
    seen: dict[str, tuple[str, str | None]] = {}
    for path, (owner, _) in owners.items():
        seen[unicodedata.normalize("NFC", path)] = (path, owner)
    for path, record in loose.items():
        seen.setdefault(unicodedata.normalize("NFC", path), (path, record["input"]))
    listings: dict[Path, dict[str, str]] = {}
    for rel in sorted(pending & set(expected)):
        if rel in twins:  # two names one disk may take for the same: neither is written
            store.block(
                rel,
                f"its output name looks the same as that of {twins[rel]} (they differ only in "
                f"Unicode normal form: this one is {_form(rel)}, the other {_form(twins[rel])}; "
                "NFD is how a Mac writes names); rename one of them",
            )
            blocked.add(rel)
            continue
        allowed: dict[str, dict[str, Any]] = {}
        reason = linked_folder(out, expected[rel])
        if reason is not None:
            store.block(rel, reason)
            blocked.add(rel)
            continue
        for p in expected[rel]:
            target = out / p
            twin, twin_input = seen.get(unicodedata.normalize("NFC", p), (p, rel))
            if twin == p:  # a file the job never wrote (transcribe -o's, yours) counts too
                found = _lookalike_on_disk(target, listings)
                if found is not None:
                    twin, twin_input = os.path.relpath(found, out), None
            if twin != p and os.path.lexists(out / twin):
                whose = (
                    ", this input's earlier transcript (move it away)"
                    if twin_input == rel
                    else f", the transcript of {twin_input}"
                    if twin_input
                    else ""
                )
                # the two names print the same: say which is which (a tester could not
                # tell them apart after renaming an archive's names from NFD to NFC)
                reason = (
                    f"{target} ({_form(p)}) would look the same as {out / twin} "
                    f"({_form(twin)}){whose} (the names differ only in Unicode normal form; "
                    "NFD is how a Mac writes names); rename the input or move that file away"
                )
                store.block(rel, reason)
                blocked.add(rel)
                break
            if not os.path.lexists(target):
                continue
            if target.is_dir():
                reason = f"{target} is a folder; rename it or the input"
            elif p in loose and loose[p]["input"] not in (None, rel):
                # the transcript of an input that left the job: only that input replaces it
                reason = (
                    f"{target} holds the transcript of {loose[p]['input']}, which is no "
                    "longer in the input folder (its outputs stay); move it away to write "
                    "this file's there"
                )
            elif p in loose and output_intact(out, loose[p]):
                allowed[p] = loose[p]  # written by this job, not (or no longer) recorded
            elif p not in owners:
                reason = (
                    f"{target} exists and was not written by this job; move it away or use "
                    "another --output-dir"
                )
            else:
                owner, record = owners[p]
                if output_intact(out, record):
                    allowed[p] = record
                elif owner != rel:
                    reason = (
                        f"{target} (from {owner}) was edited since it was written; move it away"
                    )
                elif rel not in forced:
                    reason = (
                        f"{target} was changed since this job wrote it and is kept; move it "
                        "away to redo this file (or run with --force)"
                    )
                else:
                    allowed[p] = record_outputs(out, [target])[0]  # as it is now
            if reason is not None:
                store.block(rel, reason)
                blocked.add(rel)
                break
        else:
            replaceable.update(allowed)
    return blocked, replaceable


def _lookalike_on_disk(target: Path, listings: dict[Path, dict[str, str]]) -> Path | None:
    """A file beside ``target`` whose name differs from its name only in Unicode normal
    form (``listings``: each folder's names by NFC, read once)."""
    folder = target.parent
    if folder not in listings:
        try:
            listings[folder] = {unicodedata.normalize("NFC", n): n for n in os.listdir(folder)}
        except OSError:
            listings[folder] = {}
    other = listings[folder].get(unicodedata.normalize("NFC", target.name))
    return folder / other if other is not None and other != target.name else None


def _refuse_nested(out: Path) -> None:
    """Refuse an output directory inside another batch job's, or holding one: each job
    locks only its own folder, so two jobs writing into one tree (``-o out`` and
    ``-o out/sub``) overwrite each other's results and both report them done."""
    here = out.resolve()
    other = next((p for p in here.parents if (p / DB_NAME).is_file()), None)
    if other is None:
        for folder, _, files in os.walk(here):
            if folder != str(here) and DB_NAME in files:
                other = Path(folder)
                break
    if other is None:
        return
    where = "is inside" if other in here.parents else "holds"
    raise MalsoriError(
        f"{out} {where} the output directory of another batch job ({other}); two jobs "
        "writing into one tree overwrite each other's results: use a separate folder"
    )


def _form(name: str) -> str:
    """How a name is spelled in Unicode: "NFC", "NFD" (a Mac's), or "mixed"."""
    if unicodedata.is_normalized("NFC", name):
        return "NFC"
    return "NFD" if unicodedata.is_normalized("NFD", name) else "mixed"


def _moved(out: Path) -> str:
    return (
        f"{out} was moved or deleted during the run; if it was moved, its job database and "
        "results moved with it: run again with the new --output-dir"
    )


def run_batch(
    config: BatchConfig,
    *,
    workers: int = 1,
    retries: int = 2,
    pattern: str | None = None,
    engine: str = "local",
    address: str | None = None,
    progress: bool = True,
    force: bool = False,
    quiet: bool = False,
) -> tuple[BatchResult, Preparation]:
    """Transcribe every audio file under ``config.input_dir`` into ``config.output_dir``.

    One run per output directory at a time (a second one raises at once); the job database
    in the output directory makes a rerun resume (see :mod:`malsori.batch.jobs`)."""
    from ..engine import default_cpu_threads

    if workers < 1:
        raise OptionsError("--workers must be >= 1")
    if retries < 0:
        raise OptionsError("--retries must be >= 0")
    if engine not in ("local", "ray"):
        raise OptionsError(f"unknown engine {engine!r} (local or ray)")
    root, out = Path(config.input_dir), Path(config.output_dir)
    if not root.is_dir():
        raise MalsoriError(f"{root}: not a directory")
    key, fingerprint = _model_key(config)
    config = replace(config, model_key=key, model_sha256=fingerprint)
    _refuse_nested(out)  # before the folder is made: a refused run leaves none in the other job's
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MalsoriError(f"cannot create output directory {out}: {exc.strerror or exc}") from exc
    if config.threads is None:  # workers x threads <= cores
        config = replace(config, threads=max(1, default_cpu_threads() // workers))
    with RunLock(out) as lock:
        fresh = not (out / DB_NAME).exists()
        try:
            store = JobStore(out)
        except MalsoriError as exc:  # OUT moved away just now: say so, not "disk full"
            if lock.moved():
                raise MalsoriError(_moved(out)) from exc
            raise
        try:  # again, now that this job's database exists (two jobs started at once)
            _refuse_nested(out)
        except MalsoriError:
            store.close()
            if fresh:  # leave no empty job behind to block the other folder later
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{store.path}{suffix}").unlink(missing_ok=True)
            raise
        db_inode = store.path.stat().st_ino
        try:
            config, prep = prepare(config, store, pattern, retries, force)
            try:
                if engine == "ray":
                    from .ray_engine import run_ray

                    result = run_ray(config, store, workers, address, progress, quiet)
                else:
                    from .local import run_local

                    result = run_local(config, store, workers, retries, progress)
            except MalsoriError as exc:  # a write to the moved database failed
                if lock.moved():
                    raise MalsoriError(_moved(out)) from exc
                raise
            try:
                same = store.path.stat().st_ino == db_inode
            except OSError:
                same = False
            if not same and (lock.moved() or not out.is_dir()):  # mv OUT, or rm -rf OUT
                result.fatal = _moved(out)
            elif not same:  # the results went to a deleted database
                result.fatal = (
                    f"the job database of {out} was deleted during the run; the results "
                    "written are no longer recorded, so a run into it will not replace them: "
                    "move them away (or choose another --output-dir) and run again"
                )
        finally:
            store.close()
    return result, prep
