"""A user's own guest image: the path rules, the format and backing-file checks, the cloud-init
seed, the domain XML of an image that boots itself, and the tool check that refuses a run."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from vbench.guest import cloudinit, userimage
from vbench.run import runner
from vbench.devices import DomainFiles
from vbench.core.errors import ImageError, ScenarioError
from vbench.core.metrics import CommandResult
from vbench.scenario.schema import GuestSpec, load_scenario_text, parse_profile
from vbench.guest.xml import OwnBoot, domain_xml

from tests.unit.test_session import FakeGuests, make_session, scenario


@pytest.fixture()
def dirs(tmp_path, monkeypatch):
    d = tmp_path / "images"
    d.mkdir()
    monkeypatch.setenv(userimage.IMAGE_DIRS_ENV, str(d))
    monkeypatch.setenv("VBENCH_HOME", str(tmp_path / "home"))  # vbench's private image copies
    return d


def qcow2(path, backing=None, size="16M"):
    argv = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing:
        argv += ["-F", "raw", "-b", str(backing)]
    subprocess.run(argv + [str(path), size], check=True)
    return path


# ---- the path is data ---------------------------------------------------------------------------

def test_a_file_in_the_allowed_directory_resolves_absolute_or_by_name(dirs):
    (dirs / "mine.qcow2").write_bytes(b"x")
    assert userimage.resolve(str(dirs / "mine.qcow2")) == dirs / "mine.qcow2"
    assert userimage.resolve("mine.qcow2") == dirs / "mine.qcow2"


def test_default_directory_is_user_images_under_vbench_home(tmp_path, monkeypatch):
    monkeypatch.delenv(userimage.IMAGE_DIRS_ENV, raising=False)
    monkeypatch.setenv("VBENCH_HOME", str(tmp_path))
    assert userimage.allowed_dirs() == [tmp_path / "user-images"]


@pytest.mark.parametrize("text,why", [
    ("/etc/shadow", "outside the allowed image directories"),
    ("../escape.qcow2", "'..' is not allowed"),
    ("sub/../../escape.qcow2", "'..' is not allowed"),
    ("", "not a file path"),
    ("a\nb", "not a file path"),
    ("missing.qcow2", "No such file"),
])
def test_paths_outside_or_malformed_are_refused(dirs, text, why):
    (dirs.parent / "escape.qcow2").write_bytes(b"x")
    with pytest.raises(ImageError, match=why):
        userimage.resolve(text)


def test_symlinks_anywhere_in_the_path_are_refused(dirs, tmp_path):
    target = tmp_path / "elsewhere.qcow2"
    target.write_bytes(b"x")
    (dirs / "link.qcow2").symlink_to(target)
    inside = dirs / "real.qcow2"
    inside.write_bytes(b"x")
    (dirs / "alias.qcow2").symlink_to(inside)  # even a link to a file that is allowed
    (dirs / "subdir-link").symlink_to(dirs)
    for name in ("link.qcow2", "alias.qcow2", "subdir-link/real.qcow2"):
        with pytest.raises(ImageError, match="symbolic link"):
            userimage.resolve(name)


def test_the_directory_itself_and_non_regular_files_are_refused(dirs):
    with pytest.raises(ImageError, match="outside"):
        userimage.resolve(str(dirs))
    os.mkfifo(dirs / "fifo")
    with pytest.raises(ImageError, match="not a regular file"):
        userimage.resolve("fifo")


def test_relative_image_dirs_are_refused(monkeypatch):
    monkeypatch.setenv(userimage.IMAGE_DIRS_ENV, "relative/dir")
    with pytest.raises(ImageError, match="not an absolute directory"):
        userimage.allowed_dirs()


# ---- format and backing files -------------------------------------------------------------------

def test_format_comes_from_the_header_and_qemu_img_is_told_it(dirs):
    q = qcow2(dirs / "a.qcow2")
    raw = dirs / "b.img"
    raw.write_bytes(b"\0" * 65536)
    assert userimage.read_format(q) == "qcow2" and userimage.read_format(raw) == "raw"
    img = userimage.open_image("a.qcow2")
    assert (img.format, img.virtual_size, img.own_boot, img.kernel) == ("qcow2", 16 << 20, True, None)
    assert img.manifest["key"] == "sha256:" + userimage.sha256_file(q)
    assert userimage.open_image("b.img").format == "raw"


def test_a_raw_image_that_looks_like_qcow2_inside_is_still_raw(dirs):
    # A raw disk whose guest wrote a qcow2 header with a backing file at sector 1: vbench reads
    # only offset 0, so QEMU is told raw and never follows that backing file.
    q = qcow2(dirs.parent / "inner.qcow2", backing="/etc/shadow")
    raw = dirs / "disk.img"
    raw.write_bytes(b"\0" * 512 + q.read_bytes())
    assert userimage.open_image("disk.img").format == "raw"


def test_backing_files_and_data_files_are_refused(dirs):
    base = dirs.parent / "base.raw"
    base.write_bytes(b"\0" * 65536)
    qcow2(dirs / "child.qcow2", backing=base)
    with pytest.raises(ImageError, match="has a backing file"):
        userimage.open_image("child.qcow2")
    with pytest.raises(ImageError, match="external data file"):
        userimage.check_info({"virtual-size": 1, "format-specific": {"data": {"data-file": "/x"}}},
                             dirs / "x")


def test_an_image_qemu_cannot_read_is_refused_not_chowned(dirs):
    q = qcow2(dirs / "private.qcow2")
    os.chmod(q, 0o600)  # root's alone
    st = q.stat()
    with pytest.raises(ImageError, match="not readable by QEMU's user"):
        userimage.open_image("private.qcow2")
    assert (q.stat().st_uid, q.stat().st_mode) == (st.st_uid, st.st_mode)
    os.chmod(q, 0o644)
    assert userimage.open_image("private.qcow2").format == "qcow2"


def test_uefi_without_ovmf_is_refused_in_one_line(dirs, monkeypatch):
    qcow2(dirs / "a.qcow2")
    monkeypatch.setattr(userimage, "OVMF_PAIRS", (("/nonexistent/CODE.fd", "/nonexistent/VARS.fd"),))
    with pytest.raises(ImageError, match="no OVMF firmware is installed") as exc:
        userimage.open_image("a.qcow2", "uefi")
    assert "\n" not in str(exc.value)


# ---- scenario fields ---------------------------------------------------------------------------

def test_guest_spec_takes_image_file_and_firmware():
    spec = GuestSpec(image_file="mine.qcow2", firmware="uefi")
    assert spec.image_file == "mine.qcow2"
    with pytest.raises(ValueError, match="not both"):
        GuestSpec(image="debian12", image_file="mine.qcow2")
    with pytest.raises(ValueError, match="uefi needs image_file"):
        GuestSpec(firmware="uefi")
    with pytest.raises(ValueError):
        GuestSpec(image_file="a\0b")


def test_scenario_with_image_file_loads():
    scn = load_scenario_text("name: x\ndevice: disk\nguest: {image_file: mine.qcow2}\n"
                             "variants: [{name: v, disk: {bus: virtio}}]\n"
                             "workloads: [{name: w, fio: {rw: read}}]\n")
    assert scn.guest.image_file == "mine.qcow2" and scn.guest.firmware == "bios"
    with pytest.raises(ScenarioError, match="firmware"):
        load_scenario_text("name: x\ndevice: disk\nguest: {image_file: m, firmware: coreboot}\n"
                           "variants: [{name: v, disk: {bus: virtio}}]\n"
                           "workloads: [{name: w, fio: {rw: read}}]\n")


# ---- the seed ----------------------------------------------------------------------------------

def test_seed_files_carry_client_key_pinned_host_key_and_dhcp_by_mac():
    priv, pub = cloudinit.new_host_key()
    files = cloudinit.seed_files("vbench-x-1", "ssh-ed25519 AAAAclient vbench", priv, pub,
                                 {"mgmt": "52:54:00:AA:BB:CC", "test": "52:54:00:11:22:33"})
    assert yaml.safe_load(files["meta-data"]) == {"instance-id": "vbench-x-1",
                                                  "local-hostname": "vbench-guest"}
    assert files["user-data"].startswith("#cloud-config\n")
    user = yaml.safe_load(files["user-data"])
    assert user["ssh_authorized_keys"] == ["ssh-ed25519 AAAAclient vbench"]
    assert user["ssh_keys"] == {"ed25519_private": priv.strip() + "\n", "ed25519_public": pub}
    assert user["ssh_genkeytypes"] == [] and user["ssh_deletekeys"] is True
    assert user["users"] == [] and user["disable_root"] is False and user["ssh_pwauth"] is False
    net = yaml.safe_load(files["network-config"])
    assert net["version"] == 1
    assert [(c["name"], c["mac_address"], c["subnets"]) for c in net["config"]] == [
        ("vbm0", "52:54:00:aa:bb:cc", [{"type": "dhcp"}]),
        ("vbt0", "52:54:00:11:22:33", [{"type": "dhcp"}])]


def test_host_keys_are_fresh_each_time():
    assert cloudinit.new_host_key()[1] != cloudinit.new_host_key()[1]


@pytest.mark.skipif(cloudinit.iso_tool() is None, reason="no ISO writer installed")
def test_write_seed_makes_a_cidata_iso_readable_by_root_and_qemu_only(tmp_path, monkeypatch):
    chowned = []
    monkeypatch.setattr("vbench.host.images.restrict_base", lambda p: (chowned.append(p), os.chmod(p, 0o640)))
    iso = tmp_path / "seed.iso"
    cloudinit.write_seed(iso, {"meta-data": "instance-id: i-1\n", "user-data": "#cloud-config\n",
                               "network-config": "version: 1\nconfig: []\n"})
    data = iso.read_bytes()
    assert data[32769:32774] == b"CD001"                      # ISO 9660 primary volume descriptor
    assert data[32808:32840].rstrip() == b"cidata"             # its volume identifier
    assert b"instance-id: i-1" in data and chowned == [iso]
    assert iso.stat().st_mode & 0o777 == 0o640


# ---- domain XML of an image that boots itself ---------------------------------------------------

def _xml(machine="pc", own=None, profile="disk=sata,rng=none,balloon=none"):
    files = DomainFiles(overlay="/g/overlay.qcow2", scratch="/g/scratch.raw", console="/g/c.log",
                        kernel=None, initrd=None)
    return domain_xml("vbench-t-1", parse_profile(profile), GuestSpec(machine=machine), "qemu", files,
                      "root=LABEL=x", "vbench-mgmt", "vbench-test", {"run": "r"}, own_boot=own)


def test_own_boot_has_no_direct_kernel_boot_and_a_seed_cdrom_on_the_builtin_controller():
    xml = _xml(own=OwnBoot(seed="/g/seed.iso"))
    assert "<kernel>" not in xml and "<cmdline>" not in xml and "<initrd>" not in xml
    assert "<boot dev='hd'/>" in xml and "<loader" not in xml
    assert "<backingStore" not in xml  # no base given: nothing to state
    assert ("<disk type='file' device='cdrom'>\n      <driver name='qemu' type='raw'/>\n"
            "      <source file=\"/g/seed.iso\"/>\n      <target dev='hdc' bus='ide'/>\n"
            "      <readonly/>") in xml
    # the boot disk stays first (the BIOS boots it), the seed before the disk under test
    assert xml.index("dev='vda'") < xml.index("seed.iso") < xml.index("scratch.raw")
    q35 = _xml("q35", OwnBoot(seed="/g/seed.iso"))
    assert "<target dev='sdc' bus='sata'/>" in q35 and "bus='ide'" not in q35
    assert "<kernel>None</kernel>" in _xml() and "seed.iso" not in _xml()  # direct boot as before


def test_own_boot_states_the_backing_image_and_tells_libvirt_not_to_relabel_it():
    xml = _xml(own=OwnBoot(seed="/g/seed.iso", base="/u/mine.img", base_format="raw"))
    assert ("      <source file=\"/g/overlay.qcow2\"/>\n      <backingStore type='file'>\n"
            "        <format type='raw'/>\n        <source file=\"/u/mine.img\">\n"
            "          <seclabel model='dac' relabel='no'/>\n        </source>\n"
            "        <backingStore/>\n      </backingStore>\n"
            "      <target dev='vda' bus='virtio'/>") in xml


@pytest.mark.skipif(not __import__("shutil").which("virt-xml-validate"), reason="no libvirt schema")
def test_own_boot_xml_is_valid_for_libvirt(tmp_path):
    for xml in (_xml(own=OwnBoot("/g/seed.iso", base="/u/m.img", base_format="raw")),
                _xml("q35", OwnBoot("/g/seed.iso", "/usr/share/OVMF/OVMF_CODE_4M.fd",
                                    "/usr/share/OVMF/OVMF_VARS_4M.fd", "/g/nvram.fd", "/u/m.img"))):
        (tmp_path / "d.xml").write_text(xml)
        cp = subprocess.run(["virt-xml-validate", str(tmp_path / "d.xml"), "domain"],
                            capture_output=True, text=True)
        assert cp.returncode == 0, cp.stderr


def test_own_boot_uefi_has_loader_and_nvram_from_the_template():
    xml = _xml(own=OwnBoot("/g/seed.iso", "/usr/share/OVMF/OVMF_CODE_4M.fd",
                           "/usr/share/OVMF/OVMF_VARS_4M.fd", "/g/nvram.fd"))
    assert ("<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>\n"
            "    <nvram template=\"/usr/share/OVMF/OVMF_VARS_4M.fd\">/g/nvram.fd</nvram>\n"
            "    <boot dev='hd'/>") in xml


# ---- tools in the guest ------------------------------------------------------------------------

NET = """name: n
device: nic
variants: [{name: v, nic: {model: virtio}}]
workloads:
  - {name: tcp, iperf3: {protocol: tcp, duration: 2}}
  - {name: rtt, ping: {count: 5}}
  - {name: io, fio: {rw: read}}
