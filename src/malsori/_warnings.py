"""The warnings of one transcription, kept with its result.

malsori says what it had to do to an input (a damaged packet replaced by silence, a gap in
the file's times filled, inverted-polarity stereo heard through the channels' difference, a
second audio track left out) with a ``logging`` warning on the ``malsori`` logger. On a
terminal that reaches the user; a JSON file written by ``transcribe``/``batch`` or an
HTTP response would say nothing of it. :func:`collecting` keeps the messages logged in its
context (this thread, and threads started with :func:`contextvars.copy_context` /
``asyncio.to_thread``), so they can be stored in the transcript's ``warnings``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from contextvars import ContextVar

#: The list the current context's warnings go to (None: nobody collects them).
_SINK: ContextVar[list[str] | None] = ContextVar("malsori_warnings", default=None)
#: Most messages kept per transcription (a file with thousands of damaged packets says so
#: in a few lines: the audio reader already summarises).
MAX_WARNINGS = 50


class _Collector(logging.Handler):
    """Appends every WARNING (or worse) of the ``malsori`` loggers to the context's list."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        if not _other_handlers(record.name):
            # This handler must not silence the warning: with no handler anywhere, logging
            # prints it through its last resort (a library user, a batch worker process),
            # which it skips as soon as any handler exists (a reviewer).
            last = logging.lastResort
            if last is not None and record.levelno >= last.level:
                last.handle(record)
        sink = _SINK.get()
        if sink is None or len(sink) >= MAX_WARNINGS:
            return
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break the transcription
            return
        if message not in sink:
            sink.append(message)


def _other_handlers(name: str) -> bool:
    """Would a handler other than the collector see a record of logger ``name``?"""
    logger: logging.Logger | None = logging.getLogger(name)
    while logger is not None:
        if any(not isinstance(h, _Collector) for h in logger.handlers):
            return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


_installed = threading.Lock()
_handler: _Collector | None = None


def _install() -> None:
    global _handler
    with _installed:
        if _handler is None:
            _handler = _Collector()
            logging.getLogger("malsori").addHandler(_handler)


@contextlib.contextmanager
def collecting(into: list[str] | None = None) -> Iterator[list[str]]:
    """Collect the ``malsori`` warnings logged in this context into ``into`` (a new list
    if None), which is yielded. Nested: an inner collection is added to the outer one's
    list too, so a caller that collects around ``transcribe`` sees what it kept."""
    _install()
    outer = _SINK.get()
    sink = [] if into is None else into
    token = _SINK.set(sink)
    try:
        yield sink
    finally:
        _SINK.reset(token)
        if outer is not None and outer is not sink:
            outer.extend([m for m in sink if m not in outer][: max(0, MAX_WARNINGS - len(outer))])
