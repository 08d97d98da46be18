"""A real report in headless Chromium: no console errors, figures in the DOM, a non-blank page.

Needs the Debian package ``chromium`` (/usr/bin/chromium); skipped only when it is not installed.
The page must not fetch anything: its Content-Security-Policy forbids every source but ``data:``
images, and any violation (or any script error) shows up as a console message, which fails here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: helpers_runs

from helpers_runs import write_run  # noqa: E402
from vbench.report import build_report  # noqa: E402

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
         "--hide-scrollbars", "--mute-audio", "--disable-dev-shm-usage")


def _chromium() -> str | None:
    for c in CANDIDATES:
        path = shutil.which(c) if not c.startswith("/") else (c if Path(c).exists() else None)
        if path:
            return path
    return None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(apt-get install chromium)")


def run_chromium(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def console_messages(stderr: str) -> list[str]:
    """Console output of the page (errors, CSP violations, uncaught exceptions, failed loads)."""
    bad = []
    for line in stderr.splitlines():
        if ":CONSOLE" in line or "Uncaught" in line or "Refused to" in line or "net::ERR_" in line:
            bad.append(line)
    return bad


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    runs = [write_run(root / "results", "disk-a", seed=1, host_baseline=True),
            write_run(root / "results", "disk-b", seed=2, host_baseline=True, accelerator="tcg"),
            write_run(root / "results", "nic", kind="nic"),
            write_run(root / "results", "rng", kind="rng"),
            write_run(root / "results", "balloon", kind="balloon",
                      failures=[{"variant": "virtio-balloon", "workload": "inflate-512",
                                 "repetition": 1, "error": "<script>alert(1)</script>",
                                 "console_tail": "kernel: <b>oops</b>"}])]
    page = build_report(runs, root / "report", history_root=root / "results")
    n_imgs = len(re.findall(r'<img src="data:image/png;base64,', page.read_text()))
    return root, page, n_imgs


def test_dom_has_the_figures_and_no_console_errors(report, tmp_path):
    _root, page, n_imgs = report
    res = run_chromium(tmp_path, page.as_uri(), "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    assert "</html>" in dom, "chromium did not render the page"
    assert console_messages(res.stderr) == []
    imgs = re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{100,}', dom)
    assert n_imgs >= 8 and len(imgs) == n_imgs
    for anchor in ('id="headline"', 'id="tcg-banner"', 'id="network-throughput"', 'id="balloon"',
                   'id="entropy"', 'id="host-native"'):
        assert anchor in dom
    assert "<script>alert(1)</script>" not in dom  # escaped text stays text in the DOM


def test_history_page_renders_without_console_errors(report, tmp_path):
    root, _page, _n = report
    history = root / "report" / "history" / "disk" / "index.html"
    assert history.is_file()
    res = run_chromium(tmp_path, history.as_uri(), "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    assert console_messages(res.stderr) == []
    assert len(re.findall(r'<img src="data:image/png;base64,', res.stdout)) >= 5


def test_screenshot_is_not_blank(report, tmp_path):
    import matplotlib.image as mpimg

    _root, page, _n = report
    shot = tmp_path / "shot.png"
    res = run_chromium(tmp_path, page.as_uri(), f"--screenshot={shot}", "--window-size=1400,3200")
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    assert console_messages(res.stderr) == []
    img = mpimg.imread(str(shot))[..., :3]  # floats in [0, 1]
    assert img.shape[0] >= 3000 and img.shape[1] >= 1300
    assert float(img.std()) > 0.05, "the screenshot is (nearly) uniform: nothing was drawn"
    non_white = np.mean(np.any(img < 0.9, axis=-1))
    assert non_white > 0.03
    # the figures were decoded and drawn: there are pixels of the virtio blue and the emulated
    # orange bars (matplotlib's C0 #1f77b4 and C1 #ff7f0e, drawn at alpha 0.85 on white)
    def near(rgb, tol=0.08):
        target = np.array(rgb) / 255.0 * 0.85 + 0.15
        return int(np.sum(np.all(np.abs(img - target) < tol, axis=-1)))
    assert near((0x1f, 0x77, 0xb4)) > 500
    assert near((0xff, 0x7f, 0x0e)) > 500
    # the TCG banner (yellow) is visible near the top
    top = img[:600]
    assert np.sum(np.all(np.abs(top - np.array([1.0, 0xf4 / 255, 0xce / 255])) < 0.03, axis=-1)) > 2000
