"""Jinja2 rendering of the report and history pages (autoescaped) and their time stamp.

A leaf of the report package: the report page (pages) and the history page (history) both render
through it, so neither imports the other for it.
"""

from __future__ import annotations

import datetime as _dt
from functools import lru_cache
from pathlib import Path

from vbench.core import fmt

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


@lru_cache(maxsize=1)
def _jinja():
    import jinja2

    # autoescape=True for every template: all text from scenarios, runs and guests is escaped.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.ChainableUndefined)
    env.filters["num"] = fmt.num
    env.filters["pct"] = fmt.pct
    return env


def render(template: str, **ctx) -> str:
    return _jinja().get_template(template).render(**ctx)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
