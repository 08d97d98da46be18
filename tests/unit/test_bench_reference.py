"""The reference bench's pure parts (bench/bench_reference.py, issue 25): its raw QEMU device set
is the one of vbench's domain XML without the management NIC, its probe fits on the kernel command
line, and its console output is read back whole or not at all (fail closed)."""

from __future__ import annotations

import math

import base64
import gzip
import hashlib
import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from vbench.devices import DomainFiles
from vbench.guest.xml import domain_xml, kernel_cmdline
from vbench.scenario.schema import load_scenario_text

PATH = Path(__file__).resolve().parents[2] / "bench" / "bench_reference.py"
spec = importlib.util.spec_from_file_location("bench_reference", PATH)
assert spec and spec.loader
br = importlib.util.module_from_spec(spec)
sys.modules["bench_reference"] = br  # its dataclasses look their module up
spec.loader.exec_module(br)

FILES = DomainFiles(Path("/w/overlay.qcow2"), Path("/w/scratch.raw"), Path("/w/console.log"),
                    Path("/i/vmlinuz"), Path("/i/initrd.img"))


def xml_of(kind: str, device: str) -> str:
    scn = load_scenario_text(br.scenario_text(kind, [device], 8, 1.0))
    return domain_xml("vbench-t", scn.profile(scn.variants[0]), scn.guest, "qemu", FILES,
                      kernel_cmdline("vbench-root", "ssh-ed25519 AAAAx"), "vbench-mgmt",
                      "vbench-test", {"run": "t"})


@pytest.mark.parametrize("device,qdev", [("virtio-net", "virtio-net-pci"), ("e1000", "e1000"),
                                         ("rtl8139", "rtl8139")])
def test_raw_nic_device_set_is_vbenchs_without_the_management_nic(device, qdev):
    args, has_nic = br.qemu_args_from_xml(xml_of("net", device), "pc", "vbench-mgmt",
                                          "vbench-test", "tap0")
    devs = [args[i + 1].split(",")[0] for i, a in enumerate(args) if a == "-device"]
    assert has_nic
    assert devs == ["virtio-blk-pci", qdev, "virtio-rng-pci", "pvpanic"]  # vbench's: no USB
    assert sum(a.startswith("tap,") for a in args) == 1  # one NIC: the one under test


def test_libvirt_launch_keeps_vbenchs_domain_xml_and_carries_the_probe_on_its_command_line():
    import xml.etree.ElementTree as ET

    xml = xml_of("net", "rtl8139")
    probe = "root=LABEL=x systemd.run=\"/bin/sh -c 'echo a&b <c>'\""
    got = ET.fromstring(br.libvirt_probe_xml(xml, probe))
    assert got.findtext("os/cmdline") == probe                # escaped in, read back whole
    before = ET.fromstring(xml)
    for el in (got, before):
        el.find("os/cmdline").text = ""
    assert ET.tostring(got.find("devices")) == ET.tostring(before.find("devices"))
    assert got.findtext("name") == before.findtext("name")   # the tag vbench lab gc knows
    assert len(got.findall("devices/interface")) == 2          # the management NIC stays
    with pytest.raises(br.BenchError, match="cmdline"):
        br.libvirt_probe_xml("<domain><os/></domain>", probe)


def test_the_probe_domain_names_the_bench_as_its_owner_for_vbench_lab_gc():
    from vbench.host import libvirtd

    tags = br.owner_tags()
    assert tags["pid"] == str(os.getpid()) and tags["owner"] == "vbench"
    assert libvirtd.owner_alive(tags)            # gc leaves it alone while the bench runs
    assert not libvirtd.owner_alive({**tags, "pid_start": "1"})  # a reused pid is not the bench


