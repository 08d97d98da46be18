"""HTML reports and history pages built from synthetic runs written with the real store."""

from __future__ import annotations

import argparse
import base64
import html
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: helpers_runs

from helpers_runs import write_run  # noqa: E402
from vbench.commands import report as reportcli  # noqa: E402
from vbench.core.errors import UserError  # noqa: E402
from vbench.report import build_history, build_report  # noqa: E402

HOSTILE = "<script>alert(1)</script>"
ESCAPED = html.escape(HOSTILE)  # &lt;script&gt;alert(1)&lt;/script&gt;
IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def page(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@pytest.fixture
def results(tmp_path):
    return tmp_path / "results"


def test_single_run_report_is_self_contained(results, tmp_path):
    run = write_run(results, "20261126-100000-disk", host_baseline=True)
    out = build_report([run], tmp_path / "report")
    assert out == tmp_path / "report" / "index.html"
    text = page(out)
    imgs = IMG.findall(text)
    assert len(imgs) >= 4  # host-native, IOPS, bandwidth, latency percentiles
    for b64 in imgs:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    # nothing fetched from anywhere: no scripts, no external sources or styles
    assert "<script" not in text.lower()
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert "<link rel=\"stylesheet\"" not in text
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    for section in ('id="headline"', 'id="host-native-section"', 'id="latency"', 'id="failures"',
                    'id="environment"', 'id="drivers"', 'id="domain-xml"'):
        assert section in text
    assert "tcg-banner" not in text
    assert re.search(r"Guest clocksource</t[hd]>\s*<td>hpet</td>", text)  # beside the guest kernel
    assert re.search(r"Probe methods</t[hd]>\s*<td>fio 1</td>", text)  # how it was measured
    # headline ratios: virtio-blk vs sata IOPS ~ 2.5x, coloured as better
    assert re.search(r'<tr class="better">.*?virtio-blk</td><td>sata</td>.*?2\.[3-7]\d\u00d7',
                     text, re.S)


NUMBER_COLUMNS = ("Median", "Geo. mean", "95% CI", "Mean", "Min", "Max", "Ratio", "Advantage",
                  "Host geo. mean",
                  "% of host-native", "CV", "Change")


@pytest.mark.parametrize("runs", [1, 2])
def test_every_number_column_says_its_unit(results, tmp_path, runs):
    paths = [write_run(results, f"units-{i}", seed=i, host_baseline=True) for i in range(runs)]
    text = page(build_report(paths, tmp_path / "r"))
    tables = re.findall(r"<table[^>]*>\s*<thead>(.*?)</thead>", text, re.S)
    numeric = [t for t in tables if "Median" in t or "Geo. mean" in t]
    assert len(numeric) >= 3  # headline ratios, host-native, summary (and all ratios)
    for head in numeric:
        cols = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<th>(.*?)</th>", head)]
        assert "Unit" in cols  # the metric's own unit, per row
        for col in cols:
            if col.startswith(NUMBER_COLUMNS):
                assert re.search(r"\[(unit|\u00d7|%)\]$", col) or col == "% of host-native", col


def test_tcg_banner(results, tmp_path):
    run = write_run(results, "tcg-run", accelerator="tcg")
    text = page(build_report([run], tmp_path / "r"))
    assert 'id="tcg-banner"' in text
    banner = html.unescape(text.split('id="tcg-banner"')[1].split("</div>")[0])
    # honest: under TCG the guest CPU is saturated, the ratios are TCG's and not KVM's
    assert "software emulation" in banner and "saturated" in banner
    assert "ratios are TCG's" in banner and "not how much it gains under KVM" in banner
    assert "still show" not in banner
    assert '<span class="badge tcg"' in text


def test_tcg_banner_from_samples_when_metadata_lacks_it(results, tmp_path):
    run = write_run(results, "tcg-run", accelerator="tcg", meta={"environment": {"host": "x"}})
    assert 'id="tcg-banner"' in page(build_report([run], tmp_path / "r"))


def test_hostile_names_are_escaped(results, tmp_path):
    variants = {HOSTILE: ("disk", "virtio", True, 11500.0), "sata": ("disk", "sata", False, 4600.0)}
    run = write_run(
        results, "hostile", variants=variants, scenario=HOSTILE, host=HOSTILE,
        failures=[{"variant": HOSTILE, "workload": HOSTILE, "repetition": 0, "error": HOSTILE,
                   "console_tail": HOSTILE + "\n[ 1.0] end"}],
        meta={"scenario": {"name": HOSTILE, "description": HOSTILE, "text": HOSTILE,
                           "file": HOSTILE}})
    out = build_report([run], tmp_path / "r", history_root=results)
    text = page(out)
    assert HOSTILE not in text
    assert "<script" not in text.lower()
    assert ESCAPED in text
    assert text.count(ESCAPED) >= 8  # title, scenario, variants, failures, environment, ...
    hist = list((tmp_path / "r" / "history").glob("*/index.html"))
    assert hist, "history page linked from the report"
    assert HOSTILE not in page(hist[0]) and ESCAPED in page(hist[0])


def test_hostile_title_is_escaped(results, tmp_path):
    run = write_run(results, "r")
    text = page(build_report([run], tmp_path / "r", title=HOSTILE + " & co"))
    assert HOSTILE not in text and f"<title>{ESCAPED} &amp; co</title>" in text


def test_missing_metadata_keys_do_not_crash(results, tmp_path):
    drop = {k: None for k in ("status", "started", "finished", "vbench_version", "scenario",
                              "environment", "variants", "workloads", "failures", "run_id")}
    run = write_run(results, "bare", meta=drop)
    text = page(build_report([run], tmp_path / "r"))
    assert IMG.search(text)
    assert "No environment recorded" in text and "No domain XML recorded" in text


def test_odd_metadata_types_do_not_crash(results, tmp_path):
    run = write_run(results, "odd", meta={"environment": "kvm?", "variants": ["a"], "failures": {"x": 1},
                                          "workloads": {"w": "fio"}, "scenario": {"name": None}})
    assert IMG.search(page(build_report([run], tmp_path / "r")))


def test_several_runs_side_by_side(results, tmp_path):
    a = write_run(results, "run-a", seed=1, host_baseline=True)
    b = write_run(results, "run-b", seed=2, host_baseline=True, scale={"virtio-blk": 0.8})
    text = page(build_report([a, b], tmp_path / "r"))
    assert "<th>Run</th>" in text
    assert "run-a" in text and "run-b" in text
    assert "from 2 runs" in text


def test_two_runs_show_a_change_column_and_what_differs(results, tmp_path):
    a = write_run(results, "run-a", seed=1)
    b = write_run(results, "run-b", seed=2, host="lab2", scale={"virtio-blk": 0.5})
    text = page(build_report([a, b], tmp_path / "r"))
    # the environment diff names what differs (the host) and not what is the same (QEMU)
    diff = text.split('<h2 id="env-diff">')[1].split("<h2")[0]
    differ = diff.split("Same in all runs")[0]
    assert "lab1" in differ and "lab2" in differ and "7.2.13" not in differ
    assert "7.2.13" in diff  # listed once, as shared
    # the change column: virtio-blk's IOPS advantage over sata halved in run-b
    headline = text.split('id="headline"')[1].split("</table>")[0]
    assert "Change of advantage vs first run [%]" in headline
    row = next(r for r in headline.split("<tr")[1:] if "run-b" in r and "IOPS" in r
               and "<td>virtio-blk</td><td>sata</td>" in r.replace("\n", ""))
    change = re.search(r'class="num change">([^<]*)<', row).group(1)
    assert change.startswith(("-", "\u2212")) and "5" in change, change  # about -50 %


def test_mixed_contexts_are_flagged(results, tmp_path):
    a = write_run(results, "kvm-run", accelerator="kvm")
    b = write_run(results, "tcg-run", accelerator="tcg")
    text = page(build_report([a, b], tmp_path / "r"))
    assert "never averaged together" in text and 'id="tcg-banner"' in text


def test_nic_rng_balloon_sections(results, tmp_path):
    runs = [write_run(results, "nic", kind="nic"), write_run(results, "rng", kind="rng"),
            write_run(results, "balloon", kind="balloon")]
    text = page(build_report(runs, tmp_path / "r"))
    for fig_id in ("network-throughput", "latency-rtt", "balloon", "entropy"):
        assert f'<figure id="{fig_id}">' in text
        assert re.search(rf'<figure id="{fig_id}">\s*<img src="data:image/png;base64,', text)
    assert "entropy_avail is informational" in text
    assert "virtio-net" in text and "rtl8139" in text


def test_vhost_proofs_show_next_to_the_drivers(results, tmp_path):
    """The stored host-side vhost proof: in the context strip and under the verified drivers."""
    import json

    run = write_run(results, "nic", kind="nic")
    meta_path = run / "run.json"
    meta = json.loads(meta_path.read_text())
    meta["variants"]["virtio-net"]["host_proofs"] = {"vhost": {
        "asked": "vhost: true", "used": True, "ok": True,
        "evidence": "/dev/vhost-net open as fd 37 (netdev hostnet1)"}}
    meta_path.write_text(json.dumps(meta))
    text = page(build_report([run], tmp_path / "r"))
    strip = text.split('class="strip"')[1].split("</div>")[0]
    assert 'title="seen on the host: /dev/vhost-net open as fd 37 (netdev hostnet1) (vhost: true ' \
           'asked)">vhost</span>' in strip
    drivers = text.split('<h2 id="drivers">')[1].split("<h2")[0]
    assert "<td>virtio-net</td><td>vhost</td><td>vhost: true</td><td>yes</td>" in drivers
    assert "/dev/vhost-net open as fd 37 (netdev hostnet1)" in drivers


def test_mixed_read_write_fio_metrics(results, tmp_path):
    metrics = ["read_iops", "write_iops", "read_clat_p50", "read_clat_p99", "write_clat_p99"]
    run = write_run(results, "rw", workloads={"randrw-4k": metrics},
                    level=lambda v, w, m: v if m.endswith("iops") else 32e6 / v)
    text = page(build_report([run], tmp_path / "r"))
    assert '<figure id="latency-read_clat">' in text and '<figure id="latency-write_clat">' in text
    assert '<figure id="metric-read_iops">' in text
    headline = text.split('id="headline"')[1].split("All ")[0]
    assert "IOPS (read)" in headline and "IOPS (write)" in headline


def test_domain_xml_diff_and_drivers(results, tmp_path):
    run = write_run(results, "r")
    meta_path = run / "run.json"
    import json

    meta = json.loads(meta_path.read_text())
    # verification stored a failed check for ide; the report shows the stored verdict
    meta["variants"]["ide"]["drivers"]["disk"].update(found="ahci", ok=False)
    meta_path.write_text(json.dumps(meta))
    text = page(build_report([run], tmp_path / "r"))
    assert '<span class="da">+' in text and '<span class="dd">-' in text
    assert "bus=&#39;sata&#39;" in text or "bus='sata'" in html.unescape(text)
    assert "&lt;target dev=" in text
    assert "&#10007; not verified" in text and "&#10003; verified" in text
    assert '<span class="flag driver"' in text  # next to ide's numbers


def test_failures_and_incomplete_status(results, tmp_path):
    run = write_run(results, "r", status="incomplete",
                    failures=[{"variant": "ide", "workload": "randread-4k-qd32", "repetition": 2,
                               "error": "fio exited 1", "console_tail": "ata1: reset"}])
    text = page(build_report([run], tmp_path / "r"))
    assert "1 failure" in text and "fio exited 1" in text and "ata1: reset" in text
    assert "has status <b>incomplete</b>" in text
    # the failed repetition is flagged next to ide's numbers of that workload, and only there
    rows = [r for r in text.split("<tr")[1:] if 'class="flag reps"' in r]
    assert rows and all("ide" in r and "randread-4k-qd32" in r for r in rows)


def test_noisy_groups_are_flagged_next_to_their_numbers(results, tmp_path):
    quiet = page(build_report([write_run(results, "quiet", cv=0.01)], tmp_path / "q"))
    noisy = page(build_report([write_run(results, "noisy", cv=0.5, reps=8)], tmp_path / "n"))
    assert 'class="flag noisy"' not in quiet
    assert 'class="flag noisy"' in noisy and "groups are noisy" in noisy


def test_run_without_samples(results, tmp_path):
    run = write_run(results, "empty", workloads={}, consolidate=True)
    text = page(build_report([run], tmp_path / "r"))
    assert "nothing to plot" in text


def test_not_a_run_directory(tmp_path):
    with pytest.raises(UserError, match="not a run directory"):
        build_report([tmp_path / "nope"], tmp_path / "r")
    (tmp_path / "dir").mkdir()
    with pytest.raises(UserError, match="cannot report"):
        build_report([tmp_path / "dir"], tmp_path / "r")


def test_history_marks_change_points(results, tmp_path):
    for i in range(8):
        write_run(results, f"2026120{i}-disk", seed=i, reps=5,
                  scale={"sata": 0.7 if i >= 4 else 1.0}, started=f"2026-12-0{i + 1}T02:00:00")
    write_run(results, "other", kind="nic")  # another scenario: not in the disk history
    out = build_history(results, "disk", tmp_path / "h")
    text = page(out)
    assert out == tmp_path / "h" / "index.html"
    assert len(IMG.findall(text)) == 5  # one figure per metric, a panel per workload
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td><td>[^<]+</td>"
                      r"<td><code>([^<]+)</code></td>", text)
    assert rows and {r[2] for r in rows} == {"sata"}
    assert {r[3] for r in rows} == {"20261204-disk"}
    assert "other" not in re.findall(r"<code>([^<]+)</code>", text)


