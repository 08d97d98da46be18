"""Number formatting for people: report pages, terminal tables and compare messages.

One place for how vbench writes a number, so a median, a ratio or a change reads the same in the
HTML report, in ``vbench compare`` and at the end of ``vbench run``. Every function takes anything
(a float, a numpy scalar, a string, None) and never raises: what is not a finite number is written
as :data:`MISSING`. Imports nothing heavy.
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "\u2013"  # en dash: "no number here" (NaN, None, inf, text)
TIMES = "\u00d7"


def finite(v: Any) -> float | None:
    """``v`` as a finite float, or None."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def num(v: Any, digits: int = 4) -> str:
    """About ``digits`` significant digits, fixed-point with thousands separators: 88,904 / 12.35
    / 0.003412. Large values keep all their integer digits (never 8.89e+04)."""
    f = finite(v)
    if f is None:
        return MISSING
    if f == 0:
        return "0"
    mag = abs(f)
    if mag >= 10 ** digits:
        return f"{f:,.0f}"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(mag))))
    return f"{f:,.{decimals}f}"


def sig(v: Any, digits: int = 4) -> str:
    """``digits`` significant digits in the shortest form (%g): 8.89e+04, 12.35. For dense
    terminal tables."""
    f = finite(v)
    return MISSING if f is None else f"{f:.{digits}g}"


def pct(v: Any, signed: bool = False, digits: int = 1) -> str:
    """A fraction as a percentage: 0.127 -> "12.7%" (signed: "+12.7%")."""
    f = finite(v)
    if f is None:
        return MISSING
    return f"{f * 100:+.{digits}f}%" if signed else f"{f * 100:.{digits}f}%"


def change(v: Any, signed: bool = True, digits: int = 1) -> str:
    """A relative change (new / old - 1): signed by default, 0.05 -> "+5.0%"."""
    return pct(v, signed=signed, digits=digits)


def ratio(v: Any, digits: int = 2) -> str:
    """A ratio of medians: 2.5 -> "2.50×"."""
    f = finite(v)
    return MISSING if f is None else f"{f:.{digits}f}{TIMES}"


def interval(lo: Any, hi: Any, fmt=num) -> str:
    """A confidence interval "lo – hi" with the given formatter."""
    return f"{fmt(lo)} \u2013 {fmt(hi)}"


def pvalue(v: Any) -> str:
    """A p-value: three decimals, "<0.001" below that."""
    f = finite(v)
    if f is None:
        return MISSING
    return "<0.001" if f < 0.001 else f"{f:.3f}"



def compact(v: Any) -> str:
    """A short axis label: 950, 1.5k, 20k, 3M, 0.25."""
    f = finite(v)
    if f is None:
        return MISSING
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(f) >= div:
            return f"{f / div:.3g}{suffix}"
    return f"{f:.3g}"
