"""Job state of a batch run: one SQLite database in the output directory (WAL mode), one row
per input file. Shared by the local engine and the Ray engine, so a job resumes across both.

Status moves pending -> running -> done | failed. A row left ``running`` by a process that
died is reclaimed (back to pending); a file whose content changed is redone; a done file
whose outputs are missing or were changed on disk, or that was made with another model,
options or formats than this run asks for, is redone (see :meth:`JobStore.refresh_done`),
except that an output edited since it was written is never replaced without ``--force``
(the runner fails that file with the reason).

Each output is recorded with its size and sha256 at write time. One run at a time holds
:class:`RunLock` on the output directory; a second run refuses at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._atomic import NO_HARD_LINKS
from .._hashing import sha256_file
from ..errors import MalsoriError, NoSpaceError

DB_NAME = ".malsori-jobs.sqlite"
LOCK_NAME = ".malsori-batch.lock"

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,          -- relative to the input directory
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','running','done','failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    outputs TEXT,                   -- JSON list of {path (relative to OUT), size, sha256}
    duration REAL,                  -- seconds of audio
    processing_time REAL,           -- seconds spent transcribing
    model TEXT,
    options TEXT,                   -- JSON of the decoding options used
    worker TEXT,                    -- "host:pid" of the process holding a running row
    updated_at REAL,
    request TEXT,                   -- JSON of what was asked: model, compute_type, formats, options
    ctime_ns INTEGER                -- inode change time: a file swapped in with the same size
                                    -- and mtime (mv, cp -p) still counts as a change to check
);
CREATE INDEX IF NOT EXISTS files_status ON files(status);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Outputs this job wrote that no row owns: those of inputs dropped from the job (gone from
-- the input folder), and those a run wrote but was killed before recording. Such a file,
-- still as written, may be replaced by this job; anything else in OUT may not.
CREATE TABLE IF NOT EXISTS loose_outputs (
    path TEXT PRIMARY KEY,          -- relative to OUT
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    input TEXT                      -- the input it was written for: only that one replaces it
);
"""

#: Columns added after the first release; added to older databases on open.
_MIGRATIONS = {
    "files": {
        "request": "ALTER TABLE files ADD COLUMN request TEXT",
        "ctime_ns": "ALTER TABLE files ADD COLUMN ctime_ns INTEGER",
    },
    "loose_outputs": {"input": "ALTER TABLE loose_outputs ADD COLUMN input TEXT"},
}


def worker_id() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"


def _alive(worker: str | None) -> bool:
    if not worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != os.uname().nodename:
        return True  # another machine's worker: cannot tell; keep it
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    try:  # a killed worker whose parent did not reap it yet is a zombie: that is dead
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def _db_error(exc: sqlite3.Error, path: Path) -> MalsoriError:
    text = str(exc)
    if "full" in text or "too large" in text:
        return NoSpaceError(f"no space left writing the job database {path}")
    if "disk I/O error" in text:  # SQLite's word for a failed write (EFBIG, ENOSPC, EIO)
        return NoSpaceError(
            f"cannot write the job database {path} (disk I/O error: disk full, or a "
            "file-size limit?)"
        )
    return MalsoriError(f"job database {path}: {text}")


@dataclass(frozen=True)
class FileRow:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    status: str
    attempts: int
    error: str | None
    outputs: list[dict[str, Any]]
    duration: float | None
    processing_time: float | None
    model: str | None
    options: dict[str, Any] | None
    request: dict[str, Any] | None

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> FileRow:
        outputs = json.loads(row["outputs"] or "[]")
        # Databases of the first release recorded bare paths (no size/hash).
        outputs = [o if isinstance(o, dict) else {"path": str(o)} for o in outputs]
        return cls(
            row["path"],
            row["size"],
            row["mtime_ns"],
            row["sha256"],
            row["status"],
            row["attempts"],
            row["error"],
            outputs,
            row["duration"],
            row["processing_time"],
            row["model"],
            json.loads(row["options"]) if row["options"] else None,
            json.loads(row["request"]) if row["request"] else None,
        )