def test_history_without_runs(results, tmp_path):
    write_run(results, "x", kind="nic")
    with pytest.raises(UserError, match="no runs of scenario 'disk'"):
        build_history(results, "disk", tmp_path / "h")


def test_history_keeps_accelerators_apart(results, tmp_path):
    for i in range(3):
        write_run(results, f"k{i}", seed=i, started=f"2026-12-0{i + 1}")
        slow = {v: 0.1 for v in ("sata", "ide", "virtio-blk", "virtio-scsi")}
        write_run(results, f"t{i}", seed=10 + i, accelerator="tcg", scale=slow,
                  started=f"2026-12-0{i + 1}T01")
    text = page(build_history(results, "disk", tmp_path / "h"))
    assert 'id="tcg-banner"' in text
    assert "No change points" in text  # kvm and tcg never pooled, so no fake step between them


# ---- the commands -----------------------------------------------------------------------------------

def parse(argv):
    parser = argparse.ArgumentParser(prog="vbench")
    reportcli.add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_report_command_default_out(results, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = write_run(results, "20261126-100000-disk")
    args = parse(["report", str(run)])
    assert args.func(args) == 0
    assert (tmp_path / "reports" / "20261126-100000-disk" / "index.html").is_file()
    assert capsys.readouterr().out.strip() == "report: reports/20261126-100000-disk/index.html"
    other = write_run(results, "second")
    args = parse(["report", str(run), str(other), "--title", "T"])
    assert args.func(args) == 0
    assert (tmp_path / "reports" / "combined-2-runs-second" / "index.html").is_file()


def test_history_command(results, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for i in range(3):
        write_run(results, f"r{i}", seed=i)
    args = parse(["history", "disk", "--results", str(results)])
    assert args.func(args) == 0
    assert (tmp_path / "reports" / "history-disk" / "index.html").is_file()
    args = parse(["history", "scenarios/disk.yaml", "--results", str(results), "--out", "h"])
    assert args.func(args) == 0  # the YAML file's runs are found by the file recorded in run.json
    assert (tmp_path / "h" / "index.html").is_file()
    args = parse(["history", "disk", "--results", str(tmp_path / "none")])
    with pytest.raises(UserError, match="does not exist"):
        args.func(args)


def test_report_command_rejects_a_results_root(results):
    write_run(results, "r")
    args = parse(["report", str(results)])
    with pytest.raises(UserError, match="results root"):
        args.func(args)


def test_reportcli_import_is_light():
    import subprocess

    code = ("import sys, vbench.commands.report; "
            "print(any(m in sys.modules for m in ('pandas', 'matplotlib', 'scipy', 'numpy')))")
    src = str(Path(__file__).resolve().parents[2] / "src")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"}, check=True)
    assert out.stdout.strip() == "False"


def test_parallel_drawing_gives_the_same_page(results, tmp_path, monkeypatch):
    runs = [write_run(results, "a", seed=1, host_baseline=True), write_run(results, "n", kind="nic")]
    monkeypatch.setenv("VBENCH_REPORT_JOBS", "1")
    serial = page(build_report(runs, tmp_path / "serial"))
    monkeypatch.setenv("VBENCH_REPORT_JOBS", "2")
    parallel = page(build_report(runs, tmp_path / "parallel"))
    from vbench.report import LAST_DRAW

    assert LAST_DRAW == {"workers": 2, "fallback": None}
    strip = re.compile(r"Generated [^<]* by vbench")
    assert strip.sub("", serial) == strip.sub("", parallel)
    assert len(IMG.findall(parallel)) >= 6


def test_history_skips_corrupt_and_foreign_runs_and_says_so(tmp_path):
    """A corrupt run.json, a foreign JSON and a binary sample table beside good runs: the history
    page is still written, from the good runs, and names what it skipped."""
    from helpers_runs import write_run
    from vbench.report import build_history

    root = tmp_path / "results"
    for i in range(3):
        write_run(root, f"2026112{i}-020000-disk", seed=i, reps=3,
                  started=f"2026-11-2{i}T02:00:00+0000")
    (root / "20261124-020000-disk").mkdir()
    (root / "20261124-020000-disk" / "run.json").write_text("{ truncated")
    (root / "20261125-020000-disk").mkdir()
    (root / "20261125-020000-disk" / "run.json").write_text('{"not": "ours"}')
    bad = write_run(root, "20261126-020000-disk", seed=9, reps=3, started="2026-11-26T02:00:00+0000")
    (bad / "samples.csv").write_bytes(b"\xff\xfe\x00garbage\x00" * 50)
    out = build_history(root, "disk", tmp_path / "hist")
    html = out.read_text()
    assert "<img" in html
    for skipped in ("20261124-020000-disk", "20261125-020000-disk", "20261126-020000-disk"):
        assert skipped in html, f"{skipped} was skipped silently"


ALL_VIRTIO = {"raw": ("disk", "virtio", True, 6000.0), "qcow2": ("disk", "virtio", True, 3000.0)}


def _reference_run(results, reference):
    meta = {"scenario": {"name": "disk-qcow2", "file": "scenarios/disk-qcow2.yaml",
                         "text": "name: disk-qcow2\ndevice: disk\n", "description": "q",
                         **({"reference": reference} if reference else {})}}
    return write_run(results, f"20261126-100000-q{reference}", scenario="disk-qcow2",
                     variants=ALL_VIRTIO, meta=meta)


def test_declared_reference_fills_the_headline_of_an_all_virtio_scenario(results, tmp_path):
    from vbench.report.terminal import headline_lines

    run = _reference_run(results, "raw")
    text = page(build_report([run], tmp_path / "r"))
    assert "Variant vs reference (raw)" in text
    assert "No paravirtual/emulated pairs" not in text
    rows = re.findall(r"<tr[^>]*>.*?</tr>", text[text.index('id="headline"'):], re.S)
    assert any(">qcow2<" in r and ">raw<" in r for r in rows)
    assert (tmp_path / "r" / "headline-ratios.png").exists()
    lines = headline_lines(run)
    assert any("qcow2 vs raw" in line and "WORSE" in line for line in lines)  # half the IOPS


def test_all_virtio_scenario_without_reference_says_how_to_get_one(results, tmp_path):
    text = page(build_report([_reference_run(results, None)], tmp_path / "r"))
    assert "No paravirtual/emulated pairs" in text and "reference:" in text
    assert not (tmp_path / "r" / "headline-ratios.png").exists()
