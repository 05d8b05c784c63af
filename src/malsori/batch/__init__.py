"""malsori.batch: transcribe whole directories, resumably (SQLite job state), with local
worker processes or on Ray."""

from __future__ import annotations

from .jobs import DB_NAME, FileRow, JobStore
from .runner import BatchResult, run_batch
from .worker import BatchConfig

__all__ = ["DB_NAME", "BatchConfig", "BatchResult", "FileRow", "JobStore", "run_batch"]
