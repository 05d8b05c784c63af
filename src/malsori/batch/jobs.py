"""Job state of a batch run: one SQLite database in the output directory (WAL mode), one row
per input file. Shared by the local engine and the Ray engine, so a job resumes across both.

Status moves pending -> running -> done | failed. A row left ``running`` by a process that
died is reclaimed (back to pending) on the next run; a file whose content changed is redone.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DB_NAME = ".malsori-jobs.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,          -- relative to the input directory
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','running','done','failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    outputs TEXT,                   -- JSON list of output paths
    duration REAL,                  -- seconds of audio
    processing_time REAL,           -- seconds spent transcribing
    model TEXT,
    options TEXT,                   -- JSON of the decoding options used
    worker TEXT,                    -- "host:pid" of the process holding a running row
    updated_at REAL
);
CREATE INDEX IF NOT EXISTS files_status ON files(status);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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
    try:  # a killed worker whose parent died too can linger as a zombie: that is dead
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


@dataclass(frozen=True)
class FileRow:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    status: str
    attempts: int
    error: str | None
    outputs: list[str]
    duration: float | None
    processing_time: float | None
    model: str | None
    options: dict[str, Any] | None

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> FileRow:
        return cls(
            row["path"],
            row["size"],
            row["mtime_ns"],
            row["sha256"],
            row["status"],
            row["attempts"],
            row["error"],
            json.loads(row["outputs"] or "[]"),
            row["duration"],
            row["processing_time"],
            row["model"],
            json.loads(row["options"]) if row["options"] else None,
        )


class JobStore:
    """The SQLite job database of one output directory. Safe to open from several processes."""

    def __init__(self, output_dir: str | Path) -> None:
        self.path = Path(output_dir) / DB_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # -- set-up ---------------------------------------------------------------------------

    def sync(
        self, files: Iterable[tuple[str, Path]], model: str, options: dict[str, Any]
    ) -> dict[str, int]:
        """Add new files; reset changed ones (size/mtime differ and content hash differs).
        Returns counts of new, changed and unchanged files."""
        counts = {"new": 0, "changed": 0, "unchanged": 0}
        known = {
            r["path"]: r for r in self._db.execute("SELECT path, size, mtime_ns, sha256 FROM files")
        }
        for rel, path in files:
            st = path.stat()
            row = known.get(rel)
            if row is not None and row["size"] == st.st_size and row["mtime_ns"] == st.st_mtime_ns:
                counts["unchanged"] += 1
                continue
            digest = sha256_of(path)
            with self._tx() as db:
                if row is None:
                    db.execute(
                        "INSERT INTO files (path, size, mtime_ns, sha256, model, options, "
                        "updated_at) VALUES (?,?,?,?,?,?,?)",
                        (
                            rel,
                            st.st_size,
                            st.st_mtime_ns,
                            digest,
                            model,
                            json.dumps(options),
                            time.time(),
                        ),
                    )
                    counts["new"] += 1
                elif row["sha256"] == digest:  # touched, not changed
                    db.execute(
                        "UPDATE files SET size=?, mtime_ns=? WHERE path=?",
                        (st.st_size, st.st_mtime_ns, rel),
                    )
                    counts["unchanged"] += 1
                else:
                    db.execute(
                        "UPDATE files SET size=?, mtime_ns=?, sha256=?, status='pending', "
                        "attempts=0, error=NULL, updated_at=? WHERE path=?",
                        (st.st_size, st.st_mtime_ns, digest, time.time(), rel),
                    )
                    counts["changed"] += 1
        return counts

    def record_unreadable(self, rel: str, error: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO files (path, size, mtime_ns, sha256, status, attempts, error, "
                "updated_at) VALUES (?,0,0,'','failed',1,?,?) ON CONFLICT(path) DO UPDATE "
                "SET status='failed', error=excluded.error, updated_at=excluded.updated_at",
                (rel, error, time.time()),
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

    def retry_failed(self, retries: int) -> int:
        """Failed rows with fewer than ``retries + 1`` attempts go back to pending."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE files SET status='pending' WHERE status='failed' AND "
                "attempts <= ? AND sha256 != ''",
                (retries,),
            )
            return cur.rowcount

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

    def mark_done(
        self,
        rel: str,
        outputs: list[str],
        duration: float,
        processing_time: float,
        model: str,
        options: dict[str, Any],
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE files SET status='done', attempts=attempts+1, error=NULL, outputs=?, "
                "duration=?, processing_time=?, model=?, options=?, worker=NULL, "
                "updated_at=? WHERE path=?",
                (
                    json.dumps(outputs),
                    duration,
                    processing_time,
                    model,
                    json.dumps(options),
                    time.time(),
                    rel,
                ),
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
