"""malsori.batch: transcribe whole directories, resumably (SQLite job state), with local
worker processes or on Ray."""

from __future__ import annotations

from .config import BatchConfig
from .jobs import DB_NAME, FileRow, JobStore
from .naming import output_bases
from .progress import BatchResult
from .runner import Preparation, run_batch

__all__ = [
    "DB_NAME",
    "BatchConfig",
    "BatchResult",
    "FileRow",
    "JobStore",
    "Preparation",
    "output_bases",
    "run_batch",
]