def record_outputs(output_dir: Path, paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Size and sha256 of each written output, paths relative to ``output_dir``."""
    out = []
    for p in paths:
        out.append(
            {
                "path": Path(os.path.relpath(p, output_dir)).as_posix(),
                "size": p.stat().st_size,
                "sha256": sha256_file(p),
            }
        )
    return out


def linked_folder(out: Path, paths: list[str]) -> str | None:
    """Why outputs ``paths`` (relative to OUT) cannot be written: a folder on the way inside
    OUT is a symbolic link (it may lead into another job's folder, where this job's files
    would replace that job's results, or back into OUT, where two inputs would share one
    file). None when every folder is a real one or does not exist yet."""
    for p in paths:
        folder = out
        for part in Path(p).parent.parts:
            folder = folder / part
            if folder.is_symlink():
                return (
                    f"{folder} is a symbolic link; malsori writes only into real folders "
                    f"inside {out} (replace the link by a folder)"
                )
    return None


def output_intact(output_dir: Path, record: dict[str, Any]) -> bool:
    """True when a recorded output is on disk with the size and hash it was written with."""
    path = output_dir / record["path"]
    try:
        if "size" in record and path.stat().st_size != record["size"]:
            return False
        return "sha256" not in record or sha256_file(path) == record["sha256"]
    except OSError:
        return False


def _compact(options: dict[str, Any] | None) -> str:
    """``{"max_line_width": 30, "max_cps": None}`` -> ``max_line_width=30``; none: defaults."""
    set_ = {k: v for k, v in (options or {}).items() if v not in (None, False)}
    return (
        ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in set_.items())
        or "defaults"
    )


def satisfies(recorded: dict[str, Any] | None, asked: dict[str, Any]) -> list[str]:
    """What differs between a done file's recorded request and this run's: an empty list
    when the recorded result serves the new request. Fewer formats than recorded is fine;
    so are word timings recorded when not asked for (subtitle formats ask for them)."""
    if recorded is None:
        return ["request not recorded (older job database)"]
    diffs = []
    if recorded.get("model") != asked.get("model"):
        diffs.append(f"model {recorded.get('model')} -> {asked.get('model')}")
    was, now = recorded.get("compute_type"), asked.get("compute_type")
    # The compute type as asked: ``auto`` (the default since int8 was) is each worker's own
    # (int8 on a CPU, float16 on a GPU), so a job moved between machines, or a Ray cluster of
    # both, is not redone back and forth; a file made with int8 (the default before) is kept.
    if was != now and not (now == "auto" and was == "int8"):
        diffs.append(f"compute_type {was} -> {now}")
    was, now = recorded.get("model_sha256"), asked.get("model_sha256")
    if not diffs and was and now and was != now:  # (not recorded by older versions)
        diffs.append(
            f"model {asked.get('model')}: its model.bin changed ({was[:12]} -> {now[:12]})"
        )
    missing = [f for f in asked["formats"] if f not in recorded.get("formats", [])]
    if missing:
        diffs.append(
            f"formats {','.join(recorded.get('formats', []))} -> {','.join(asked['formats'])}"
        )
    if {"srt", "vtt"} & set(asked["formats"]) and recorded.get("subtitles") != asked.get(
        "subtitles"
    ):
        diffs.append(
            f"subtitles {_compact(recorded.get('subtitles'))} -> {_compact(asked.get('subtitles'))}"
        )
    if recorded.get("speakers") != asked.get("speakers"):  # --diarize and its options
        was, now = (
            "off" if x is None else _compact(x)
            for x in (recorded.get("speakers"), asked.get("speakers"))
        )
        diffs.append(f"speakers {was} -> {now}")
    old, new = dict(recorded.get("options", {})), dict(asked["options"])
    if old.get("word_timestamps") and not new.get("word_timestamps"):
        new["word_timestamps"] = True
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            diffs.append(f"{key} {old.get(key)!r} -> {new.get(key)!r}")
    return diffs


class RunLock:
    """One batch run per output directory: an exclusive ``flock`` on OUT/.malsori-batch.lock
    (which shows the holder's pid) and on OUT itself, released by the kernel when the
    process ends (also on kill -9). The lock on the directory holds when the lock file is
    deleted during a run (a second run would otherwise lock a new file of the same name),
    and keeps ``transcribe -o`` from writing into OUT during the run (it takes that lock
    while it writes: :mod:`malsori._ledger`)."""

    def __init__(self, output_dir: Path) -> None:
        self.path = output_dir / LOCK_NAME
        self._fds: list[int] = []

    def _busy(self, fd: int) -> MalsoriError:
        holder = ""
        with contextlib.suppress(OSError):
            holder = os.pread(fd, 100, 0).decode("ascii", "replace").strip()
        pid = f" (pid {holder})" if holder else ""
        return MalsoriError(f"another batch is running on {self.path.parent}{pid}")

    def _lock(self, fd: int, what: Path) -> bool:
        """Lock ``fd``; False when another process holds it (asked a few times over 0.1 s:
        ``transcribe -o`` looks at the lock for a moment before it decodes)."""
        for attempt in range(5):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    if attempt < 4:
                        time.sleep(0.025)
                    continue
                if exc.errno in (errno.EINVAL, errno.ENOTSUP, errno.EBADF) and what.is_dir():
                    return True  # a file system without locks on directories: the file lock
                raise MalsoriError(f"cannot lock {what}: {exc.strerror or exc}") from exc
        return False

    def acquire(self) -> None:
        out = self.path.parent
        try:
            dir_fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
            self._fds.append(dir_fd)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            self._fds.append(fd)
        except OSError as exc:
            self.release()
            raise MalsoriError(
                f"cannot write to output directory {out}: {exc.strerror or exc}"
            ) from None
        try:
            if not self._lock(fd, self.path):
                raise self._busy(fd)
            if not self._lock(dir_fd, out):  # a batch whose lock file was deleted, or a
                # `transcribe -o` writing its files into OUT at this moment
                raise MalsoriError(
                    f"another malsori run is writing into {out} (a batch job, or transcribe "
                    "-o); run again when it has ended"
                )
        except MalsoriError:
            self.release()
            raise
        with contextlib.suppress(OSError):  # the pid is information only; the lock holds
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    def moved(self) -> bool:
        """True when OUT is no longer the directory this lock holds (moved or deleted)."""
        if not self._fds:
            return False
        try:
            held, now = os.fstat(self._fds[0]), os.stat(self.path.parent)
        except OSError:
            return True
        return (held.st_dev, held.st_ino) != (now.st_dev, now.st_ino)

    def release(self) -> None:
        for fd in reversed(self._fds):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _setup(db: sqlite3.Connection) -> None:
    """WAL mode, a small log, and the tables (a no-op on a database that has them)."""
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    # Keep the write-ahead log small (32 KiB): it is reset after each checkpoint.
    db.execute("PRAGMA wal_autocheckpoint=8")
    db.execute("PRAGMA journal_size_limit=65536")
    db.executescript(SCHEMA)


def _create_database(path: Path) -> None:
    """Make the job database whole under a temporary name, then link it into place: no
    process (a second run, ``status``, a worker) ever opens it without its tables, and a
    database that another process made meanwhile is kept, not replaced."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            _setup(db)
        finally:
            db.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another run made it first: it is the one used
        except OSError as exc:
            if exc.errno not in NO_HARD_LINKS:
                raise
            if not os.path.lexists(path):  # a disk without hard links (FAT, exFAT)
                os.replace(tmp, path)
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                os.unlink(f"{tmp}{suffix}")


class JobStore:
    """The SQLite job database of one output directory. Safe to open from several processes.

    SQLite errors (a full disk above all) surface as :class:`MalsoriError` with one line."""

    def __init__(
        self, output_dir: str | Path, *, readonly: bool = False, create: bool = True
    ) -> None:
        """``create=False`` (a worker joining a run): the database must exist already; a
        worker never makes a new, empty one (OUT moved or deleted during the run)."""
        self.output_dir = Path(output_dir)
        self.path = self.output_dir / DB_NAME
        if readonly:
            self._open_readonly()
            return
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if not self.path.exists():
                    _create_database(self.path)
            elif not self.path.is_file():
                raise MalsoriError(
                    f"the job database {self.path} is gone (OUT moved or deleted during the run)"
                )
            # mode=rw: never a new, empty database (OUT moved away since the check above)
            target = f"{self.path.resolve().as_uri()}?mode=rw"
            self._db = sqlite3.connect(target, timeout=60, isolation_level=None, uri=True)
            self._db.row_factory = sqlite3.Row
            _setup(self._db)
            for table, added in _MIGRATIONS.items():
                columns = {r["name"] for r in self._db.execute(f"PRAGMA table_info({table})")}
                for column, sql in added.items():
                    if column not in columns:
                        self._db.execute(sql)
        except sqlite3.Error as exc:
            raise _db_error(exc, self.path) from exc
        except OSError as exc:
            raise MalsoriError(f"cannot open {self.path}: {exc.strerror or exc}") from exc

    def _open_readonly(self) -> None:
        """For ``status``/``report``: works on a read-only archive or a full disk. The WAL
        needs a writable -shm file; where there is none, read the file as immutable."""
        uri = self.path.resolve().as_uri()
        try:
            self._db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None)
            self._db.execute("SELECT COUNT(*) FROM files").fetchone()
        except sqlite3.Error:
            try:
                self._db = sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)
                self._db.execute("SELECT COUNT(*) FROM files").fetchone()
            except sqlite3.Error as exc:
                raise _db_error(exc, self.path) from exc
        self._db.row_factory = sqlite3.Row

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise _db_error(exc, self.path) from exc

    # -- meta -----------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?,?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

    def bind_input(self, input_dir: Path, files: Iterable[tuple[str, Path]]) -> str | None:
        """Tie this output directory to one input directory; returns the old path when the
        input was moved. Another input directory is refused (its files would overwrite this
        job's outputs of the same name) unless the old one is gone *and* this one holds the
        job's files: at least one at the same relative path with the same content, and none
        at a known path with other content (a moved archive, not another one that happens
        to use some of the same names and contents)."""
        new = str(input_dir.resolve())
        old = self.get_meta("input_dir")
        if old is None or old == new:
            self.set_meta("input_dir", new)
            return None
        refuse = MalsoriError(
            f"{self.output_dir} holds the batch job of {old}; give this input another --output-dir"
        )
        if Path(old).is_dir():
            raise refuse
        known = {
            r["path"]: r["sha256"]
            for r in self._db.execute("SELECT path, sha256 FROM files WHERE sha256 != ''")
        }
        same, other = 0, []
        for rel, path in files:
            if rel in known:
                if sha256_file(path) == known[rel]:
                    same += 1
                else:
                    other.append(rel)
        if known and (not same or other):
            found = (
                f"{len(other)} of its files have other content there (e.g. {other[0]!r})"
                if other
                else f"none of the files in {new} is one of its files"
            )
            raise MalsoriError(
                f"{self.output_dir} holds the batch job of {old}, which is gone, and {found}: "
                "another archive, not the same one moved; give this input another --output-dir"
            )
        self.set_meta("input_dir", new)
        return old

    # -- set-up ---------------------------------------------------------------------------

    def sync(self, files: Iterable[tuple[str, Path]]) -> dict[str, int]:
        """Add new files; reset changed ones (size/mtime differ and content hash differs).
        Returns counts of new, changed and unchanged files. Written in transactions of up to
        200 files (the run lock keeps other runs out meanwhile)."""
        counts = {"new": 0, "changed": 0, "unchanged": 0}
        known = {
            r["path"]: r
            for r in self._db.execute("SELECT path, size, mtime_ns, ctime_ns, sha256 FROM files")
        }
        now = time.time()
        inserts: list[tuple[Any, ...]] = []
        touched: list[tuple[Any, ...]] = []
        changed: list[tuple[Any, ...]] = []

        def flush() -> None:
            with self._tx() as db:
                db.executemany(
                    "INSERT INTO files (path, size, mtime_ns, ctime_ns, sha256, updated_at) "
                    "VALUES (?,?,?,?,?,?)",
                    inserts,
                )
                db.executemany(
                    "UPDATE files SET size=?, mtime_ns=?, ctime_ns=? WHERE path=?", touched
                )
                db.executemany(
                    "UPDATE files SET size=?, mtime_ns=?, ctime_ns=?, sha256=?, "
                    "status='pending', attempts=0, error=NULL, updated_at=? WHERE path=?",
                    changed,
                )
            inserts.clear()
            touched.clear()
            changed.clear()

        for rel, path in files:
            st = path.stat()
            row = known.get(rel)
            if (
                row is not None
                and row["size"] == st.st_size
                and row["mtime_ns"] == st.st_mtime_ns
                and row["ctime_ns"] in (st.st_ctime_ns, None)
            ):
                counts["unchanged"] += 1
                continue
            digest = sha256_file(path)
            stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if row is None:
                inserts.append((rel, *stamp, digest, now))
                counts["new"] += 1
            elif row["sha256"] == digest:  # touched, not changed
                touched.append((*stamp, rel))
                counts["unchanged"] += 1
            else:
                changed.append((*stamp, digest, now, rel))
                counts["changed"] += 1
            if len(inserts) + len(touched) + len(changed) >= 200:
                flush()
        flush()
        return counts

    def forget_missing(self, root: Path, unreadable: set[str]) -> tuple[list[str], int]:
        """Drop the rows of inputs that are gone from ``root`` (deleted or moved away) and of
        folders that were unreadable and are readable now; their outputs stay on disk, as
        loose outputs of this job (a file that comes back may replace them). When *every*
        file of the job is gone, nothing is dropped: an unmounted share or a folder emptied
        for a moment looks the same. Returns (the dropped paths, how many were kept so)."""
        gone = []
        total = 0
        outputs: list[dict[str, Any]] = []
        for r in self._db.execute("SELECT path, outputs FROM files"):
            rel = str(r["path"])
            total += 1
            if rel in unreadable:
                continue
            if rel.endswith("/") or not os.path.lexists(root / rel):
                gone.append(rel)
                outputs += [
                    {**o, "input": rel}
                    for o in json.loads(r["outputs"] or "[]")
                    if isinstance(o, dict)
                ]
        if gone and len(gone) == total and not all(rel.endswith("/") for rel in gone):
            return [], total
        with self._tx() as db:
            db.executemany("DELETE FROM files WHERE path=?", [(p,) for p in gone])
            self._add_loose(db, outputs)
        return gone, 0

    @staticmethod
    def _add_loose(db: sqlite3.Connection, records: Iterable[dict[str, Any]]) -> None:
        """``records``: output records, each with the ``input`` it was written for."""
        db.executemany(
            "INSERT OR REPLACE INTO loose_outputs (path, size, sha256, input) VALUES (?,?,?,?)",
            [(o["path"], o["size"], o["sha256"], o.get("input")) for o in records if "sha256" in o],
        )

    def add_loose(self, records: Iterable[dict[str, Any]], rel: str) -> None:
        """Outputs of input ``rel`` about to be written (before the rename): a run killed
        between writing them and recording them leaves files this job may still replace."""
        with self._tx() as db:
            self._add_loose(db, [{**o, "input": rel} for o in records])

    def loose(self) -> dict[str, dict[str, Any]]:
        """Path (relative to OUT) -> record of every loose output (see the schema); its
        ``input`` is None in a database from before inputs were recorded with them."""
        # A database opened read-only (status, report) is not migrated: it may have an
        # older loose_outputs table, or none.
        columns = {r["name"] for r in self._db.execute("PRAGMA table_info(loose_outputs)")}
        if not columns:
            return {}
        source = "input" if "input" in columns else "NULL AS input"
        return {
            r["path"]: {
                "path": r["path"],
                "size": r["size"],
                "sha256": r["sha256"],
                "input": r["input"],
            }
            for r in self._db.execute(f"SELECT path, size, sha256, {source} FROM loose_outputs")
        }

    def new_request(self, asked: dict[str, Any]) -> int:
        """A run that asks for something else than the last run (another model, options...)
        gives failed files a fresh set of retries: they may have failed because of what was
        asked. Returns how many."""
        last = self.get_meta("last_request")
        self.set_meta("last_request", json.dumps(asked, sort_keys=True))
        if last is None or last == json.dumps(asked, sort_keys=True):
            return 0
        with self._tx() as db:
            return db.execute(
                "UPDATE files SET attempts=0 WHERE status='failed' AND sha256 != ''"
            ).rowcount

    def owners(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Every recorded output: path (relative to OUT) -> (input, record)."""
        out: dict[str, tuple[str, dict[str, Any]]] = {}
        for row in self.rows():
            for o in row.outputs:
                out[o["path"]] = (row.path, o)
        return out

    def record_unreadable(self, rel: str, error: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO files (path, size, mtime_ns, sha256, status, attempts, error, "
                "updated_at) VALUES (?,0,0,'','failed',1,?,?) ON CONFLICT(path) DO UPDATE "
                "SET status='failed', error=excluded.error, updated_at=excluded.updated_at",
                (rel, error, time.time()),
            )

    def refresh_done(
        self, asked: dict[str, Any], expected: dict[str, list[str]]
    ) -> dict[str, list[str]]:
        """Send done files back to pending when their result no longer serves this run:
        ``expected`` maps each file to the outputs (relative to OUT) this run would write.
        Returns ``{"outputs": [...], "request": [...], "redone_request": [...]}``: files whose
        outputs are missing, changed or renamed; the request differences found; the files
        redone for them."""
        stale: dict[str, list[str]] = {"outputs": [], "request": [], "redone_request": []}
        redo = []
        for row in self.rows():
            if row.status != "done" or row.path not in expected:
                continue
            diffs = satisfies(row.request, asked)
            if diffs:
                stale["request"].extend(d for d in diffs if d not in stale["request"])
                stale["redone_request"].append(row.path)
                redo.append(row.path)
                continue
            recorded = {o["path"]: o for o in row.outputs}
            want = expected[row.path]
            if not all(p in recorded and output_intact(self.output_dir, recorded[p]) for p in want):
                stale["outputs"].append(row.path)
                redo.append(row.path)
        with self._tx() as db:
            db.executemany(
                "UPDATE files SET status='pending', attempts=0, updated_at=? WHERE path=? "
                "AND status='done'",
                [(time.time(), p) for p in redo],
            )
        return stale

    def force(self, paths: Iterable[str]) -> int:
        """``--force``: these files (this run's: ``--glob`` limits it) go back to pending
        when they can be read; the job's other files stay as they are."""
        with self._tx() as db:
            return sum(
                db.execute(
                    "UPDATE files SET status='pending', attempts=0, error=NULL "
                    "WHERE path=? AND sha256 != ''",
                    (rel,),
                ).rowcount
                for rel in paths
            )

    def reclaim(self) -> int:
        """Return rows left running by dead processes to pending."""
        stale = [
            r["path"]
            for r in self._db.execute("SELECT path, worker FROM files WHERE status='running'")
            if not _alive(r["worker"])
        ]
        with self._tx() as db:
            for rel in stale:
                db.execute(
                    "UPDATE files SET status='pending', worker=NULL WHERE path=? AND "
                    "status='running'",
                    (rel,),
                )
        return len(stale)

    def retry_failed(self, retries: int, only: set[str] | None = None) -> int:
        """Failed rows with fewer than ``retries + 1`` attempts go back to pending (of
        ``only``, when given: the files this run covers)."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT path FROM files WHERE status='failed' AND attempts <= ? AND sha256 != ''",
                (retries,),
            ).fetchall()
            paths = [r["path"] for r in rows if only is None or r["path"] in only]
            db.executemany("UPDATE files SET status='pending' WHERE path=?", [(p,) for p in paths])
            return len(paths)

    def failed_outside(self, covered: set[str]) -> list[str]:
        """Failed files that are not in ``covered`` (this run's --glob): an earlier run's,
        left as they are."""
        rows = self._db.execute("SELECT path FROM files WHERE status='failed' ORDER BY path")
        return [r["path"] for r in rows if r["path"] not in covered]

    # -- work -----------------------------------------------------------------------------

    def claim(self, worker: str) -> str | None:
        """Atomically take the next pending file; None when there is none."""
        with self._tx() as db:
            row = db.execute(
                "SELECT path FROM files WHERE status='pending' ORDER BY path LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE files SET status='running', worker=?, updated_at=? WHERE path=?",
                (worker, time.time(), row["path"]),
            )
            return str(row["path"])

    def pending(self) -> list[str]:
        return [
            r["path"]
            for r in self._db.execute("SELECT path FROM files WHERE status='pending' ORDER BY path")
        ]

    def stale_running(self) -> int:
        """Rows marked running whose process is gone (a run killed with kill -9)."""
        return sum(
            not _alive(r["worker"])
            for r in self._db.execute("SELECT worker FROM files WHERE status='running'")
        )

    def running_by(self, worker: str) -> list[str]:
        return [
            r["path"]
            for r in self._db.execute(
                "SELECT path FROM files WHERE status='running' AND worker=?", (worker,)
            )
        ]

    def mark_running(self, paths: Iterable[str], worker: str) -> None:
        with self._tx() as db:
            db.executemany(
                "UPDATE files SET status='running', worker=?, updated_at=? WHERE path=?",
                [(worker, time.time(), p) for p in paths],
            )

    def release(self, paths: Iterable[str]) -> None:
        """Back to pending (interrupted before finishing)."""
        with self._tx() as db:
            db.executemany(
                "UPDATE files SET status='pending', worker=NULL WHERE path=? AND status='running'",
                [(p,) for p in paths],
            )

    def previous_outputs(self, rel: str) -> list[dict[str, Any]]:
        row = self._db.execute("SELECT outputs FROM files WHERE path=?", (rel,)).fetchone()
        if row is None:
            return []
        return [o for o in json.loads(row["outputs"] or "[]") if isinstance(o, dict)]

    def mark_done(
        self,
        rel: str,
        outputs: list[dict[str, Any]],
        duration: float,
        processing_time: float,
        request: dict[str, Any],
    ) -> None:
        with self._tx() as db:
            db.executemany(
                "DELETE FROM loose_outputs WHERE path=?", [(o["path"],) for o in outputs]
            )
            db.execute(
                "UPDATE files SET status='done', attempts=attempts+1, error=NULL, outputs=?, "
                "duration=?, processing_time=?, model=?, options=?, request=?, worker=NULL, "
                "updated_at=? WHERE path=?",
                (
                    json.dumps(outputs),
                    duration,
                    processing_time,
                    request["model"],
                    json.dumps(request["options"]),
                    json.dumps(request),
                    time.time(),
                    rel,
                ),
            )

    def block(self, rel: str, error: str) -> None:
        """Failed before any work, for a reason outside the file (its output path is taken):
        the attempt is not counted, so the next run checks again."""
        with self._tx() as db:
            db.execute(
                "UPDATE files SET status='failed', error=?, worker=NULL, updated_at=? WHERE path=?",
                (error, time.time(), rel),
            )

    def mark_failed(self, rel: str, error: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE files SET status='failed', attempts=attempts+1, error=?, "
                "worker=NULL, updated_at=? WHERE path=?",
                (error, time.time(), rel),
            )

    # -- reading --------------------------------------------------------------------------

    def rows(self) -> list[FileRow]:
        return [FileRow.from_sql(r) for r in self._db.execute("SELECT * FROM files ORDER BY path")]

    def summary(self) -> dict[str, float]:
        row = self._db.execute(
            "SELECT COUNT(*) AS total, "
            "SUM(status='done') AS done, SUM(status='failed') AS failed, "
            "SUM(status='pending') AS pending, SUM(status='running') AS running, "
            "COALESCE(SUM(CASE WHEN status='done' THEN duration END), 0) AS audio_s, "
            "COALESCE(SUM(CASE WHEN status='done' THEN processing_time END), 0) AS processing_s "
            "FROM files"
        ).fetchone()
        return {k: float(v or 0) for k, v in dict(row).items()}
