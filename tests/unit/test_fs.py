"""Shared folders (device fs): XML facts, the mount facts and check, and the metadata probe."""

from __future__ import annotations

from pathlib import Path

import pytest

from vbench.devices import DEVICES, GuestContext
from vbench.devices.fs import FIO_FILE, MOUNT, FsSpec
from vbench.core.errors import ProbeError
from vbench.workloads.fsmeta import fsmeta_command, parse_fsmeta
from vbench.guest.verify import parse_facts

from .test_domain_xml_knobs import _root

DATA = Path(__file__).resolve().parents[1] / "data"
FS = DEVICES["fs"]


def test_virtiofs_xml_shares_guest_memory_and_names_virtiofsd():
    root = _root("fs-virtiofs")
    mb = root.find("memoryBacking")
    assert mb.find("source").get("type") == "memfd" and mb.find("access").get("mode") == "shared"
    fs = root.find("./devices/filesystem")
    assert fs.find("driver").get("type") == "virtiofs"
    assert fs.find("binary").get("path") == "/usr/lib/qemu/virtiofsd"
    assert fs.find("source").get("dir").endswith("/share") and fs.find("target").get("dir") == "vbshare"
    assert root.find("seclabel") is None


@pytest.mark.parametrize("case, mode, root_qemu", [("fs-9p-mapped", "mapped", False),
                                                    ("fs-9p-passthrough", "passthrough", True)])
def test_9p_xml(case, mode, root_qemu):
    root = _root(case)
    fs = root.find("./devices/filesystem")
    assert fs.get("accessmode") == mode and fs.find("driver").get("type") == "path"
    assert root.find("memoryBacking") is None  # 9p needs no shared memory
    sec = root.find("seclabel")
    assert (sec is not None and sec.findtext("label") == "+0:+0") == root_qemu


def test_virtiofs_has_no_mapped_mode():
    with pytest.raises(ValueError, match="virtio-fs supports only passthrough"):
        FsSpec(model="virtiofs", accessmode="mapped")


def test_virtiofsd_is_a_host_requirement_9p_has_none():
    assert FS.host_requirements(FsSpec()) == (("/usr/lib/qemu/virtiofsd", "virtiofs"),)
    assert FS.host_requirements(FsSpec(model="9p")) == ()


def _facts(mounted: str, bound: str) -> dict:
    return parse_facts(f"kernel=6.1.0\nbound_drivers={bound}\nfs_mount={mounted}\n")


@pytest.mark.parametrize("model, bound, mounted, ok", [
    ("virtiofs", "virtiofs virtio_net virtio_blk", "virtiofs", True),
    ("9p", "9pnet_virtio virtio_net virtio_blk", "9p", True),
    ("virtiofs", "9pnet_virtio virtio_net", "9p", False),     # the other transport bound
    ("virtiofs", "virtiofs virtio_net", "", False),           # bound but the mount failed
])
def test_check_needs_the_driver_bound_and_the_share_mounted(model, bound, mounted, ok):
    facts = _facts(mounted, bound)
    c = FS.check(FsSpec(model=model), facts, GuestContext())
    assert c.ok is ok
    assert c.detail == f"{MOUNT} mounted as {mounted or 'nothing'}"


def test_mounted_share_gives_fio_its_file():
    facts = _facts("virtiofs", "virtiofs")
    assert facts["fio_file"] == FIO_FILE and facts["fs_dir"] == MOUNT
    assert "fio_file" not in _facts("", "virtiofs")


def test_real_fio_file_job_output_on_virtiofs_parses():
    from vbench.workloads.fio import parse_fio_json

    got = {s.metric: s.value for s in parse_fio_json(
        (DATA / "fio-randread-4k-virtiofs-psync-tcg.json").read_text(), "w")}
    assert got["iops"] == pytest.approx(1022.6, abs=0.1)


def _three_phases() -> str:
    real = (DATA / "fio-filecreate-500-9p-mapped-tcg.json").read_text()
    return "".join(f"### {p}\n{real}\n" for p in ("create", "stat", "delete"))


