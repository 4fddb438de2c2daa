"""Figures drawn without pyplot: ``matplotlib.figure.Figure`` on its own Agg canvas.

The report and study plots go through here so that a library call (``naslid.search()`` from a
notebook) never switches the process's matplotlib backend nor adds figures to pyplot's registry:
``subplots`` / ``close`` mirror pyplot's for the calls the plotting code makes.
"""
from __future__ import annotations


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None,
             squeeze: bool = True):
    """(figure, axes) like ``pyplot.subplots``, on a ``FigureCanvasAgg`` (``fig.savefig`` writes
    PNG); nothing global changes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def close(fig) -> None:
    """Release ``fig``'s drawing (pyplot's ``close`` counterpart; nothing is registered)."""
    fig.clear()