def test_the_nic_under_test_is_named_by_its_place_among_the_domains_interfaces():
    xml = xml_of("net", "e1000")
    assert br.nic_ifname(xml, "vbench-test") == "eth1"  # the management NIC comes first
    assert br.nic_ifname(xml, "vbench-mgmt") == "eth0"
    with pytest.raises(br.BenchError, match="0 NICs on vbench-test"):
        br.nic_ifname(xml_of("disk", "virtio-blk"), "vbench-test")


def test_libvirts_implicit_usb_controller_is_mirrored_when_the_xml_has_no_usb_line():
    xml = xml_of("net", "e1000").replace("    <controller type='usb' model='none'/>\n", "")
    args, _ = br.qemu_args_from_xml(xml, "pc", "vbench-mgmt", "vbench-test", "tap0")
    devs = [args[i + 1].split(",")[0] for i, a in enumerate(args) if a == "-device"]
    assert devs == ["piix3-usb-uhci", "virtio-blk-pci", "e1000", "virtio-rng-pci", "pvpanic"]
    with pytest.raises(br.BenchError, match="cannot translate <controller>"):
        br.qemu_args_from_xml(xml.replace("</panic>", "</panic><controller type='usb' "
                                          "model='qemu-xhci'/>"), "pc", "vbench-mgmt", "vbench-test", "tap0")


def test_the_tap_is_opened_as_libvirt_opens_it(tmp_path):
    """libvirt's taps here: tun_flags 0x5002 (IFF_VNET_HDR) for virtio, 0x1002 for e1000 and
    rtl8139; vhost-net only in a KVM domain, where the device exists."""
    vhost = tmp_path / "vhost-net"
    assert br.tap_options("e1000", "kvm", str(vhost)) == ",vnet_hdr=off"
    assert br.tap_options("rtl8139", "tcg", str(vhost)) == ",vnet_hdr=off"
    assert br.tap_options("virtio", "tcg", str(vhost)) == ",vnet_hdr=on"
    assert br.tap_options("virtio", "kvm", str(vhost)) == ",vnet_hdr=on"  # no /dev/vhost-net
    vhost.touch()
    assert br.tap_options("virtio", "kvm", str(vhost)) == ",vnet_hdr=on,vhost=on"
    assert br.tap_options("virtio", "tcg", str(vhost)) == ",vnet_hdr=on"
    args, _ = br.qemu_args_from_xml(xml_of("net", "e1000"), "pc", "vbench-mgmt", "vbench-test",
                                    "tap0")
    assert next(a for a in args if a.startswith("tap,")).endswith(",vnet_hdr=off")


@pytest.mark.parametrize("device,last", [("virtio-blk", "virtio-blk-pci"), ("sata", "ide-hd"),
                                         ("ide", "ide-hd")])
def test_raw_disk_has_the_scratch_disk_with_vbenchs_serial_and_no_nic(device, last):
    args, has_nic = br.qemu_args_from_xml(xml_of("disk", device), "pc", "vbench-mgmt",
                                          "vbench-test", "tap0")
    assert not has_nic and "-netdev" not in args
    scratch = next(a for a in args if a.startswith("file=/w/scratch.raw"))
    assert "cache=none" in scratch and "aio=native" in scratch
    assert any(a.startswith(last) and "serial=vbench-scratch" in a for a in args)


def test_an_element_the_bench_cannot_translate_is_an_error():
    xml = xml_of("net", "e1000").replace("</devices>", "<watchdog model='i6300esb'/></devices>")
    with pytest.raises(br.BenchError, match="watchdog"):
        br.qemu_args_from_xml(xml, "pc", "vbench-mgmt", "vbench-test", "tap0")


def test_the_probe_fits_the_kernel_command_line():
    steps = [(f"job{i}", "timeout -k 5 40 fio --output-format=json --name=randwrite-4k-qd32 "
              "--filename=\"$dev\" --time_based=1 --runtime=8 --ramp_time=2 --rw=randwrite "
              "--bs=4k --iodepth=32 --numjobs=1 --ioengine=libaio --direct=1") for i in range(2)]
    line = br.script_cmdline(br.probe_script(steps, "dev=/dev/vdb\n"))
    assert len(line) < br.CMDLINE_MAX - 300  # room for vbench's own kernel options
    blob = line.split("echo ", 1)[1].split(" ", 1)[0]
    assert "fio --output-format=json" in gzip.decompress(base64.b64decode(blob)).decode()


