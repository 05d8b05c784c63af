"""The one progress-bar layout malsori shows on a terminal: ``LEAD [bar] COUNT INFO ETA``.

The bar is drawn on stderr, so stdout carries only results (`malsori transcribe x.wav >
x.txt` still shows it). When stderr is not a terminal rich draws nothing while it runs and
prints a bar that is not transient once, finished; ``enabled=False`` hides it always
(``--quiet``, or a process other than rank 0). Used by the trainer, `malsori
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
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn(lead),
        BarColumn(),
        TextColumn(count),
        TextColumn(info),
        TimeRemainingColumn(),
        console=Console(stderr=True),  # never mixed into results on stdout
        disable=not enabled,
        transient=transient,
    )
