"""Golden domain XML of the device knobs and the devices added after the first four kinds.

Same golden-file rule as ``test_domain_xml.py`` (``VBENCH_UPDATE_GOLDEN=1`` writes them; only new
files were generated that way), plus the facts each knob must put into the XML, parsed.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import pytest

from vbench.devices import missing_on_host
from vbench.devices.console import ConsoleSpec
from vbench.devices.fs import FsSpec
from vbench.devices.mem import MemSpec
from vbench.devices.nic import NicSpec
from vbench.devices.pmem import PmemSpec
from vbench.devices.vsock import VsockSpec
from vbench.core.errors import ScenarioError
from vbench.scenario.schema import DeviceProfile, GuestSpec, load_scenario_text
from vbench.devices.rng import RngSpec
from vbench.devices.disk import DiskSpec

from .test_domain_xml import DOMAIN_TYPES, GDIR, GOLDEN, render, scratch_disk

UPDATE = os.environ.get("VBENCH_UPDATE_GOLDEN") == "1"
PC, Q35 = GuestSpec(), GuestSpec(machine="q35")
QEMU_NS = "{http://libvirt.org/schemas/domain/qemu/1.0}"

KNOB_CASES: dict[str, tuple[DeviceProfile, GuestSpec]] = {
    "disk-nvme": (DeviceProfile(disk=DiskSpec(bus="nvme")), PC),
    "disk-nvme-q35": (DeviceProfile(disk=DiskSpec(bus="nvme")), Q35),
    "disk-virtio-qcow2": (DeviceProfile(disk=DiskSpec(bus="virtio", format="qcow2")), PC),
    "disk-virtio-iothread-q4-q35": (
        DeviceProfile(disk=DiskSpec(bus="virtio", iothread=True, queues=4)), Q35),
    "disk-scsi-iothread-q2": (DeviceProfile(disk=DiskSpec(bus="scsi", iothread=True, queues=2)), PC),
    "disk-sata-q35": (DeviceProfile(disk=DiskSpec(bus="sata")), Q35),
    "nic-virtio-q4-vhost-off": (DeviceProfile(nic=NicSpec(model="virtio", queues=4, vhost=False)), PC),
    "nic-virtio-vhost-on": (DeviceProfile(nic=NicSpec(model="virtio", vhost=True)), PC),
    "vsock-virtio": (DeviceProfile(vsock=VsockSpec(model="virtio")), PC),
    "fs-virtiofs": (DeviceProfile(fs=FsSpec(model="virtiofs")), PC),
    "fs-9p-mapped": (DeviceProfile(fs=FsSpec(model="9p", accessmode="mapped")), PC),
    "fs-9p-passthrough": (DeviceProfile(fs=FsSpec(model="9p", accessmode="passthrough")), PC),
    "console-virtio": (DeviceProfile(console=ConsoleSpec(model="virtio")), PC),
    "console-16550": (DeviceProfile(console=ConsoleSpec(model="16550")), PC),
    "pmem-virtio-pmem": (DeviceProfile(pmem=PmemSpec(model="virtio-pmem")), PC),
    "pmem-virtio-pmem-q35": (DeviceProfile(pmem=PmemSpec(model="virtio-pmem")), Q35),
    "pmem-virtio-blk": (DeviceProfile(pmem=PmemSpec(model="virtio-blk")), PC),
    "mem-virtio-mem": (DeviceProfile(mem=MemSpec(model="virtio-mem")), PC),
    "mem-balloon": (DeviceProfile(mem=MemSpec(model="balloon")), PC),
}


@pytest.mark.parametrize("domain_type", DOMAIN_TYPES)
@pytest.mark.parametrize("case", list(KNOB_CASES))
def test_golden(case, domain_type):
    prof, spec = KNOB_CASES[case]
    text = render(prof, domain_type, spec=spec)
    path = GOLDEN / f"domain-{case}-{domain_type}.xml"
    if UPDATE and not path.exists():  # new files only: existing golden files are never rewritten
        path.write_text(text)
    assert path.exists(), f"golden file {path} is missing: VBENCH_UPDATE_GOLDEN=1 creates it"
    assert text == path.read_text(), f"domain XML of {case}/{domain_type} differs from {path.name}"


def _root(case: str) -> ET.Element:
    prof, spec = KNOB_CASES[case]
    return ET.fromstring(render(prof, "qemu", spec=spec))


def _qemu_args(root: ET.Element) -> list[str]:
    return [a.get("value") for a in root.findall(f"./{QEMU_NS}commandline/{QEMU_NS}arg")]


@pytest.mark.parametrize("case, bus", [("disk-nvme", "pci.0"), ("disk-nvme-q35", "pcie.0")])
def test_nvme_is_a_qemu_device_on_the_scratch_file(case, bus):
    root = _root(case)
    assert scratch_disk(root) is None  # libvirt 9.0 has no <disk bus='nvme'>: no libvirt disk
    args = _qemu_args(root)
    assert args[0] == "-drive" and args[2] == "-device"
    drive = dict(kv.split("=", 1) for kv in args[1].split(","))
    assert drive["file"] == str(GDIR / "scratch.raw")
    assert (drive["format"], drive["cache"], drive["aio"], drive["if"]) == ("raw", "none", "native",
                                                                           "none")
    dev = args[3].split(",")
    assert dev[0] == "nvme" and "serial=vbench-scratch" in dev and f"bus={bus}" in dev
    assert f"drive={drive['id']}" in dev


def test_other_disks_have_no_qemu_arguments():
    for case in ("disk-virtio-qcow2", "disk-sata-q35", "disk-scsi-iothread-q2"):
        assert _root(case).find(f"./{QEMU_NS}commandline") is None


def test_qcow2_backing():
    drv = scratch_disk(_root("disk-virtio-qcow2")).find("driver")
    assert drv.get("type") == "qcow2"
    assert scratch_disk(_root("disk-virtio-qcow2")).find("source").get("file").endswith(".qcow2")


def test_virtio_iothread_and_queues_on_q35():
    root = _root("disk-virtio-iothread-q4-q35")
    assert root.find("./os/type").get("machine") == "q35"
    assert root.findtext("iothreads") == "1"
    drv = scratch_disk(root).find("driver")
    assert (drv.get("queues"), drv.get("iothread")) == ("4", "1")


def test_scsi_knobs_go_to_the_controller():
    root = _root("disk-scsi-iothread-q2")
    assert root.findtext("iothreads") == "1"
    ctl = root.find("./devices/controller[@type='scsi']/driver")
    assert (ctl.get("queues"), ctl.get("iothread")) == ("2", "1")
    assert scratch_disk(root).find("driver").get("queues") is None


def test_no_iothreads_element_without_the_knob():
    assert _root("disk-sata-q35").find("iothreads") is None


@pytest.mark.parametrize("bus", ["sata", "ide", "nvme"])
@pytest.mark.parametrize("knob", [{"iothread": True}, {"queues": 2}])
def test_knobs_refused_on_emulated_buses(bus, knob):
    with pytest.raises(ValueError, match="only virtio and scsi disks"):
        DiskSpec(bus=bus, **knob)


SCENARIO = """
name: q
device: disk
guest: {machine: MACHINE}
variants:
  - {name: a, disk: {bus: sata}}
  - {name: b, disk: {bus: ide}}