def console(out: bytes, digest: str | None = None) -> str:
    b64 = base64.b64encode(out).decode()
    lines = [f"{br.MARK} {b64[i:i + 72]}" for i in range(0, len(b64), 72)]
    return "\n".join(["[   3.1] kernel noise", f"{br.MARK}-BEGIN", *lines,
                      f"{br.MARK}-END {digest or hashlib.sha256(out).hexdigest()}", "reboot: off"])


def test_console_output_is_read_back_and_split_into_steps():
    out = b"### rr\n{\"jobs\": []}\n### rc=0\n### rw\nfio: oops\n### rc=1\n"
    got = br.split_steps(br.read_console(console(out)))
    assert got == {"rr": (0, "{\"jobs\": []}\n"), "rw": (1, "fio: oops\n")}


@pytest.mark.parametrize("text", ["no markers at all", console(b"x")[:-30],
                                  console(b"### a\n1\n### rc=0\n", digest="0" * 64)])
def test_missing_truncated_or_damaged_output_is_an_error(text):
    with pytest.raises(br.BenchError):
        br.read_console(text)


@pytest.mark.parametrize("kind,device", [("disk", "ide"), ("net", "rtl8139"), ("rng", "virtio-rng")])
def test_every_probe_script_is_valid_sh_and_fits_beside_vbenchs_own_options(kind, device,
                                                                             tmp_path):
    import subprocess

    scn = load_scenario_text(br.scenario_text(kind, [device], 8, 1.0))
    jobs = [j for w in scn.workloads for j in br.guest_jobs(scn, w, "10.254.1.10", "10.254.1.1")]
    script = br.probe_script([(j.name, j.cmd) for j in jobs], "dev=/dev/vdb\n")
    (tmp_path / "p.sh").write_text(script)
    assert subprocess.run(["sh", "-n", str(tmp_path / "p.sh")]).returncode == 0
    own = kernel_cmdline("vbench-root", "ssh-ed25519 " + "A" * 68)  # a real key's length
    masks = " systemd.mask=systemd-networkd.service systemd.mask=systemd-networkd.socket"
    assert len(f"{own}{masks} {br.script_cmdline(script)}") < br.CMDLINE_MAX
    names = [n for w in scn.workloads for n in br.sample_names(w)]
    assert names == [j.name for j in jobs]  # the same sample names as vbench's workloads


def _fake_vbench_run(monkeypatch, run_dir: Path, rc: int = 0) -> list[list[str]]:
    import subprocess

    calls: list[list[str]] = []

    def fake(argv, env):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, rc, f"summary\nrun: {run_dir}\n", "boom")

    monkeypatch.setattr(br, "run_vbench", fake)
    return calls


def test_an_interrupted_bench_lets_vbench_run_clean_up_instead_of_killing_it(tmp_path):
    """Ctrl-C in the bench: its `vbench run` gets one SIGTERM (vbench's Ctrl-C) in a session of
    its own and is waited for; subprocess.run would SIGKILL it and leave its guests running."""
    import os
    import signal
    import threading

    done = tmp_path / "cleaned"
    child = ("import os, signal, sys, time, pathlib\n"
             "def stop(*a):\n"
             "    time.sleep(1)  # a cleanup that takes a while\n"
             f"    pathlib.Path({str(done)!r}).write_text(f'{{os.getsid(0)}}')\n"
             "    sys.exit(130)\n"
             "signal.signal(signal.SIGTERM, stop)\n"
             "time.sleep(60)\n")
    # Python's own Ctrl-C handler, whatever this process inherited: a shell's background job
    # (CI's) starts with SIGINT ignored, and then no KeyboardInterrupt would come
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):
            br.run_vbench([sys.executable, "-c", child], dict(os.environ))
    finally:
        signal.signal(signal.SIGINT, old)
    assert done.exists(), "the child was killed before its cleanup ran"
    assert int(done.read_text()) != os.getsid(0)  # its own session: a terminal's ^C misses it


