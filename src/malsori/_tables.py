"""Tables and figures for reports: CSV text, and PNG figures saved atomically.

Shared by the evaluation report (:mod:`malsori.evaluate.report`), the training history
(:mod:`malsori.train.history`) and the regression predictions. matplotlib is imported only
when a figure is made (the eval and train extras install it) and always with the Agg
backend: no display is needed, and nothing opens a window.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ._atomic import atomic_open

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The header and rows as CSV text (``\\r\\n`` line ends, quoting as needed)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def new_figure(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure with one set of axes, on the Agg backend (``plt.subplots``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """Lay out ``fig``, render it as PNG bytes, and free it."""
    import io

    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 100) -> None:
    """Lay out ``fig``, write it to ``path`` as PNG atomically, and free it."""
    png = figure_png(fig, dpi)
    with atomic_open(path, "wb") as fh:
        fh.write(png)