workloads:
  - {name: w, fio: {rw: randread}}
"""


@pytest.mark.parametrize("machine", ["q35", "pc-q35-7.2"])
def test_ide_on_q35_is_refused_with_one_line_naming_the_rule(machine):
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(SCENARIO.replace("MACHINE", machine), where="s.yaml")
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith("s.yaml: variants[1].disk: bus 'ide' cannot run on machine")
    assert "q35 has no IDE controller" in msg


def test_ide_on_pc_is_accepted():
    scn = load_scenario_text(SCENARIO.replace("MACHINE", "pc"))
    assert scn.profile(scn.variants[1]).disk.bus == "ide"


def test_knobs_reach_the_recorded_profile():
    """The record stores each variant's profile dump: every knob is in it."""
    dump = DeviceProfile(disk=DiskSpec(bus="virtio", format="qcow2", iothread=True, queues=2),
                         rng=RngSpec()).model_dump()
    assert (dump["disk"]["format"], dump["disk"]["iothread"], dump["disk"]["queues"]) == (
        "qcow2", True, 2)


# ---- nic knobs and vsock -------------------------------------------------------------------------



def _test_nic_driver(case: str) -> ET.Element | None:
    from .test_domain_xml import nic_under_test

    return nic_under_test(_root(case)).find("driver")


