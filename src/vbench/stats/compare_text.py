"""A comparison as text for the terminal and as JUnit XML (the numbers come from vbench.stats.compare).

JUnit: one testcase per row; a gated regression is a ``failure`` (type ``regression``), a gated
inconclusive row a ``failure`` of type ``inconclusive`` when it fails the gate (the default) and
``skipped`` when inconclusive rows are allowed; missing rows are ``skipped``; everything else,
including rows outside the gate, passes with its description in ``system-out``.
"""

from __future__ import annotations

import math

from vbench.core import fmt

ORDER = ("regression", "inconclusive", "improvement", "unchanged", "missing")


def _num(v, digits: int = 4) -> str:
    return fmt.sig(v, digits)


def _pct(v, signed: bool = True) -> str:
    return fmt.change(v, signed=signed)


def _change(row: dict, key: str, signed: bool = True) -> str:
    """A change or threshold in the row's scale: percent, or the metric's unit (absolute)."""
    if row.get("scale") == "absolute":
        v = row[key]
        try:
            f = float(v)
        except (TypeError, ValueError):
            return fmt.MISSING
        if not math.isfinite(f):
            return fmt.MISSING
        return f"{f:+.3g}" if signed else f"{f:.3g}"
    return _pct(row[key], signed)


def _xml_safe(text: str) -> str:
    # XML 1.0 cannot carry most control characters, even escaped.
    return "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20)


def describe_row(row: dict) -> str:
    gated = "gated" if row.get("gated") else "reported"
    return (f"{row['status']} ({gated}): {row['metric']} of {row['workload']} on {row['variant']} "
            f"{_num(row['median_base'])} -> {_num(row['median_new'])} ({_change(row, 'change')}, "
            f"95% CI [{_change(row, 'ci_low')}, {_change(row, 'ci_high')}], "
            f"p={_num(row['p_value'], 3)}, adjusted p={_num(row.get('p_adjusted'), 3)}, "
            f"threshold {_change(row, 'threshold', signed=False)}, smallest detectable change "
            f"{_change(row, 'detectable', signed=False)}): {row.get('reason', '')}")


def text(result) -> str:
    """A plain-text table for the terminal: gated rows first, then by verdict."""
    order = {s: i for i, s in enumerate(ORDER)}
    t = result.table.copy()
    t["_o"] = t["status"].map(order)
    t["_g"] = ~t["gated"].astype(bool)
    t = t.sort_values(["_g", "_o", "workload", "metric", "variant"], kind="stable")
    header = ("status", "gate", "workload", "variant", "metric", "base", "new", "change",
              "95% CI", "p adj", "detectable")
    lines = [header]
    for row in t.to_dict(orient="records"):
        lines.append((row["status"], "*" if row["gated"] else "", str(row["workload"]),
                      str(row["variant"]), str(row["metric"]), _num(row["median_base"]),
                      _num(row["median_new"]), _change(row, "change"),
                      f"[{_change(row, 'ci_low')}, {_change(row, 'ci_high')}]",
                      _num(row["p_adjusted"], 3), _change(row, "detectable", signed=False)))
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines]
    c = result.counts()
    out.append("")
    out.append((", ".join(f"{v} {k}" for k, v in c.items() if v) or "nothing to compare")
               + f" (alpha {result.alpha}, p-values adjusted within the gated family and within "
                 f"the rest: {result.correction}; * = gated)")
    failing = t[t["gated"].astype(bool) & t["status"].isin(["regression", "inconclusive"])]
    for row in failing.head(10).to_dict(orient="records"):
        out.append(f"why: {row['status']} {row['metric']} of {row['workload']} on "
                   f"{row['variant']}: {row['reason']}")
    out.append(result.gate_message())
    out.extend(f"note: {n}" for n in result.notes)
    return "\n".join(out)


def junit(result) -> str:
    """JUnit XML: one testcase per (workload, variant, metric); see the module docstring."""
    import xml.etree.ElementTree as ET

    rows = result.table.to_dict(orient="records")
    kinds = [_junit_kind(r, result.fail_inconclusive) for r in rows]
    suite = ET.Element("testsuite", name="vbench.compare", tests=str(len(rows)),
                       failures=str(sum(k in ("regression", "inconclusive") for k in kinds)),
                       errors="0", skipped=str(kinds.count("skipped")))
    props = ET.SubElement(suite, "properties")
    for name, value in (("base_runs", ",".join(result.base_runs)),
                        ("new_runs", ",".join(result.new_runs)),
                        ("alpha", str(result.alpha)), ("correction", result.correction),
                        ("default_threshold", str(result.default_threshold)),
                        ("gate", result.gate_message())):
        ET.SubElement(props, "property", name=name, value=_xml_safe(value))
    for row, kind in zip(rows, kinds):
        classname = ".".join(_xml_safe(str(row[k])) for k in ("scenario", "workload", "variant"))
        if row.get("context_split"):
            classname += f"[{_xml_safe(str(row['accelerator']))}@{_xml_safe(str(row['host']))}]"
        case = ET.SubElement(suite, "testcase", classname=classname,
                             name=_xml_safe(str(row["metric"])), time="0")
        desc = _xml_safe(describe_row(row))
        if kind in ("regression", "inconclusive"):
            fail = ET.SubElement(case, "failure", message=desc, type=kind)
            fail.text = desc
        elif kind == "skipped":
            ET.SubElement(case, "skipped", message=desc)
        else:
            ET.SubElement(case, "system-out").text = desc
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def _junit_kind(row: dict, fail_inconclusive: bool) -> str:
    status, gated = row["status"], bool(row.get("gated"))
    if status == "missing":
        return "skipped"
    if gated and status == "regression":
        return "regression"
    if gated and status == "inconclusive":
        return "inconclusive" if fail_inconclusive else "skipped"
    return "pass"