def test_the_vbench_side_reads_one_headline_sample_per_variant_and_direction(tmp_path,
                                                                           monkeypatch):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from helpers_runs import write_run

    text = br.scenario_text("net", ["virtio-net", "e1000"], 8, 1.0)
    scn = load_scenario_text(text)
    names = {"tcp-1-h2g": ["throughput"], "tcp-1-g2h": ["throughput"], "rtt-g2h": ["rtt_p50"]}
    run = write_run(tmp_path / "results", "20261205-040000-vbref-net", kind="nic", reps=1,
                    accelerator="tcg", workloads=names,
                    variants={"virtio-net": ("nic", "virtio", True, 1.0),
                              "e1000": ("nic", "e1000", False, 0.5)})
    calls = _fake_vbench_run(monkeypatch, run)
    args = types.SimpleNamespace(nice=19, accel="tcg")
    got = br.vbench_round(text, scn, tmp_path, args)
    assert set(got) == {(v, n) for v in ("virtio-net", "e1000") for n in names}
    assert calls[0][:3] == ["nice", "-n", "19"] and "--no-report" in calls[0]
    args.accel = "kvm"  # the two sides under different accelerators: an error, not a number
    with pytest.raises(br.BenchError, match="accel"):
        br.vbench_round(text, scn, tmp_path, args)
    args.accel = "tcg"
    names.pop("rtt-g2h")
    run2 = write_run(tmp_path / "results", "20261205-040100-vbref-net", kind="nic", reps=1,
                     accelerator="tcg", workloads=names,
                     variants={"virtio-net": ("nic", "virtio", True, 1.0),
                               "e1000": ("nic", "e1000", False, 0.5)})
    _fake_vbench_run(monkeypatch, run2)
    with pytest.raises(br.BenchError, match="0 samples"):  # a missing number fails closed
        br.vbench_round(text, scn, tmp_path, args)
    _fake_vbench_run(monkeypatch, run, rc=3)
    with pytest.raises(br.BenchError, match="vbench run failed"):
        br.vbench_round(text, scn, tmp_path, args)


