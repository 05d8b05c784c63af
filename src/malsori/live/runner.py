"""Drive a :class:`LiveSession` from a :class:`LiveSource`: a reader thread feeds the audio,
the calling thread decodes. Used by ``malsori live`` and benchmarks/live.py."""

from __future__ import annotations

import threading

from .session import LiveSession
from .sources import LiveSource

__all__ = ["run_live"]


def run_live(source: LiveSource, session: LiveSession, stop: threading.Event | None = None) -> None:
    """Transcribe ``source`` until it ends or ``stop`` is set (or Ctrl-C: KeyboardInterrupt
    propagates after the session has been finished). Errors of the source are re-raised."""
    stop = stop or threading.Event()
    ended = threading.Event()
    failure: list[BaseException] = []

    def read() -> None:
        try:
            for chunk in source.chunks():
                session.feed(chunk)
                if stop.is_set():
                    break
        except BaseException as exc:
            failure.append(exc)
        finally:
            ended.set()
            session.commit_wakeup()

    reader = threading.Thread(target=read, name="malsori-live-source", daemon=True)
    reader.start()
    try:
        while not (ended.is_set() or stop.is_set()):
            if session.wait(0.1):
                session.process()
    finally:
        stop.set()
        source.close()
        reader.join(timeout=2)
        session.finish()
    if failure:
        raise failure[0]