"""


class ToolSsh:
    def __init__(self, present):
        self.present, self.cmds = present, []

    def run(self, cmd, timeout=None, check=False):
        self.cmds.append(cmd)
        out = "".join(f"missing={line.split()[2]}\n" for line in cmd.splitlines()
                      if line.startswith("command -v ") and line.split()[2] not in self.present)
        return CommandResult(cmd, 0, out, "", 0.1)


class ToolGuest:
    def __init__(self, present, own=False):
        self.ssh = ToolSsh(present)
        self.image = type("Img", (), {"name": "mine.qcow2", "own_boot": own})()


def test_required_tools_name_the_workloads_that_need_them():
    assert userimage.required_tools(load_scenario_text(NET)) == {
        "iperf3": ["tcp"], "ping": ["rtt"], "fio": ["io"]}


def test_missing_tools_refuse_in_one_line_that_stops_the_run():
    g = ToolGuest({"fio"})
    with pytest.raises(ImageError) as exc:
        runner.check_guest(g, load_scenario_text(NET))
    msg = str(exc.value)
    assert msg == ("guest image mine.qcow2 lacks what this scenario runs in the guest: iperf3 (for "
                   "tcp), ping (for rtt); install it in the image")
    assert exc.value.stops_run is True
    runner.check_guest(ToolGuest({"fio", "iperf3", "ping"}), load_scenario_text(NET))  # passes


def test_own_image_kernel_without_needed_options_is_refused():
    g = ToolGuest({"fio", "iperf3", "ping"}, own=True)
    real_run = g.ssh.run

    def run(cmd, timeout=None, check=False):
        res = real_run(cmd, timeout, check)
        assert "uname -r" in cmd  # the running kernel's config is read in the same command
        return CommandResult(cmd, 0, res.stdout + "kernel=6.1.0-own\nCONFIG_VIRTIO=y\n", "", 0.1)

    g.ssh.run = run
    with pytest.raises(ImageError, match=r"kernel of mine.qcow2 \(6.1.0-own\) lacks options.*"
                                         r"CONFIG_VIRTIO_NET") as exc:
        runner.check_guest(g, load_scenario_text(NET))
    assert exc.value.stops_run is True


class RefusingGuests(FakeGuests):
    def boot(self, stack, v, index, rep, attempt=0, cancel=None):
        self.boots.append((v.name, rep))
        raise userimage.refuse_missing("mine.qcow2", ["fio"], {"fio": ["w1"]})


def test_a_refusal_at_boot_stops_the_run_instead_of_skipping_the_variant(tmp_path):


    guests = RefusingGuests()
    s = make_session(tmp_path, scenario(reps=1), guests)
    with pytest.raises(ImageError, match="lacks what this scenario runs"):
        s.run()
    assert guests.boots == [("A", None)]  # no second variant was booted


def test_guest_check_reads_an_own_image_only_by_booting_it(capsys):
    from vbench.commands import main

    rc = main(["guest", "check", "--image-file", "mine.qcow2"])
    err = capsys.readouterr().err
    assert rc != 0 and err.strip() == ("vbench: error: vbench reads your own image only by booting "
                                       "it: add --boot")


def test_an_ab_side_kernel_is_refused_for_an_image_that_boots_its_own(tmp_path):
    from pathlib import Path

    from vbench.guest.domain import Guest

    img = userimage.UserImage(Path("/u/mine.qcow2"), "qcow2", "0" * 64, 1 << 30)
    from types import SimpleNamespace

    accel = SimpleNamespace(domain_type="qemu", cpu_mode="default")
    g = Guest("vbench-t-1", None, img, parse_profile("virtio"), GuestSpec(), accel, None, "",
              kernel=Path("/k/vmlinuz"))
    with pytest.raises(ImageError, match="boots\n?.*its own kernel"):
        g.build_xml()