def test_the_table_judges_by_vbenchs_own_rule_and_says_within_only_inside_5_percent():
    raw = {("e1000", "tcp-1-g2h"): [2000.0, 2040.0, 1990.0, 2010.0, 2005.0],
           ("ide", "rr"): [3000.0, 3010.0, 2995.0, 3005.0, 3002.0],
           ("virtio-net", "tcp-1-h2g"): [4696.0, 3970.0, 5698.0, 4100.0, 5200.0],
           ("rtl8139", "rtt-g2h"): [300.0, 302.0, 298.0, 301.0, 299.0]}
    vb = {("e1000", "tcp-1-g2h"): [1780.0, 1800.0, 1790.0, 1795.0, 1785.0],
          ("ide", "rr"): [2990.0, 3000.0, 2998.0, 3001.0, 2996.0],
          ("virtio-net", "tcp-1-h2g"): [4800.0, 3600.0, 5500.0, 4300.0, 4900.0],
          ("rtl8139", "rtt-g2h"): [360.0, 362.0, 358.0, 361.0, 359.0]}
    metrics = {("e1000", "tcp-1-g2h"): "throughput", ("ide", "rr"): "iops",
               ("virtio-net", "tcp-1-h2g"): "throughput", ("rtl8139", "rtt-g2h"): "rtt_p50"}
    text, counts = br.table(raw, vb, metrics)
    rows = {ln.split()[0]: ln for ln in text.splitlines()[1:]}
    # the centres are geometric means and the change is their ratio, as on vbench's pages
    assert "1,790" in rows["e1000"] and "2,009" in rows["e1000"] and "-10.9%" in rows["e1000"]
    assert " below " in rows["e1000"]          # significant, the interval wholly beyond -5 %
    # a slower round trip is "above" raw: the word says the direction, not better or worse
    assert " above " in rows["rtl8139"] and "+20.0%" in rows["rtl8139"]
    assert " within " in rows["ide"] and "-0.2%" in rows["ide"]
    # the medians' change too: 1,790 / 2,005 for e1000, 4,800 / 4,696 for virtio-net
    assert "-10.7%" in rows["e1000"] and "+2.2%" in rows["virtio-net"]
    # centres 2 % apart, but rounds spread +-20 %: nothing is known, and the table says so
    assert " inconclusive " in rows["virtio-net"]
    # and why: each side's rounds scatter (stdev / mean) 15 % there, under 1 % for ide
    assert " 15%/15% " in rows["virtio-net"] and " 0%/0% " in rows["ide"]
    assert counts == {"below": 1, "above": 1, "within": 1, "inconclusive": 1}
    # fewer than 3 rounds a side: no verdict beyond inconclusive, however close the numbers
    two = br.table({("ide", "rr"): [1.0, 1.0]}, {("ide", "rr"): [1.0, 1.0]}, {("ide", "rr"): "iops"})
    assert two[1] == {"inconclusive": 1}
    # a row one side never measured is missing, never within
    gone = br.table({("ide", "rr"): [1.0, 1.0, 1.0]}, {}, {("ide", "rr"): "iops"})
    assert gone[1] == {"missing": 1}


def test_spread_is_the_rounds_relative_standard_deviation():
    assert br.spread([90.0, 100.0, 110.0]) == pytest.approx(0.1)
    assert math.isnan(br.spread([5.0])) and math.isnan(br.spread(None))


def test_rounds_needed_grows_with_the_square_of_the_spread():
    calm = [100.0, 101.0, 99.0]            # spread 1 %: the 3 rounds a verdict needs anyway
    noisy = [80.0, 100.0, 120.0]           # spread 20 %
    assert br.rounds_needed(calm, calm) == 3
    # 1.645^2 * (0.2^2 + 0.2^2) / 0.05^2 = 86.6 -> 87
    assert br.rounds_needed(noisy, noisy) == 87
    assert math.isnan(br.rounds_needed([1.0], noisy))


def test_median_change_needs_both_sides():
    assert br.median_change([100.0, 90.0, 110.0], [95.0, 105.0, 120.0]) == pytest.approx(0.05)
    assert math.isnan(br.median_change([], [1.0])) and math.isnan(br.median_change([1.0], None))


def test_row_verdict_is_the_gates_rule():
    from vbench.stats.verdict import judge
    cases = [([100, 101, 99, 100], [96, 97, 96.5, 96.2]),
             ([100, 101, 99, 100], [80, 82, 81, 79]),
             ([100, 130, 80, 100], [100, 90, 120, 95])]
    for raw, vb in cases:
        word, _ = br.row_verdict(raw, vb, "iops")
        v = judge(raw, vb, metric="iops", threshold=br.FLAG)
        assert (word, v.verdict) in {("within", "unchanged"), ("below", "regression"),
                                     ("inconclusive", "inconclusive")}


