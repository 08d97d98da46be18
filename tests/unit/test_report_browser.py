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


def near(img, rgb, tol=0.08) -> int:
    """Pixels of ``img`` (floats in [0, 1]) within ``tol`` of colour ``rgb`` (0-255)."""
    target = np.array(rgb) / 255.0
    return int(np.sum(np.all(np.abs(img - target) < tol, axis=-1)))


def test_screenshot_is_not_blank(report, tmp_path):
    import matplotlib.image as mpimg

    _root, page, _n = report
    shot = tmp_path / "shot.png"
    res = run_chromium(tmp_path, page.as_uri(), f"--screenshot={shot}", "--window-size=1400,6000")
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    assert console_messages(res.stderr) == []
    img = mpimg.imread(str(shot))[..., :3]  # floats in [0, 1]
    assert img.shape[0] >= 6000 and img.shape[1] >= 1300
    assert float(img.std()) > 0.05, "the screenshot is (nearly) uniform: nothing was drawn"
    non_white = np.mean(np.any(img < 0.9, axis=-1))
    assert non_white > 0.03
    # the figures were decoded and drawn: there are pixels of the virtio blue and the emulated
    # orange dots and intervals (the variants' colours, the same on every page), and of the
    # forest plot's verdict green
    assert near(img, (0x1a, 0x7f, 0x37)) > 300
    assert near(img, (0x1f, 0x77, 0xb4)) > 300
    # further down, the IOPS figure has them both
    import base64
    import io

    b64 = re.search(r'<figure id="metric-iops">\s*<img src="data:image/png;base64,([^"]+)"',
                    page.read_text()).group(1)
    fig = mpimg.imread(io.BytesIO(base64.b64decode(b64)), format="png")[..., :3]
    assert near(fig, (0x1f, 0x77, 0xb4)) > 100 and near(fig, (0xff, 0x7f, 0x0e)) > 100
    # the TCG banner (yellow) is visible near the top
    top = img[:600]
    assert np.sum(np.all(np.abs(top - np.array([1.0, 0xf4 / 255, 0xce / 255])) < 0.03, axis=-1)) > 2000


# ---- the report at a glance, on the real stored runs (tests/data/runs) --------------------------------

STORED = Path(__file__).resolve().parents[1] / "data" / "runs" / "20261126-113024-smoke-disk"


def relabelled(dst: Path, accelerator: str, extra_variant: dict | None = None) -> Path:
    """A copy of the stored real run labelled with ``accelerator`` (run.json and samples), with an
    optional extra variant's record merged in."""
    import json

    shutil.copytree(STORED, dst)
    meta = json.loads((dst / "run.json").read_text())
    meta["environment"]["accelerator"] = accelerator
    meta["variants"].update(extra_variant or {})
    (dst / "run.json").write_text(json.dumps(meta))
    csv = (dst / "samples.csv").read_text().replace(",tcg,vm", f",{accelerator},vm")
    (dst / "samples.csv").write_text(csv)
    return dst


# what verify.py stores for an rtl8139 NIC: the expected drivers "|"-joined, the bound one found
RTL8139 = {"rtl8139": {"device": "nic", "model": "rtl8139", "paravirtual": False, "baseline": False,
                       "drivers": {"nic": {"expected": "8139cp|8139too", "found": "8139cp",
                                           "ok": True, "detail": "eth1"}}}}


@pytest.fixture(scope="module")
def stored_reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("stored")
    out = {}
    for accel in ("tcg", "kvm"):
        run = relabelled(root / "results" / f"{accel}-run", accel,
                         RTL8139 if accel == "kvm" else None)
        out[accel] = build_report([run], root / f"report-{accel}")
    return out


def dom_of(tmp_path: Path, page: Path) -> str:
    res = run_chromium(tmp_path, page.as_uri(), "--dump-dom")
    assert res.returncode == 0 and "</html>" in res.stdout, res.stderr[-2000:]
    assert console_messages(res.stderr) == []
    return res.stdout


