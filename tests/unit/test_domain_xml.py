"""Golden-file tests of ``virt.domain_xml`` for every device profile, under KVM and TCG.

The generated XML of each case is compared byte for byte with ``tests/golden/domain-<case>-<type>.xml``.
When a change of the XML is meant, regenerate the golden files and review the diff::

    VBENCH_UPDATE_GOLDEN=1 python -m pytest tests/unit/test_domain_xml.py

With ``VBENCH_UPDATE_GOLDEN=1`` the tests rewrite the golden files instead of comparing (they
still check the parsed facts below). Paths (/var/lib/vbench/...) and the SSH key are fixed so the
output is deterministic.

Besides the bytes, each XML is parsed and its important facts asserted: the scratch disk's bus,
the test NIC's model, the RNG and its /dev/urandom backend, an explicit ``<memballoon
model='none'/>`` (libvirt would otherwise add a virtio balloon by itself), the vbench metadata
tag, the domain type and ``host-passthrough`` only under KVM, and the source guide's snippets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vbench.guest import domain as virt
from vbench.core.errors import GuestError, UserError
from vbench.scenario.schema import (
    BalloonSpec,
    DeviceProfile,
    DiskSpec,
    GuestSpec,
    NicSpec,
    RngSpec,
    parse_profile,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
UPDATE = os.environ.get("VBENCH_UPDATE_GOLDEN") == "1"

NAME = "vbench-20261126-101500-disk-0-case"
GDIR = Path("/var/lib/vbench/guests") / NAME
IMG = Path("/var/lib/vbench/images/debian12-0123456789ab")
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFixedTestKeyForGoldenFilesOnly0000000000 vbench-run"
TAGS = {"owner": "vbench", "dir": str(GDIR), "pid": "4242", "run": "20261126-101500-disk",
        "variant": "case"}
NS = {"vbench": virt.VBENCH_NS}

RNG_NONE = RngSpec(model="none")
CASES: dict[str, DeviceProfile] = {
    "disk-virtio": DeviceProfile(disk=DiskSpec(bus="virtio")),
    "disk-scsi": DeviceProfile(disk=DiskSpec(bus="scsi")),
    "disk-sata": DeviceProfile(disk=DiskSpec(bus="sata")),
    "disk-ide": DeviceProfile(disk=DiskSpec(bus="ide", cache="writeback", io="threads")),
    "nic-virtio": DeviceProfile(nic=NicSpec(model="virtio")),
    "nic-e1000": DeviceProfile(nic=NicSpec(model="e1000")),
    "nic-e1000e": DeviceProfile(nic=NicSpec(model="e1000e")),
    "nic-rtl8139": DeviceProfile(nic=NicSpec(model="rtl8139")),
    "rng-virtio": DeviceProfile(rng=RngSpec(model="virtio")),
    "rng-virtio-rate": DeviceProfile(rng=RngSpec(model="virtio", rate_bytes=1024,
                                                 rate_period_ms=2000)),
    "rng-none": DeviceProfile(rng=RNG_NONE),
    "balloon-virtio": DeviceProfile(rng=RNG_NONE, balloon=BalloonSpec(model="virtio")),
    "balloon-none": DeviceProfile(rng=RNG_NONE, balloon=BalloonSpec(model="none")),
    "preset-virtio": parse_profile("virtio"),
    "preset-emulated": parse_profile("emulated"),
}
DOMAIN_TYPES = ("kvm", "qemu")


def files_for(profile: DeviceProfile) -> virt.DomainFiles:
    return virt.DomainFiles(overlay=GDIR / "overlay.qcow2",
                            scratch=GDIR / f"scratch.{profile.disk.format}" if profile.disk else None,
                            console=GDIR / "console.log", kernel=IMG / "vmlinuz",
                            initrd=IMG / "initrd.img")


def render(profile: DeviceProfile, domain_type: str, name: str = NAME, tags: dict | None = None,
           spec: GuestSpec | None = None) -> str:
    return virt.domain_xml(name, profile, spec or GuestSpec(vcpus=2, memory_mib=1024),
                           domain_type, files_for(profile),
                           virt.kernel_cmdline("vbench-root", SSH_KEY), "vbench-mgmt",
                           "vbench-test", TAGS if tags is None else tags)


def scratch_disk(root: ET.Element) -> ET.Element | None:
    found = [d for d in root.findall("./devices/disk") if d.findtext("serial") == virt.SCRATCH_SERIAL]
    assert len(found) <= 1
    return found[0] if found else None


def nic_under_test(root: ET.Element) -> ET.Element | None:
    found = [i for i in root.findall("./devices/interface")
             if i.find("source").get("network") == "vbench-test"]
    assert len(found) <= 1
    return found[0] if found else None




# ---- golden files -------------------------------------------------------------------------------

@pytest.mark.parametrize("domain_type", DOMAIN_TYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_golden(case, domain_type):
    text = render(CASES[case], domain_type)
    path = GOLDEN / f"domain-{case}-{domain_type}.xml"
    if UPDATE:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    else:
        assert path.exists(), (f"golden file {path} is missing: run with VBENCH_UPDATE_GOLDEN=1 "
                               f"to create it, then review it")
        assert text == path.read_text(), (
            f"domain XML of {case}/{domain_type} differs from {path.name}; if the change is meant, "
            f"rerun with VBENCH_UPDATE_GOLDEN=1 and review the diff")


def test_every_golden_file_has_a_case():
    """A golden file whose case was removed would silently stop being checked."""
    from .test_domain_xml_knobs import KNOB_CASES

    expected = {f"domain-{c}-{t}.xml" for c in [*CASES, *KNOB_CASES] for t in DOMAIN_TYPES}
    present = {p.name for p in GOLDEN.glob("domain-*.xml")}
    assert present == expected


def test_output_is_deterministic():
    assert render(CASES["preset-virtio"], "kvm") == render(CASES["preset-virtio"], "kvm")


# ---- parsed facts --------------------------------------------------------------------------------

@pytest.mark.parametrize("domain_type", DOMAIN_TYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_parsed_facts(case, domain_type):
    prof = CASES[case]
    text = render(prof, domain_type)
    root = ET.fromstring(text)

    assert root.tag == "domain" and root.get("type") == domain_type
    assert root.findtext("name") == NAME
    cpu = root.find("cpu")
    if domain_type == "kvm":
        assert cpu is not None and cpu.get("mode") == "host-passthrough"
    else:
        assert cpu is None and "host-passthrough" not in text  # TCG cannot pass the host CPU through
    assert root.find("memory").text == "1024" and root.find("memory").get("unit") == "MiB"
    assert root.findtext("vcpu") == "2"
    assert root.find("./os/type").get("machine") == "pc"

    # The vbench tag: namespaced metadata carrying every tag.
    guest = root.find("./metadata/vbench:guest", NS)
    assert guest is not None
    assert {el.tag.split("}")[1]: el.text for el in guest} == TAGS

    # Boot disk: always virtio on vda, the overlay.
    boot = [d for d in root.findall("./devices/disk") if d.find("target").get("dev") == "vda"]
    assert len(boot) == 1 and boot[0].find("target").get("bus") == "virtio"
    assert boot[0].find("source").get("file") == str(GDIR / "overlay.qcow2")

    # Scratch disk under test.
    sd = scratch_disk(root)
    if prof.disk is None:
        assert sd is None
    else:
        assert sd is not None
        tgt = sd.find("target")
        assert tgt.get("bus") == prof.disk.bus
        assert tgt.get("dev") == {"virtio": "vdb", "scsi": "sda", "sata": "sda", "ide": "hda"}[prof.disk.bus]
        drv = sd.find("driver")
        assert (drv.get("type"), drv.get("cache"), drv.get("io")) == ("raw", prof.disk.cache, prof.disk.io)
        assert sd.find("source").get("file") == str(GDIR / "scratch.raw")
    controllers = [c.get("model") for c in root.findall("./devices/controller[@type='scsi']")]
    assert controllers == (["virtio-scsi"] if prof.disk and prof.disk.bus == "scsi" else [])

    # Management NIC: always virtio on the management network.
    mgmt = [i for i in root.findall("./devices/interface")
            if i.find("source").get("network") == "vbench-mgmt"]
    assert len(mgmt) == 1 and mgmt[0].find("model").get("type") == "virtio"
    assert mgmt[0].find("mac").get("address") == virt.mac_for(NAME, "mgmt")

    # NIC under test.
    nic = nic_under_test(root)
    if prof.nic is None:
        assert nic is None
    else:
        assert nic is not None and nic.find("model").get("type") == prof.nic.model
        assert nic.find("mac").get("address") == virt.mac_for(NAME, "test")

    # RNG.
    rngs = root.findall("./devices/rng")
    if prof.rng.model == "none":
        assert rngs == []
    else:
        assert len(rngs) == 1 and rngs[0].get("model") == "virtio"
        backend = rngs[0].find("backend")
        assert backend.get("model") == "random" and backend.text == "/dev/urandom"
        rate = rngs[0].find("rate")
        if prof.rng.rate_bytes:
            assert rate is not None
            assert (rate.get("bytes"), rate.get("period")) == (str(prof.rng.rate_bytes),
                                                             str(prof.rng.rate_period_ms))
        else:
            assert rate is None

    # Balloon: always explicit, or libvirt adds a virtio one by itself.
    balloons = root.findall("./devices/memballoon")
    assert len(balloons) == 1
    assert balloons[0].get("model") == prof.balloon.model

    # Serial console to a file; kernel boot with the fixed key.
    assert root.find("./devices/serial/source").get("path") == str(GDIR / "console.log")
    assert root.findtext("./os/kernel") == str(IMG / "vmlinuz")
    assert "vbench.sshkey=ssh-ed25519:AAAAC3NzaC1lZDI1NTE5AAAAIFixed" in root.findtext("./os/cmdline")


# ---- the source guide's snippets appear verbatim ----------------------------------------------

@pytest.mark.parametrize("case, snippets", [
    ("disk-virtio", ["<target dev='vda' bus='virtio'/>", "<target dev='vdb' bus='virtio'/>"]),
    ("disk-scsi", ["<target dev='sda' bus='scsi'/>",
                   "<controller type='scsi' index='0' model='virtio-scsi'/>"]),
    ("disk-sata", ["<target dev='sda' bus='sata'/>"]),
    ("disk-ide", ["<target dev='hda' bus='ide'/>"]),
    ("nic-virtio", ["<model type='virtio'/>"]),
    ("nic-e1000", ["<model type='e1000'/>"]),
    ("nic-e1000e", ["<model type='e1000e'/>"]),
    ("nic-rtl8139", ["<model type='rtl8139'/>"]),
    ("rng-virtio", ["<rng model='virtio'>", "<backend model='random'>/dev/urandom</backend>"]),
    ("rng-virtio-rate", ["<rate bytes='1024' period='2000'/>"]),
    ("balloon-virtio", ["<memballoon model='virtio'>", "<stats period='1'/>"]),
    ("balloon-none", ["<memballoon model='none'/>"]),
])
def test_source_guide_snippets(case, snippets):
    text = render(CASES[case], "kvm")
    for s in snippets:
        assert s in text, f"{s!r} not in the XML of {case}"


def test_emulated_preset_has_no_virtio_test_devices():
    root = ET.fromstring(render(CASES["preset-emulated"], "qemu"))
    assert scratch_disk(root).find("target").get("bus") == "sata"
    assert nic_under_test(root).find("model").get("type") == "e1000"
    assert root.findall("./devices/rng") == []
    assert root.find("./devices/memballoon").get("model") == "none"


# ---- names and hostile text -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["guest-1", "vbench-", "vbench-a b", "vbench-a/b", "vbench-<x>",
                                  "vbench-" + "a" * 81, "VBENCH-x", ""])
def test_bad_domain_name_raises_guest_error(name):
    with pytest.raises(GuestError) as exc:
        render(CASES["disk-virtio"], "kvm", name=name)
    assert isinstance(exc.value, UserError)
    assert repr(name) in str(exc.value)


def test_domain_name_with_trailing_newline_refused():
    with pytest.raises(GuestError):
        render(CASES["disk-virtio"], "kvm", name="vbench-x\n")


def test_longest_valid_name_accepted():
    name = "vbench-" + "a" * 80
    assert ET.fromstring(render(CASES["disk-virtio"], "kvm", name=name)).findtext("name") == name


HOSTILE = "</vbench:run><evil/>&amp;<![CDATA[x]]>'\"\u00e9"


def test_hostile_tag_values_are_escaped():
    tags = {**TAGS, "run": HOSTILE, "variant": "a&b<c>"}
    root = ET.fromstring(render(CASES["preset-virtio"], "kvm", tags=tags))
    guest = root.find("./metadata/vbench:guest", NS)
    values = {el.tag.split("}")[1]: el.text for el in guest}
    assert values["run"] == HOSTILE and values["variant"] == "a&b<c>"
    assert root.find(".//evil") is None


def test_hostile_paths_are_escaped():
    prof = CASES["disk-sata"]
    d = Path("/var/lib/vbench/guests/we'ird\"<&>")
    files = virt.DomainFiles(overlay=d / "o.qcow2", scratch=d / "s.raw", console=d / "c.log",
                             kernel=d / "vmlinuz", initrd=d / "initrd.img")
    text = virt.domain_xml(NAME, prof, GuestSpec(), "kvm", files, "console=ttyS0 x=<&>",
                           "vbench-mgmt", "vbench-test", TAGS)
    root = ET.fromstring(text)
    assert scratch_disk(root).find("source").get("file") == str(d / "s.raw")
    assert root.findtext("./os/kernel") == str(d / "vmlinuz")
    assert root.findtext("./os/cmdline") == "console=ttyS0 x=<&>"
    assert root.find("./devices/serial/source").get("path") == str(d / "c.log")


def test_guest_spec_values_reach_the_xml():
    root = ET.fromstring(render(CASES["nic-virtio"], "qemu",
                                spec=GuestSpec(vcpus=4, memory_mib=2048, machine="q35")))
    assert root.findtext("vcpu") == "4"
    assert root.findtext("memory") == "2048" and root.findtext("currentMemory") == "2048"
    assert root.find("./os/type").get("machine") == "q35"


def test_mac_addresses_are_stable_local_and_distinct():
    a, b = virt.mac_for(NAME, "mgmt"), virt.mac_for(NAME, "test")
    assert a != b and a.startswith("52:54:00:") and b.startswith("52:54:00:")
    assert a == virt.mac_for(NAME, "mgmt")
    assert virt.mac_for(NAME + "x", "mgmt") != a


def test_kernel_cmdline_carries_key_without_spaces():
    line = virt.kernel_cmdline("vbench-root", SSH_KEY)
    key_item = [w for w in line.split() if w.startswith("vbench.sshkey=")]
    assert key_item == ["vbench.sshkey=" + ":".join(SSH_KEY.split()[:2])]
    assert "root=LABEL=vbench-root" in line.split() and "net.ifnames=0" in line.split()


# ---- libvirt's own schema (when xmllint and libvirt's schemas are installed) --------------------

LIBVIRT_RNG = Path("/usr/share/libvirt/schemas/domain.rng")


@pytest.mark.skipif(not (shutil.which("xmllint") and LIBVIRT_RNG.exists()),
                    reason="needs xmllint (libxml2-utils) and libvirt's schemas")
def test_every_case_validates_against_libvirts_domain_schema(tmp_path):
    paths = []
    for case, prof in CASES.items():
        for t in DOMAIN_TYPES:
            p = tmp_path / f"{case}-{t}.xml"
            p.write_text(render(prof, t))
            paths.append(str(p))
    cp = subprocess.run(["xmllint", "--noout", "--relaxng", str(LIBVIRT_RNG), *paths],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr[-3000:]
    assert cp.stderr.count(" validates") == len(paths)