def test_raw_net_lab_adds_and_removes_its_tap_and_never_deletes_the_labs_namespace(monkeypatch):
    calls: list[list[str]] = []

    def fake_run(argv, *a, **k):
        calls.append(list(argv))
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(br.subprocess, "run", fake_run)
    cu = br.Cleanup()
    br.use_lab_netns(cu, "vbench")
    br.lab_tap(cu, "vbtest0")
    assert ["ip", "-n", "vbench", "link", "set", br.TAP, "master", "vbtest0", "up"] in calls
    cu.drop_taps()                    # after each raw boot: the tap goes, the namespace stays
    assert calls[-1] == ["ip", "-n", "vbench", "link", "del", br.TAP] and cu.taps == []
    br.lab_tap(cu, "vbtest0")
    calls.clear()
    cu.all()                          # Ctrl-C mid-boot: its tap removed, never the namespace
    assert calls == [["ip", "-n", "vbench", "link", "del", br.TAP]]
    own = br.Cleanup()
    own.netns = "vbref-1"
    calls.clear()
    own.all()                         # the bench's own namespace is deleted as before
    assert calls == [["ip", "netns", "delete", "vbref-1"]]


def test_the_raw_tap_has_libvirts_noqueue_qdisc_and_a_half_made_one_is_removed(monkeypatch):
    calls: list[list[str]] = []
    tc_fails = False

    def fake_run(argv, *a, **k):
        calls.append(list(argv))
        rc = 1 if tc_fails and "tc" in argv else 0
        return subprocess.CompletedProcess(argv, rc, "", "RTNETLINK answers: no" if rc else "")

    monkeypatch.setattr(br.subprocess, "run", fake_run)
    noqueue = ["tc", "qdisc", "replace", "dev", br.TAP, "root", "noqueue"]
    br.make_netns(br.Cleanup(), "10.254.1.1", 24)         # the bench's own bridge
    assert ["ip", "netns", "exec", f"vbref-{os.getpid()}", *noqueue] in calls
    cu = br.Cleanup()
    br.use_lab_netns(cu, "vbench")
    calls.clear()
    br.lab_tap(cu, "vbtest0")                              # the lab's bridge
    assert calls.index(["ip", "netns", "exec", "vbench", *noqueue]) < calls.index(
        ["ip", "-n", "vbench", "link", "set", br.TAP, "master", "vbtest0", "up"])
    cu.drop_taps()
    tc_fails = True
    with pytest.raises(br.BenchError, match="RTNETLINK"):
        br.lab_tap(cu, "vbtest0")
    calls.clear()
    cu.all()                                               # the tap it made is not left behind
    assert calls == [["ip", "-n", "vbench", "link", "del", br.TAP]]


def test_the_raw_guest_address_is_outside_the_labs_dhcp_range():
    import ipaddress
    from vbench.host.networks import TEST
    net = ipaddress.IPv4Network(TEST.cidr)
    addr = net[br.RAW_GUEST_HOST]
    assert f"end='{net[-6]}'" in TEST.xml() and net[-6] < addr < net[-1] and addr != net[1]


def test_pooled_reads_a_tax_every_row_pays_with_the_direction_of_each_metric():
    # every row 10 % worse through vbench in every round: fewer IOPS, a longer round trip
    raw = {("ide", "rr"): [1000.0, 800.0, 1200.0], ("e1000", "rtt-g2h"): [400.0, 500.0, 300.0]}
    vb = {("ide", "rr"): [900.0, 720.0, 1080.0], ("e1000", "rtt-g2h"): [440.0, 550.0, 330.0]}
    metrics = {("ide", "rr"): "iops", ("e1000", "rtt-g2h"): "rtt_p50"}
    change, low, high, n, rows = br.pooled(raw, vb, metrics)
    expected = math.expm1((math.log(0.9) - math.log(1.1)) / 2)
    assert (n, rows) == (3, 2) and change == pytest.approx(expected)
    assert low == pytest.approx(expected) and high == pytest.approx(expected)  # no scatter
    # a row one side has fewer rounds of is left out (rounds are paired in time), never padded
    vb[("sata", "rr")], raw[("sata", "rr")], metrics[("sata", "rr")] = [1.0], [1.0, 2.0], "iops"
    assert br.pooled(raw, vb, metrics)[4] == 2
    assert math.isnan(br.pooled({("ide", "rr"): [1.0]}, {("ide", "rr"): [1.0]}, metrics)[0])


