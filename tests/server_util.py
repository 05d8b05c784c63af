"""Start a real ``malsori serve`` (uvicorn) on a free localhost port for the tests."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    tmpdir: Path  # the server's TMPDIR: where its uploads are spooled

    def metrics(self) -> dict[str, float]:
        """The server's Prometheus samples, ``name{labels}`` -> value."""
        text = httpx.get(self.url + "/metrics", timeout=30).text
        return {k: float(v) for k, v in re.findall(r"^([a-z_]+(?:\{[^}]*\})?) (\S+)$", text, re.M)}

    def wait_idle(self, limit_s: float = 120) -> bool:
        """Poll (bounded) until no transcription runs; False if one still runs."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.metrics().get("malsori_jobs_running") == 0:
                return True
            time.sleep(0.25)
        return False

    def peak_rss(self) -> int:
        """The server process's peak resident memory so far (VmHWM), in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]

    def output(self) -> str:
        """Everything the server printed (only once it has exited)."""
        assert self.process.poll() is not None
        return self.process.stdout.read().decode(errors="replace") if self.process.stdout else ""


@contextlib.contextmanager
def running_server(
    *args: str, env: dict[str, str] | None = None, ready: bool = True, cwd: Path | None = None
) -> Iterator[Server]:
    port = free_port()
    tmpdir = Path(tempfile.mkdtemp(prefix="malsori-test-server-"))
    full_env = dict(os.environ, HF_HUB_OFFLINE="1", TMPDIR=str(tmpdir), **(env or {}))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "malsori.cli",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *args,
        ],
        env=full_env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        path = "/ready" if ready else "/health"
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise RuntimeError(f"server exited with {proc.returncode}: {out}")
            try:
                if httpx.get(url + path, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become ready in 120 s")
            time.sleep(0.2)
        yield Server(url, proc, tmpdir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmpdir, ignore_errors=True)