def test_nic_queues_and_userspace_backend():
    drv = _test_nic_driver("nic-virtio-q4-vhost-off")
    assert (drv.get("name"), drv.get("queues")) == ("qemu", "4")


def test_nic_vhost_on():
    drv = _test_nic_driver("nic-virtio-vhost-on")
    assert (drv.get("name"), drv.get("queues")) == ("vhost", None)


def test_nic_without_knobs_has_no_driver_element():
    assert _test_nic_driver_plain() is None


def _test_nic_driver_plain():
    from .test_domain_xml import CASES, nic_under_test

    return nic_under_test(ET.fromstring(render(CASES["nic-virtio"], "qemu"))).find("driver")


@pytest.mark.parametrize("knob", [{"queues": 2}, {"vhost": True}, {"vhost": False}])
def test_nic_knobs_refused_on_emulated_models(knob):
    with pytest.raises(ValueError, match="only virtio NICs"):
        NicSpec(model="e1000", **knob)


def test_vsock_xml():
    vs = _root("vsock-virtio").findall("./devices/vsock")
    assert len(vs) == 1 and vs[0].get("model") == "virtio" and vs[0].find("cid").get("auto") == "yes"


NET_SCENARIO = """
name: n
device: DEVICE
variants:
  - {name: vhost, VARIANT_A}
  - {name: other, VARIANT_B}
workloads:
  - {name: w, ping: {count: 5}}
"""


@pytest.mark.parametrize("device, a, b, needed", [
    ("nic", "nic: {model: virtio, vhost: on}", "nic: {model: virtio, vhost: off}",
     "vhost: /dev/vhost-net (nic vhost: true)"),
    ("vsock", "vsock: {model: virtio}", "vsock: {model: none}",
     "vhost: /dev/vhost-vsock (vsock virtio)"),
])
def test_missing_host_device_refused_before_boot_with_one_line(device, a, b, needed):
    from vbench.core.errors import LabError
    from vbench.host.hosts import require_host_devices

    scn = load_scenario_text(NET_SCENARIO.replace("DEVICE", device).replace("VARIANT_A", a)
                             .replace("VARIANT_B", b))
    with pytest.raises(LabError) as exc:
        require_host_devices(scn, exists=lambda p: False)
    assert "\n" not in str(exc.value) and needed in str(exc.value)
    assert "other:" not in str(exc.value)  # vhost off / no vsock needs nothing
    require_host_devices(scn, exists=lambda p: True)  # where the devices exist: accepted


def test_yaml_on_off_are_the_vhost_booleans():
    scn = load_scenario_text(NET_SCENARIO.replace("DEVICE", "nic")
                             .replace("VARIANT_A", "nic: {model: virtio, vhost: on, queues: 2}")
                             .replace("VARIANT_B", "nic: {model: virtio, vhost: off}"))
    assert [scn.profile(v).nic.vhost for v in scn.variants] == [True, False]
    assert missing_on_host([("x", scn.profile(scn.variants[1]))], exists=lambda p: False) == []
