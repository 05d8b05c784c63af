"""`malsori batch --engine ray` on a real two-node Ray cluster on this machine (a head and a
second node, each its own raylet, started by ``ray.cluster_utils.Cluster``): the second node
is killed with SIGKILL mid-run and every file still ends done exactly once, with complete
outputs; with -q nothing of Ray's reaches stderr."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import EVALDATA

ray_utils = pytest.importorskip("ray.cluster_utils", reason="needs the dist extra")

LONG_EN = EVALDATA / "long" / "ljspeech_LJ001-0001_to_0020_concat.wav"


@pytest.fixture
def cluster() -> Iterator[Any]:
    # Notice a dead node in ~3 s instead of Ray's default ~30 s.
    system = {
        "health_check_initial_delay_ms": 0,
        "health_check_period_ms": 1000,
        "health_check_failure_threshold": 3,
    }
    c = ray_utils.Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": system}
    )
    try:
        yield c
    finally:
        c.shutdown()


def _done(out: Path) -> int:
    db_path = out / ".malsori-jobs.sqlite"
    if not db_path.exists():
        return 0
    db = sqlite3.connect(db_path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM files WHERE status='done'").fetchone()[0])
    except sqlite3.OperationalError:  # the driver is still creating the table
        return 0
    finally:
        db.close()


def test_killing_a_node_mid_run_loses_nothing(cluster: Any, tmp_path: Path) -> None:
    second = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    for i in range(6):
        (root / f"f{i}.wav").symlink_to(LONG_EN)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "malsori.cli", "batch", str(root), "-o", str(out)),
            *("--model", "tiny.en", "-q", "-f", "txt,json", "--engine", "ray"),
            *("--address", cluster.address, "--workers", "2", "--threads", "1"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while _done(out) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None and _done(out) < 6, "the run must still be going"
    cluster.remove_node(second, allow_graceful=False)  # SIGKILL its raylet and workers
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    db = sqlite3.connect(out / ".malsori-jobs.sqlite")
    got = db.execute("SELECT path, status, attempts FROM files ORDER BY path").fetchall()
    assert got == [(f"f{i}.wav", "done", 1) for i in range(6)]
    reference = (out / "f0.txt").read_text()
    assert "printing" in reference.lower()
    for i in range(6):  # complete and identical outputs (the same audio)
        assert (out / f"f{i}.txt").read_text() == reference
    # -q: only malsori's own lines; Ray's went to OUT/.malsori-ray.log.
    lines = err.strip().splitlines()
    assert lines and all(x.startswith(("scan:", "files:", "audio done:")) for x in lines), err
    assert (out / ".malsori-ray.log").stat().st_size > 0


def test_unreachable_cluster_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    (root / "a.wav").symlink_to(LONG_EN)
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "malsori.cli", "batch", str(root), "-o", str(tmp_path / "o")),
            *("--model", "tiny.en", "-q", "--engine", "ray", "--address", "127.0.0.1:9"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "malsori: error: cannot reach the Ray cluster at 127.0.0.1:9: Connection refused"
    )


def test_outputs_an_actor_wrote_before_the_driver_died_are_replaced(
    speech_dir: Path, tmp_path: Path, run_cli: Any
) -> None:
    """A Ray actor writes a file's outputs; the driver is killed before it records them
    (here: the actor is called as Ray Data calls it, and nothing records its answer). The
    next run redoes the file over those outputs instead of refusing them as not its own."""
    from dataclasses import asdict

    import numpy as np

    from conftest import one_file_job
    from malsori.batch.ray_engine import RayTranscriber

    out, config, store = one_file_job(tmp_path, speech_dir / "window.wav")
    root = tmp_path / "in"
    try:
        driver = subprocess.Popen(["true"])  # the driver that dies
        driver.wait()
        store.mark_running(store.pending(), f"{os.uname().nodename}:{driver.pid}")
        answer = RayTranscriber(asdict(config))({"path": np.array(["a.wav"])})
    finally:
        store.close()
    assert answer["status"] == ["done"], answer["error"]
    written = (out / "a.txt").read_text()
    assert "window" in written.lower()
    # the driver "died" here: a.txt and a.json exist, and the job never recorded them done

    proc = run_cli("batch", str(root), "-o", str(out), "--model", "tiny.en", "-q", "-f", "txt,json")
    assert proc.returncode == 0, proc.stderr
    db = sqlite3.connect(out / ".malsori-jobs.sqlite")
    try:
        got = db.execute("SELECT path, status FROM files").fetchall()
    finally:
        db.close()
    assert got == [("a.wav", "done")]
    assert (out / "a.txt").read_text() == written
