"""The device set on the page (issue 25): every device besides the one under test, read from the
domain XML vbench defines, with what libvirt adds unasked; on the report's context strip."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: helpers_runs

from helpers_runs import write_run  # noqa: E402
from vbench.devices import DomainFiles  # noqa: E402
from vbench.guest.xml import domain_xml  # noqa: E402
from vbench.report import build_report  # noqa: E402
from vbench.report.devset import UnreadableXml, besides, device_set  # noqa: E402
from vbench.scenario.schema import load_scenario_text  # noqa: E402

NET = """name: n
device: nic
repetitions: 3
variants:
  - name: virtio-net
    nic: {model: virtio}
  - name: e1000
    nic: {model: e1000}
workloads:
  - name: tcp
    iperf3: {duration: 5}
"""
DISK = """name: d
device: disk
repetitions: 3
variants:
  - name: virtio-blk
    disk: {bus: virtio}
  - name: scsi
    disk: {bus: scsi}
workloads:
  - name: rr
    fio: {rw: randread}
"""
FILES = DomainFiles(Path("/g/overlay.qcow2"), Path("/g/scratch.raw"), Path("/g/console.log"),
                    Path("/i/vmlinuz"), Path("/i/initrd.img"))


def xmls(text: str) -> list[tuple[str, str, str]]:
    """(variant, device kind, the domain XML vbench defines for it) of every variant."""
    scn = load_scenario_text(text)
    return [(v.name, scn.device, domain_xml(f"vbench-t-{v.name}", scn.profile(v), scn.guest,
                                            "qemu", FILES, "root=x", "vbench-mgmt",
                                            "vbench-test", {"run": "t"}))
            for v in scn.variants]


def test_nic_variants_list_everything_but_the_nic_under_test():
    ds = device_set(xmls(NET))
    assert ds is not None and not ds.problems and not ds.extra
    assert ds.common == ["boot disk (virtio-blk)", "management NIC (virtio-net on vbench-mgmt)",
                         "virtio-rng (/dev/urandom)", "serial console (ISA UART, to a file)",
                         "pvpanic (isa)"]  # vbench's guests have no USB controller
    # a domain XML stored before they had none: libvirt's implicit one is listed
    old = [(n, d, x.replace("    <controller type='usb' model='none'/>\n", "")) for n, d, x in xmls(NET)]
    old_ds = device_set(old)
    assert old_ds is not None
    assert old_ds.common[-1] == "USB controller (PIIX3 UHCI, libvirt's default)"
    assert not any("under test" in x or "e1000" in x for x in ds.common)


def test_disk_variants_leave_out_the_scratch_disk_and_its_controller():
    ds = device_set(xmls(DISK))
    assert ds is not None and not ds.extra
    assert "management NIC (virtio-net on vbench-mgmt)" in ds.common
    assert not any("scratch" in x or "scsi" in x.lower() for x in ds.common)


def test_what_only_some_variants_have_is_listed_per_variant():
    [(n1, k1, x1), (n2, k2, x2)] = xmls(NET)
    x2 = x2.replace("<memballoon model='none'/>", "")  # libvirt's default balloon comes back
    ds = device_set([(n1, k1, x1), (n2, k2, x2)])
    assert ds is not None
    assert ds.extra == [("e1000", ["virtio balloon (libvirt's default)"])]


def test_an_unreadable_xml_is_said_never_an_empty_set():
    ds = device_set([("a", "nic", "<domain><devices>"), ("b", "nic", "")])
    assert ds is not None and ds.problems and "a:" in ds.problems[0] and not ds.common
    with pytest.raises(UnreadableXml):
        besides("<!DOCTYPE x [<!ENTITY a 'b'>]><domain/>", "nic")
    assert device_set([("b", "nic", "")]) is None  # nothing stored: nothing claimed


def test_the_context_strip_shows_the_device_set(tmp_path):
    run = write_run(tmp_path / "results", "20261126-100000-net", kind="nic")
    text = build_report([run], tmp_path / "r").read_text()
    assert "every variant also has" in text
    assert "boot disk (virtio-blk)" in text and "libvirt&#39;s default" in text