def test_every_side_leads_a_round_in_turn():
    sides = ["raw", "vbench", "alone"]
    orders = [br.side_order(r, sides) for r in range(3)]
    assert [o[0] for o in orders] == sides and all(sorted(o) == sorted(sides) for o in orders)
    assert br.side_order(1, ["raw", "vbench"]) == ["vbench", "raw"]


def test_the_alone_side_runs_one_single_variant_scenario_per_device(monkeypatch, tmp_path):
    runs = []

    def fake_round(text, scn, work, args):
        runs.append([v.name for v in scn.variants])
        sizes.add(scn.guest.vcpus)
        return {(scn.variants[0].name, "tcp-1-h2g"): float(len(runs))}

    sizes: set[int] = set()
    monkeypatch.setattr(br, "vbench_round", fake_round)
    args = types.SimpleNamespace(runtime=8, disk_gib=1.0, vcpus=1)
    got = br.alone_round("net", ["virtio-net", "e1000", "rtl8139"], tmp_path, args)
    assert runs == [["virtio-net"], ["e1000"], ["rtl8139"]]
    assert sizes == {1}  # --vcpus reaches every scenario the bench runs
    assert got == {("virtio-net", "tcp-1-h2g"): 1.0, ("e1000", "tcp-1-h2g"): 2.0,
                   ("rtl8139", "tcp-1-h2g"): 3.0}


def test_both_set_ups_are_judged_against_raw_and_against_each_other(capsys):
    key, metrics = ("e1000", "tcp-1-h2g"), {("e1000", "tcp-1-h2g"): "throughput"}
    raw, sib, alone = {key: [100.0, 110.0, 90.0]}, {key: [90.0, 99.0, 81.0]}, {key: [100.0, 110.0, 90.0]}
    args = types.SimpleNamespace(rounds=3, accel="tcg", sandbox="off", raw_net="own", only=None,
                                 vcpus=2, raw_launch="qemu")
    assert br.report(raw, sib, alone, metrics, args) == 1  # siblings: 10 % below raw
    out = capsys.readouterr().out
    assert "vbench side: siblings" in out and "vbench side: alone" in out
    assert "alone against siblings, 1 rows pooled (below zero: worse alone): +11.1%" in out


def test_the_raw_side_places_iperf3_as_vbench_does_and_checks_the_layout_it_was_told():
    """The reference measures the layout vbench measures (vbench.workloads.placement): the same
    script before iperf3, pinned to the vCPU it named, each interrupt given back its vCPUs after;
    a step whose layout lines are missing or wrong is an error, not a number."""
    data = Path(__file__).resolve().parents[1] / "data" / \
        "iperf3-tcp-host-to-guest-e1000-slirp.json"
    scn = load_scenario_text(br.scenario_text("net", ["virtio-net"], 8, 1.0))
    job = next(j for w in scn.workloads for j in br.guest_jobs(scn, w, "10.254.1.10",
                                                                "10.254.1.1") if "tcp" in j.name)
    assert "taskset -c" in job.cmd and "smp_affinity_list" in job.cmd and "was=" in job.cmd
    good = "ifname=eth0\nirqs=24,25,26\nwas=0-1 0-1 0-1\nirq_cpus=0\nprobe_cpu=1\n"
    assert job.parse(good + data.read_text(), job.name)  # the samples, after the layout's check
    from vbench.core.errors import ProbeError

    with pytest.raises(ProbeError, match="named no interface"):
        job.parse(data.read_text(), job.name)  # no layout lines: nothing proves the layout
    one = load_scenario_text(br.scenario_text("net", ["virtio-net"], 8, 1.0, vcpus=1))
    job1 = next(j for w in one.workloads for j in br.guest_jobs(one, w, "10.254.1.10",
                                                                 "10.254.1.1") if "tcp" in j.name)
    assert "taskset" not in job1.cmd  # one vCPU: the only layout there is (placement: free)
