"""Issue 21, finding 5: a run's domain XML linked from the report is inert in a real browser."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_report_browser import (CHROMIUM, console_messages, relabelled,  # noqa: E402
                                 run_chromium)
from vbench.report import build_report  # noqa: E402

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

HOSTILE = ("<domain type='kvm' xmlns:h='http://www.w3.org/1999/xhtml'><name>x</name>"
           "<h:script>document.documentElement.appendChild(document.createElementNS("
           "'http://www.w3.org/1999/xhtml','h:p')).textContent='PWNED'+'-SCRIPT';</h:script>"
           "<h:img src='data:,' onerror=\"document.title='PWNED'+'-ONERROR'\"/></domain>")


def test_domain_xml_next_to_the_report_runs_no_script(tmp_path):
    run = relabelled(tmp_path / "results" / "hostile", "tcg")
    meta = json.loads((run / "run.json").read_text())
    for v in meta["variants"].values():
        v["domain_xml"] = HOSTILE
    (run / "run.json").write_text(json.dumps(meta))
    page = build_report([run], tmp_path / "report")
    hrefs = sorted(set(re.findall(r'href="(domain-xml/[^"]+)"', page.read_text())))
    assert hrefs
    for href in hrefs:
        target = page.parent / href
        res = run_chromium(tmp_path, target.as_uri(), "--dump-dom")
        assert res.returncode == 0, res.stderr[-2000:]
        assert "PWNED-SCRIPT" not in res.stdout and "PWNED-ONERROR" not in res.stdout
        assert target.suffix == ".html" and not list(target.parent.glob("*.xml"))
        text = target.read_text()
        assert "Content-Security-Policy" in text and "<h:script" not in text
        assert "&lt;h:script&gt;" in res.stdout  # shown, as text
        assert console_messages(res.stderr) == []
