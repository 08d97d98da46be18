"""A pydantic validation error as the one line vbench shows for bad input: the field path
(``variants[1].disk.bus``), what is wrong and what was given, cut to a safe length."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from vbench.core.untrusted import shown

_INTERNAL_LOC = re.compile(r"^(function-(after|before|wrap|plain)|tagged-union|union)\[")
_UNION_MEMBERS = {"str", "int", "bool", "float", "constrained-int", "Repetitions"}


def field_path(loc: tuple) -> str:
    """A pydantic error location as a field path: ``variants[1].disk.bus``."""
    out = ""
    parts = list(loc)
    for i, part in enumerate(parts):
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = str(part)
        if _INTERNAL_LOC.match(text):
            continue  # pydantic's validator/union markers, not fields
        if text in _UNION_MEMBERS and i == len(parts) - 1 and i > 0:
            continue  # which member of a `str | int | bool` union failed
        if not re.fullmatch(r"[A-Za-z0-9_.\[\]-]{1,48}", text):
            text = shown(text)  # keeps odd keys (newlines, spaces) on one line and visible
        out += ("." if out else "") + text
    return out


def error_text(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    got = err.get("input")
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '').replace(' or ', ', ').replace(chr(39), '')} (got {shown(got)})"
    if kind == "extra_forbidden":
        return "unknown field (check its spelling; see scenarios/*.yaml for examples)"
    if kind == "missing":
        return "is required"
    if kind == "string_pattern_mismatch":
        return f"{shown(got)} is not allowed here (letters, digits, '_', '.', '-'; must match {ctx.get('pattern')})"
    msg = err.get("msg", "invalid")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return f"{msg} (got {shown(got)})" if kind not in ("value_error", "assertion_error") and not isinstance(got, dict) else msg


def format_validation_error(exc: ValidationError, where: str) -> str:
    errors = exc.errors()
    first = errors[0]
    path = field_path(first.get("loc", ()))
    line = f"{where}: {path + ': ' if path else ''}{error_text(first)}"
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return line