def test_fsmeta_parses_each_phase_of_real_fio_output():
    samples = parse_fsmeta(_three_phases(), "meta")
    got = {s.metric: (s.value, s.unit) for s in samples}
    for phase in ("create", "stat", "delete"):
        assert got[f"{phase}_rate"] == (pytest.approx(104.54, abs=0.01), "files/s")
        assert got[f"{phase}_lat_p50"][1] == "us" and got[f"{phase}_lat_p50"][0] > 0
        assert got[f"{phase}_lat_p99"][0] >= got[f"{phase}_lat_p50"][0]
    assert {s.workload for s in samples} == {"meta"}


def test_fsmeta_missing_phase_is_a_probe_error():
    text = _three_phases().split("### delete")[0]
    with pytest.raises(ProbeError, match="delete"):
        parse_fsmeta(text, "meta")


def test_fsmeta_command_runs_three_fio_file_engines_on_the_same_names():
    cmd = fsmeta_command("/mnt/vbench-share/vbench-meta", 500, "4k", 60)
    for phase in ("create", "stat", "delete"):
        assert f"echo '### {phase}'" in cmd and f"--ioengine=file{phase}" in cmd
    assert cmd.count("--name=vbench-meta") == 3 and cmd.count("--nrfiles=500") == 3
    assert cmd.splitlines()[0].startswith("rm -rf /mnt/vbench-share/vbench-meta && mkdir -p")


@pytest.mark.parametrize("d, size", [("/mnt/x; reboot", "4k"), ("relative", "4k"), ("/mnt/x", "4k;")])
def test_fsmeta_command_refuses_odd_input(d, size):
    with pytest.raises(ProbeError):
        fsmeta_command(d, 10, size, 60)


@pytest.mark.parametrize("scenario, option, variants", [
    ("fs", "CONFIG_VIRTIO_FS", ["virtiofs"]),
    ("fs", "CONFIG_9P_FS", ["9p-mapped", "9p-passthrough"]),
    ("fs", "CONFIG_NET_9P_VIRTIO", ["9p-mapped", "9p-passthrough"]),
    ("console", "CONFIG_VIRTIO_CONSOLE", ["virtio-serial"]),
    ("disk-nvme", "CONFIG_BLK_DEV_NVME", ["nvme"]),
])
def test_new_devices_name_the_kernel_options_they_need(scenario, option, variants):
    from vbench.guest import kconfig
    from vbench.scenario.schema import load_scenario

    root = Path(__file__).resolve().parents[2]
    cfg = kconfig.parse_config((DATA / "crafted-kconfig-config.txt").read_text())
    cfg.update({o: "m" for o in ("CONFIG_VIRTIO_FS", "CONFIG_9P_FS", "CONFIG_NET_9P_VIRTIO",
                                 "CONFIG_VIRTIO_CONSOLE", "CONFIG_BLK_DEV_NVME", "CONFIG_SERIAL_8250",
                                 "CONFIG_VIRTIO_BLK", "CONFIG_SATA_AHCI")})
    scn = load_scenario(root / "scenarios" / f"{scenario}.yaml")
    assert kconfig.missing_for_scenario(scn, cfg) == {}
    del cfg[option]
    missing = kconfig.missing_for_scenario(scn, cfg)
    assert sorted(missing) == sorted(variants) and all(option in o for o in missing.values())


def test_fsmeta_parses_a_real_three_phase_capture_from_virtiofs():
    got = {s.metric: s.value for s in parse_fsmeta(
        (DATA / "fsmeta-500-virtiofs-tcg.txt").read_text(), "meta-500")}
    assert got["create_rate"] == pytest.approx(247.9, abs=0.1)
    assert got["stat_rate"] == pytest.approx(1026.7, abs=0.1)
    assert got["delete_rate"] == pytest.approx(455.8, abs=0.1)
    # stat is a lookup: far cheaper per file than create or delete
    assert got["stat_lat_p50"] < got["delete_lat_p50"] < got["create_lat_p50"]
