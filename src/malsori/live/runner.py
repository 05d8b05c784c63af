"""Drive a :class:`LiveSession` from a :class:`LiveSource`: a reader thread feeds the audio,
the calling thread decodes. Used by ``malsori live`` and benchmarks/live.py."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from .session import LiveSession
from .sources import LiveSource

__all__ = ["Abandoned", "run_live"]


class Abandoned(KeyboardInterrupt):
    """A second Ctrl-C while the last utterance was being finished: it is left out."""


def run_live(
    source: LiveSource,
    session: LiveSession,
    stop: threading.Event | None = None,
    finishing: Callable[[], None] | None = None,
) -> None:
    """Transcribe ``source`` until it ends or ``stop`` is set (or Ctrl-C: KeyboardInterrupt
    propagates after the session has been finished; a second Ctrl-C while it is being
    finished raises :class:`Abandoned`). ``finishing`` is called when a Ctrl-C starts the
    finish. Errors of the source are re-raised."""
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
    except KeyboardInterrupt:
        if finishing is not None:
            with contextlib.suppress(KeyboardInterrupt):
                finishing()
        raise
    finally:
        try:
            stop.set()
            source.close()
            reader.join(timeout=2)
            session.finish()
        except KeyboardInterrupt:  # a second Ctrl-C before the session was finished
            raise Abandoned from None
    if failure:
        raise failure[0]