@pytest.mark.parametrize("accel", ["tcg", "kvm"])
def test_stored_run_has_badge_forest_and_no_false_mismatch(stored_reports, tmp_path, accel):
    page = stored_reports[accel]
    dom = dom_of(tmp_path, page)
    # the accelerator badge is on top, whichever the accelerator
    top = dom.split('<nav>')[0]
    assert f'<span class="badge {accel}"' in top and f">{accel.upper()}</span>" in top
    # the forest plot heads the report, and its PNG is saved next to index.html
    assert '<figure id="forest" class="hero">' in dom
    assert dom.index('id="forest"') < dom.index('<table class="ratios">')
    assert (page.parent / "headline-ratios.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the stored verification said ok (virtio_rng found as virtio_rng.0; rtl8139 as 8139cp):
    # the report shows that verdict and never re-decides it
    body = dom.split("<body")[1]
    assert "mismatch" not in body and "flag driver" not in body
    assert 'class="unverified"' not in body and 'class="vbad"' not in body
    drivers = html_section(dom, 'id="drivers"', 'id="domain-xml"')
    assert "virtio_rng.0" in drivers
    rows = re.findall(r"<tr><td>([^<]+)</td><td>(\w+)[^<]*</td>.*?</tr>", drivers, re.S)
    assert ("virtio-blk", "rng") in rows and ("sata", "rng") in rows
    assert drivers.count("&#10003; verified") + drivers.count("\u2713 verified") >= 6
    if accel == "kvm":
        assert "8139cp" in drivers and "8139cp|8139too" in drivers
    # the driver of each variant and a link to its domain XML are in the context strip
    strip = dom.split('id="context-0"')[1].split("</div>")[0]
    assert "virtio_blk" in strip and "ahci" in strip and 'href="domain-xml/' in strip
    assert (page.parent / "domain-xml" / f"{accel}-run" / "virtio-blk.html").is_file()


def html_section(dom: str, start: str, end: str) -> str:
    return dom.split(start)[1].split(end)[0]


def test_forest_plot_is_drawn_and_not_blank(stored_reports, tmp_path):
    import matplotlib.image as mpimg

    shot = tmp_path / "top.png"
    res = run_chromium(tmp_path, stored_reports["tcg"].as_uri(), f"--screenshot={shot}",
                       "--window-size=1400,1000")
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    img = mpimg.imread(str(shot))[..., :3]
    # the top of the page: the amber TCG badge and banner, and the forest plot's green
    # "better" intervals and dots (virtio-blk beats sata on IOPS in the stored run)
    assert near(img, (0xff, 0xf4, 0xce), 0.03) > 2000
    assert near(img, (0x1a, 0x7f, 0x37)) > 400
    forest = mpimg.imread(str(stored_reports["tcg"].parent / "headline-ratios.png"))[..., :3]
    assert forest.shape[1] >= 1200 and float(forest.std()) > 0.05
    assert near(forest, (0x1a, 0x7f, 0x37)) > 400


def test_guest_above_host_is_flagged_next_to_its_number(tmp_path):
    # virtio-blk at 5x its usual level: 57,500 IOPS against a host-native 40,000
    run = write_run(tmp_path / "results", "beats-host", host_baseline=True, scale={"virtio-blk": 5.0})
    dom = dom_of(tmp_path, build_report([run], tmp_path / "report"))
    host = html_section(dom, 'id="host-native-section"', 'id="figures"')
    flagged = [row for row in host.split("<tr>") if 'class="flag above-host"' in row]
    assert flagged and all("virtio-blk" in row for row in flagged)
    assert any("IOPS" in row and "143.8%" in row or "IOPS" in row for row in flagged)
    assert 'id="flag-summary"' in dom
    headline = html_section(dom, 'id="headline"', "</table>")
    assert 'class="flag above-host"' in headline  # on the ratio row of virtio-blk vs sata
