"""Drawing primitives shared by every figure: the canvas, dot-and-interval rows, PNG encoding,
and drawing many figures in parallel.

Figures use matplotlib's Agg canvas directly (no pyplot state, no display). Every figure is drawn
at the width of a wide page (``PAGE_WIDTH`` inches at ``DPI``) and shown at 100 % width, so it
fills the page on a desktop and scales down on a small screen. Margins are fixed instead of
tight_layout: the automatic layout measures every text and was a third of the report's time.
"""

from __future__ import annotations

import base64
import io
import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

DPI = 100
PAGE_WIDTH = 14.0  # inches: 1,400 px at DPI


def mpl_text(s: Any) -> str:
    """Text safe for matplotlib: '$' would start mathtext (and can raise on odd input)."""
    return str(s).replace("\\", "\\\\").replace("$", r"\$")


def new_figure(nfacets: int, ncols: int = 3, h: float | list[float] = 3.1, legend: bool = False,
               sharex: bool = False, left: float = 1.4, top: float = 0.8, bottom: float = 0.75,
               gap: float | None = None):
    """A page-wide figure with a grid of ``nfacets`` panels of height ``h`` (inches; or one height
    per panel, a grid row then as high as its highest panel), fixed margins; ``left`` leaves room
    for y tick labels left of the first panel of a grid row, and ``gap`` (default ``left``) left
    of the others."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = max(1, min(ncols, nfacets))
    nrows = max(1, math.ceil(nfacets / ncols))
    each = list(h) if isinstance(h, list) else [h] * nfacets
    rows_h = [max(each[r * ncols:(r + 1) * ncols] or [1.0]) for r in range(nrows)]
    right = 2.3 if legend else 0.3  # room for a figure legend right of the panels
    gap_y = 0.45 if sharex else 0.9  # between rows: the next panel's title (and tick labels)
    height = top + bottom + sum(rows_h) + (nrows - 1) * gap_y
    fig = Figure(figsize=(PAGE_WIDTH, height), dpi=DPI)
    FigureCanvasAgg(fig)
    gap_x = left if gap is None else gap
    panel_w = (PAGE_WIDTH - left - right - (ncols - 1) * gap_x) / ncols
    grid = fig.subplots(nrows, ncols, squeeze=False, sharex="all" if sharex else "none",
                        gridspec_kw={"height_ratios": rows_h})
    axes = grid.ravel().tolist()
    fig.subplots_adjust(left=left / PAGE_WIDTH, right=1 - right / PAGE_WIDTH,
                        bottom=bottom / height, top=1 - top / height,
                        hspace=gap_y / (sum(rows_h) / nrows), wspace=gap_x / max(panel_w, 0.5))
    if sharex:
        for i, ax in enumerate(axes[:nfacets]):
            ax.xaxis.set_tick_params(labelbottom=i + ncols >= nfacets)
    for ax in axes[nfacets:]:
        ax.set_visible(False)
    return fig, axes[:nfacets]


def title(ax, text: str, size: int = 10) -> None:
    # An explicit y turns off matplotlib's automatic title placement, which measures every tick
    # label of the panel (a fifth of the drawing time of a big report).
    ax.set_title(mpl_text(text), fontsize=size, y=1.0, pad=5, loc="left")


def fig_title(fig, text: str, size: float = 12, **kw) -> None:
    """The figure's title, top left, a fixed 0.15 in from the top edge: matplotlib's default
    (2 % of the height) put it over the first panel of a tall figure."""
    fig.suptitle(mpl_text(text), fontsize=size, x=0.01, y=1 - 0.15 / fig.get_figheight(),
                 ha="left", va="top", **kw)


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    # the lightest zlib level: on the 100k-sample bench page 0.2 s less CPU than level 3 for
    # files 3 % larger (the default level 6 is slower still)
    fig.savefig(buf, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def png(fig) -> str:
    return data_uri(png_bytes(fig))


@dataclass
class Dot:
    """One row of a dot plot: a median with its interval and the single repetitions."""

    label: str
    colour: str
    median: float
    lo: float = math.nan
    hi: float = math.nan
    points: Sequence[float] = ()
    marker: str = "o"


def use_log(values: Sequence[float]) -> bool:
    """A log axis when every value is positive and they span more than 3x (else linear)."""
    vals = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return bool(vals) and min(vals) > 0 and max(vals) / min(vals) > 3


def row_labels(dots: list[Dot]) -> list[str]:
    return list(dict.fromkeys(d.label for d in dots))


def _row_ys(dots: list[Dot], names: list[str]) -> tuple[list[float], dict[str, int]]:
    """The y of each dot (row ``names[0]`` at the top; dots sharing a row side by side in it) and
    how many dots each row holds."""
    n = len(names)
    per = {lbl: sum(1 for d in dots if d.label == lbl) for lbl in names}
    seen: dict[str, int] = {}
    ys = []
    for d in dots:
        k, step = seen.get(d.label, 0), 0.6 / per[d.label]
        seen[d.label] = k + 1
        ys.append(n - 1 - names.index(d.label) + (0.3 - step * (k + 0.5) if per[d.label] > 1 else 0.0))
    return ys, per


def dot_rows(ax, dots: list[Dot], log: bool | None = None, reference: float | None = None,
             reference_label: str = "", labels: bool = True) -> None:
    """Horizontal dot plot: one row per label (top to bottom; dots sharing a label, e.g. one per
    run, sit side by side in its row), the median as a big dot with its 95 % interval as a line,
    repetitions as small dots; ``reference`` a dashed vertical line (the host-native value, or
    100 %). Log x axis when ``log`` (default: when the values span more than 3x). Without
    ``labels`` the rows are not named (the panel on the left names the same rows): no y ticks at
    all, which also saves building a tick per row."""
    import numpy as np

    names = row_labels(dots)
    n = len(names)
    ys, per = _row_ys(dots, names)
    rng = np.random.default_rng(0)
    allv = [d.median for d in dots] + [v for d in dots for v in d.points]
    if reference is not None:
        allv.append(reference)
    if log is None:
        log = use_log(allv)
    # one call per kind of artist for the whole panel: a big page has thousands of rows
    spans = [(d.lo, d.hi, y, d.colour) for y, d in zip(ys, dots)
             if math.isfinite(d.lo) and math.isfinite(d.hi)]
    if spans:
        ax.hlines([s[2] for s in spans], [s[0] for s in spans], [s[1] for s in spans],
                  colors=[s[3] for s in spans], linewidth=2.2, zorder=3)
    px = [np.asarray(d.points, dtype=float) for d in dots]
    jitter = 0.15 / max(per.values())
    if any(p.size for p in px):
        from matplotlib.colors import to_rgba_array

        sizes = [p.size for p in px]
        ax.scatter(np.concatenate(px),
                   np.concatenate([y + rng.uniform(-jitter, jitter, p.size) for y, p in zip(ys, px)]),
                   s=9, c=np.repeat(to_rgba_array([d.colour for d in dots]), sizes, axis=0),
                   alpha=0.45, linewidths=0, zorder=2)
    for marker in dict.fromkeys(d.marker for d in dots):
        mine = [(y, d) for y, d in zip(ys, dots) if d.marker == marker]
        ax.scatter([d.median for _y, d in mine], [y for y, _d in mine], s=64,
                   c=[d.colour for _y, d in mine], marker=marker, edgecolors="#222222",
                   linewidths=0.6, zorder=4)
    if reference is not None and math.isfinite(reference):
        ax.axvline(reference, color="#555555", linestyle="--", linewidth=1.1, zorder=1)
        if reference_label:
            ax.annotate(mpl_text(reference_label), (reference, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(-3, -3), textcoords="offset points", fontsize=7.5, color="#444444",
                        va="top", ha="right")
    if labels:
        ax.set_yticks(range(n), [mpl_text(lbl) for lbl in names[::-1]], fontsize=8.5)
    else:
        ax.set_yticks([])
    ax.set_ylim(-0.7, n - 0.3)
    if log and min(allv, default=0) > 0:
        log_axis(ax.xaxis)
    ax.grid(axis="x", alpha=0.3, zorder=0)
    ax.tick_params(axis="x", labelsize=8)


def log_locator():
    """Major ticks at 1, 2, 5 x 10^k inside the view only: matplotlib's LogLocator also returns a
    decade either side, and every tick it returns is built (two lines, a grid line, two labels)
    before the ones outside the view are dropped."""
    from matplotlib.ticker import LogLocator

    class InView(LogLocator):
        def tick_values(self, vmin, vmax):
            locs = super().tick_values(vmin, vmax)
            lo, hi = sorted((vmin, vmax))
            return locs[(locs >= lo * (1 - 1e-9)) & (locs <= hi * (1 + 1e-9))]

    return InView(base=10, subs=(1.0, 2.0, 5.0))


def log_axis(axis) -> None:
    """A log scale with plain tick labels at 1, 2, 5 x 10^k (950, 2k, 5k, 10k), no 10^x."""
    from matplotlib.ticker import FuncFormatter, NullLocator

    from vbench.core.fmt import compact

    (axis.axes.set_xscale if axis is axis.axes.xaxis else axis.axes.set_yscale)("log")
    axis.set_major_locator(log_locator())
    axis.set_major_formatter(FuncFormatter(lambda v, _p: compact(v)))
    axis.set_minor_locator(NullLocator())  # minor ticks cost a third of a big page's drawing


def legend(fig, entries: list[tuple[str, str, str]], heading: str | None = None) -> None:
    """A figure legend right of the panels from (label, colour, marker) entries."""
    from matplotlib.lines import Line2D

    if not entries:
        return
    handles = [Line2D([], [], color=c, marker=m or "o", linestyle="none", markersize=7,
                      markeredgecolor="#222222", label=mpl_text(lbl)) for lbl, c, m in entries]
    fig.legend(handles=handles, loc="upper right", fontsize=8.5, title=heading,
               title_fontsize=8.5, framealpha=0.9, borderaxespad=0.6)


# ---- drawing many figures, in parallel when there are many ----------------------------------------

_WORK: list = []
LAST_DRAW: dict = {}  # how the last figures were drawn (workers, fallback error): for tests/debugging


def _jobs(ntasks: int, npanels: int) -> int:
    """Worker processes for drawing: VBENCH_REPORT_JOBS if set, else up to 4 for big pages."""
    env = os.environ.get("VBENCH_REPORT_JOBS", "")
    if env.strip().isdigit():
        return max(1, int(env))
    if npanels < 40 or ntasks < 4 or not hasattr(os, "fork"):
        return 1  # small pages: starting a pool costs more than it saves
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus, ntasks // 2))


def _run_job(i: int):
    fn, args = _WORK[i]
    return fn(*args)


def draw_all(jobs: list[tuple[Any, tuple]], npanels: int) -> list:
    """Call every ``fn(*args)`` of ``jobs`` (each draws one figure) and return the results in
    order; with several CPUs and many panels in forked worker processes (the figures are
    independent and matplotlib is single-threaded; fork lets the workers inherit the analysed data
    instead of unpickling it). Falls back to drawing here if a pool cannot be used."""
    workers = _jobs(len(jobs), npanels)
    LAST_DRAW.clear()
    LAST_DRAW.update(workers=workers, fallback=None)
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        _WORK[:] = jobs
        # matplotlib imported once here rather than in every worker (half a second of CPU each)
        import importlib

        for mod in ("matplotlib.figure", "matplotlib.backends.backend_agg"):
            importlib.import_module(mod)
        try:
            with ProcessPoolExecutor(max_workers=workers,
                                     mp_context=multiprocessing.get_context("fork")) as pool:
                return list(pool.map(_run_job, range(len(jobs))))
        except Exception as exc:  # a broken pool must not cost the report: draw in this process
            LAST_DRAW.update(workers=1, fallback=f"{type(exc).__name__}: {exc}")
        finally:
            _WORK.clear()
    return [fn(*args) for fn, args in jobs]
