"""The one progress-bar layout malsori shows on a terminal: ``LEAD [bar] COUNT INFO ETA``.

rich hides the bar by itself when stderr is not a terminal; ``enabled=False`` hides it
always (``--quiet``, or a process other than rank 0). Used by the trainer, `malsori
transcribe` and the batch view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress


def progress_bar(
    lead: str, count: str, info: str, *, enabled: bool = True, transient: bool = False
) -> Progress:
    """A rich ``Progress`` with the columns lead, bar, count, info and time remaining.

    The three texts are rich format strings over the task, e.g. ``"{task.description}"``,
    ``"{task.completed}/{task.total} samples"`` and ``"{task.fields[speed]}"``.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn(lead),
        BarColumn(),
        TextColumn(count),
        TextColumn(info),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=transient,
    )
