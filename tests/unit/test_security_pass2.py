"""Issue 21 (untrusted input, second pass): one test per finding, each failing before its fix."""

from __future__ import annotations

import os

import pytest

from vbench.core.errors import BadUri, ScenarioError
from vbench.scenario.schema import load_scenario_text

FS_SCENARIO = """name: s
device: fs
variants:
  - {name: a, fs: {model: virtiofs%s}}
workloads:
  - {name: w, fio: {rw: randread}}
"""


def one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and len(msg) < 400, msg[:500]
    return msg


# ---- finding 1: no scenario field names a program ---------------------------------------------

@pytest.mark.parametrize("path", ["/tmp/evil", "/usr/lib/qemu/../../../tmp/evil",
                                  "/usr/lib/qemu/virtiofsd"])
def test_fs_virtiofsd_field_is_refused(path):
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(FS_SCENARIO % f", virtiofsd: {path}")
    assert "virtiofsd" in one_line(exc)


def test_virtiofsd_is_found_at_fixed_locations_only(tmp_path, monkeypatch):
    from vbench.devices import fs

    assert set(fs.VIRTIOFSD_PATHS) == {"/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"}
    scn = load_scenario_text(FS_SCENARIO % "")
    spec = scn.profile(scn.variants[0]).fs
    path, _why = fs.DEVICE.host_requirements(spec)[0]
    assert path in fs.VIRTIOFSD_PATHS
    # a candidate that is not a root-owned, not group/other-writable regular file is skipped
    bad = tmp_path / "virtiofsd"
    bad.write_text("#!/bin/sh\n")
    os.chmod(bad, 0o777)
    monkeypatch.setattr(fs, "VIRTIOFSD_PATHS", (str(bad), str(tmp_path / "absent")))
    assert fs.find_virtiofsd() is None
    path, _why = fs.DEVICE.host_requirements(spec)[0]
    assert not os.path.exists(path)  # reported missing: the scenario is refused on this host


# ---- finding 3: one URI allow-list, from every entry point -------------------------------------

HOSTILE_URIS = [
    "qemu+libssh2://root@h/system?known_hosts_verify=ignore&keyfile=/root/.ssh/id_rsa",
    "qemu+libssh://root@h/system?known_hosts=/etc/ld.so.preload&known_hosts_verify=auto",
    "qemu+tcp://h/system?no_verify=1&auth=none",
    "qemu+tls://h/system?pkipath=/tmp/pki",
    "qemu+ext:///system?command=/tmp/evil",
    "qemu+unix:///system?socket=/tmp/../etc/other-sock",
    "qemu+unix:///system?socket=/run/x-sock&no_verify=1",
    "qemu+unix:///session?socket=/run/x-sock",
    "qemu+unix:///system?socket=run/x-sock",
    "qemu+ssh://root:hunter2@h/system",
    "qemu+ssh://root@h/system?command=/tmp/evil",
    "qemu+ssh://root@h/system?no_verify=1",
    "qemu+ssh://root@h:0/system",
    "qemu+ssh://root@h:/system",
    "qemu+ssh://root@h:65536/system",
    "qemu+ssh://root@h/session",
    "qemu+ssh://root@h/system#x",
    "qemu:///system?socket=/tmp/x",
    "qemu:///embed?root=/tmp/x",
    "qemu+ssh://root@[::1/system",
    "qemu+ssh://root@[not:v6:zz]/system",
    "test:///default",
    "qemu+ssh://" + "a" * 300 + "/system",
]
GOOD_URIS = ["qemu:///system", "qemu:///session", "qemu+ssh://h/system",
             "qemu+ssh://bench@hv1.example:2222/system", "qemu+ssh://root@[fd00::7]:2200/system",
             "qemu+ssh://root@10.0.0.7:65535/system"]


@pytest.mark.parametrize("uri", HOSTILE_URIS)
def test_hostile_uris_are_refused_by_the_one_validator(uri):
    from vbench.core.errors import BadUri
    from vbench.host.uris import check_uri

    with pytest.raises(BadUri) as exc:
        check_uri(uri)
    msg = one_line(exc)
    assert "hunter2" not in msg
    assert BadUri.exit_status == 3


@pytest.mark.parametrize("uri", GOOD_URIS)
def test_allowed_uris_pass(uri):
    from vbench.host.remoteuri import parse_uri
    from vbench.host.uris import check_uri

    assert check_uri(uri) == uri
    if uri.startswith("qemu+ssh"):
        t = parse_uri(uri)
        assert t.public_uri.replace("root@", "") == uri.replace("root@", "")


@pytest.mark.parametrize("uri", HOSTILE_URIS)
def test_hostile_uris_are_refused_in_a_hosts_file(uri, tmp_path):
    from vbench.core.errors import UserError
    from vbench.fleet import hosts

    p = tmp_path / "hosts.yaml"
    p.write_text(f"- {{name: a, connect: '{uri}'}}\n")
    with pytest.raises(UserError) as exc:
        hosts.load_hosts(p)
    assert "hunter2" not in one_line(exc)


@pytest.mark.parametrize("uri", HOSTILE_URIS)
def test_hostile_uris_are_refused_by_ab(uri):
    from vbench.run import ab
    from vbench.core.errors import UserError

    with pytest.raises(UserError) as exc:
        ab.parse_side(f"uri={uri}", "b")
    assert "hunter2" not in one_line(exc)


@pytest.mark.parametrize("uri", HOSTILE_URIS[:6])
def test_hostile_uris_never_reach_libvirt(uri, monkeypatch, tmp_path):
    """--connect of run/lab/gc/guests, the lab's own state, and the fleet's identity probe."""
    import sys
    import types

    from vbench.host import gc, lab
    from vbench.guest import domain as virt
    from vbench.core.errors import BadUri
    from vbench.fleet import identity

    opened = []
    fake = types.SimpleNamespace(open=opened.append, openReadOnly=opened.append,
                                 libvirtError=Exception, registerErrorHandler=lambda *a: None)
    monkeypatch.setitem(sys.modules, "libvirt", fake)
    monkeypatch.setenv("VBENCH_HOME", str(tmp_path))
    for call in (lambda: lab.up(connect=uri, progress=lambda *_: None),
                 lambda: lab.current(uri), lambda: lab.status(uri), lambda: gc.collect(uri),
                 lambda: virt.open_connection(uri), lambda: identity.ask_libvirt(uri)):
        with pytest.raises(BadUri):
            call()
    assert opened == []


def test_the_pinned_form_opens_only_with_vbenchs_own_wrapper(monkeypatch, tmp_path):
    from vbench.core import paths
    from vbench.host import uris as remotespec
    from vbench.core.errors import BadUri

    monkeypatch.setattr(paths, "home", lambda: tmp_path)
    t = remotespec.parse_uri("qemu+ssh://root@hv1:2222/system")
    good = remotespec.libvirt_uri(t, remotespec.wrapper_path(t, paths.lab_dir()))
    assert remotespec.check_opened_uri(good) == good
    with pytest.raises(BadUri):
        remotespec.check_opened_uri(remotespec.libvirt_uri(t, tmp_path / "evil.sh"))


# ---- finding 2: no untrusted file chooses where vbench writes; trusted dirs are checked ----------

@pytest.mark.parametrize("home", ["/tmp/attacker", "/home/user/vb", "/var/lib/vbench/homes/../x",
                                  "/var/lib/vbench/homes/a/b", "/var/lib/vbench", "/var/lib/vbench/homes/"])
def test_hosts_file_cannot_choose_vbench_home(home, tmp_path):
    from vbench.core.errors import UserError
    from vbench.fleet import hosts

    p = tmp_path / "hosts.yaml"
    p.write_text(f"- {{name: a, env: {{VBENCH_HOME: '{home}'}}}}\n")
    with pytest.raises(UserError) as exc:
        hosts.load_hosts(p)
    assert "VBENCH_HOME" in one_line(exc)


def test_hosts_file_home_only_under_the_fixed_root(tmp_path):
    from vbench.fleet import hosts

    p = tmp_path / "hosts.yaml"
    p.write_text("- {name: a, env: {VBENCH_HOME: /var/lib/vbench/homes/users-lv}}\n")
    assert hosts.load_hosts(p)[0].env == {"VBENCH_HOME": "/var/lib/vbench/homes/users-lv"}


def test_ssh_wrapper_never_follows_a_planted_link(tmp_path, monkeypatch):
    from vbench.core import paths
    from vbench.host import remoteuri as remotespec

    monkeypatch.setenv("VBENCH_HOME", str(tmp_path / "home"))
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    where = paths.lab_dir() / "ssh" / "h-22.sh"
    where.parent.mkdir(parents=True)
    where.symlink_to(victim)
    (where.parent / "h-22.sh.tmp").symlink_to(victim)  # the old predictable temporary name
    remotespec.ssh_wrapper(tmp_path / "kh", tmp_path / "key", where)
    assert victim.read_text() == "precious\n"
    assert not where.is_symlink() and where.read_text().startswith("#!/bin/sh")
    assert os.stat(victim).st_mode & 0o777 != 0o700


@pytest.mark.parametrize("mode, uid", [(0o777, 0), (0o775, 0), (0o757, 0), (0o755, 4242)])
def test_a_home_others_can_write_or_own_is_refused_before_use(tmp_path, monkeypatch, mode, uid):
    from vbench.host import lab
    from vbench.core import paths
    from vbench.core.errors import LabError

    home = tmp_path / "home"
    (home / "lab").mkdir(parents=True)
    (home / "lab" / "state.json").write_text('{"schema_version": 1, "uri": "qemu+tcp://evil/system"}')
    monkeypatch.setenv("VBENCH_HOME", str(home))
    os.chmod(home, mode)
    os.chown(home, uid, -1)
    for call in (paths.home, paths.lab_dir, paths.images_dir, paths.guests_dir, lab.LabState.load):
        with pytest.raises(LabError) as exc:
            call()
        assert str(home) in one_line(exc)


def test_a_lab_dir_that_is_a_link_is_refused(tmp_path, monkeypatch):
    from vbench.core import paths
    from vbench.core.errors import LabError

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "lab").symlink_to(elsewhere)
    monkeypatch.setenv("VBENCH_HOME", str(tmp_path / "home"))
    with pytest.raises(LabError, match="symbolic link"):
        paths.lab_dir()
    assert paths.home() == tmp_path / "home"


def test_scratch_and_pmem_files_are_created_not_followed(tmp_path):
    from vbench.devices.disk import make_scratch
    from vbench.core.errors import GuestError

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "scratch.raw"
    link.symlink_to(victim)
    with pytest.raises(GuestError):
        make_scratch(link, 0.001, "sparse")
    assert victim.read_text() == "precious\n"


# ---- finding 8: hostile run directories and store rows: one line, bounded --------------------

RUN = sorted((os.path.dirname(__file__) + "/../data/runs/" + d)
             for d in os.listdir(os.path.dirname(__file__) + "/../data/runs"))[0]


class FakeStore:
    """The two queries of dbstore._export_one, answered from a record text and sample rows."""

    def __init__(self, run_id: str, record_text: str, n_samples: int, rows=()):
        self.run_id, self.text, self.n, self.rows, self.fetched = run_id, record_text, n_samples, rows, 0

    def execute(self, sql, params=()):
        import types

        if "record" in sql:
            return types.SimpleNamespace(fetchone=lambda: (self.run_id, "h", self.text))
        if "count(*)" in sql:
            return types.SimpleNamespace(fetchone=lambda: (self.n,))
        return iter(self._rows())

    def _rows(self):
        for r in self.rows:
            self.fetched += 1
            yield r


def _record_text() -> str:
    with open(os.path.join(RUN, "run.json")) as fh:
        return fh.read()


@pytest.mark.parametrize("case", ["surrogate", "deep"])
def test_hostile_run_json_is_one_line_for_the_report(case, tmp_path, capsys):
    import json
    import shutil

    from vbench.commands import main

    run = tmp_path / "run"
    shutil.copytree(RUN, run)
    meta = json.loads((run / "run.json").read_text())
    if case == "surrogate":
        meta["environment"]["host"] = "ab\ud800cd"
        text = json.dumps(meta)
    else:
        text = json.dumps(meta)[:-1] + ', "x": ' + "[" * 3000 + "]" * 3000 + "}"
    (run / "run.json").write_text(text)
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) in (2, 10)  # not 70
    err = capsys.readouterr().err.strip()
    assert "internal error" not in err and len(err.splitlines()) == 1 and len(err) < 400, err


@pytest.mark.parametrize("case", ["surrogate", "deep", "deep-2000"])
def test_hostile_store_records_are_one_line(case, tmp_path):
    import json

    from vbench.results import postgres as dbstore
    from vbench.core.errors import StoreError

    text = _record_text()
    if case == "surrogate":
        text = text.replace('"status"', '"st\\ud800atus"', 1)
    else:
        depth = 3000 if case == "deep" else 2000
        text = json.dumps(json.loads(text))[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    with pytest.raises(StoreError) as exc:
        dbstore._export_one(FakeStore("r1", text, 10), 1, tmp_path)
    one_line(exc)


def test_a_5000_character_run_id_from_the_store_exports(tmp_path):
    from vbench.results import postgres as dbstore

    path = dbstore._export_one(FakeStore("r" * 5000, _record_text(), 0), 7, tmp_path)
    assert path.name == "run-7" and (path / "run.json").is_file()


def test_a_3_million_sample_row_is_refused_before_it_is_fetched(tmp_path):
    from vbench.results import postgres as dbstore
    from vbench.core.errors import StoreError

    fake = FakeStore("r1", _record_text(), 3_000_000, rows=iter([("x",) * 20] * 10))
    with pytest.raises(StoreError) as exc:
        dbstore._export_one(fake, 1, tmp_path)
    assert "3000000 samples" in one_line(exc) and fake.fetched == 0


def test_sample_bytes_are_capped_while_exported(tmp_path, monkeypatch):
    from vbench.results import postgres as dbstore
    from vbench.core.errors import StoreError
    from vbench.core.metrics import SAMPLE_COLUMNS

    monkeypatch.setattr(dbstore, "MAX_EXPORT_BYTES", 10_000)
    row = tuple("y" * 500 if c != "value" else 1.0 for c in SAMPLE_COLUMNS)
    fake = FakeStore("r1", _record_text(), 100, rows=[row] * 100)
    with pytest.raises(StoreError, match="exceed"):
        dbstore._export_one(fake, 1, tmp_path)
    assert fake.fetched < 100


# ---- finding 9: inert or misleading fields ---------------------------------------------------

def test_scenario_connect_field_is_refused():
    text = FS_SCENARIO.replace("device: fs\n", "device: fs\nconnect: qemu+tcp://evil/system\n") % ""
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(text)
    assert "connect" in one_line(exc)


@pytest.mark.parametrize("subnet", ["127.0.0.0/24", "169.254.0.0/16", "100.64.0.0/24",
                                    "192.0.2.0/24", "198.18.0.0/24", "240.0.0.0/24", "0.0.0.0/24",
                                    "8.8.8.0/24", "10.0.0.0/8", "10.0.0.0/28"])
def test_special_or_public_subnets_are_refused(subnet, tmp_path):
    from vbench.core.errors import UserError
    from vbench.fleet import hosts
    from vbench.host.networks import check_subnet

    with pytest.raises(ValueError):
        check_subnet(subnet)
    for var in ("VBENCH_MGMT_SUBNET", "VBENCH_TEST_SUBNET"):
        p = tmp_path / "hosts.yaml"
        p.write_text(f"- {{name: a, env: {{{var}: '{subnet}'}}}}\n")
        with pytest.raises(UserError) as exc:
            hosts.load_hosts(p)
        assert var in one_line(exc)


@pytest.mark.parametrize("subnet", ["10.199.0.0/24", "172.30.8.0/22", "192.168.77.0/26"])
def test_rfc1918_subnets_pass(subnet):
    from vbench.host.networks import check_subnet

    assert check_subnet(subnet) == subnet


@pytest.mark.parametrize("text", ["- name: a\n- name: A\n",
                                  "- {name: a, connect: 'qemu+ssh://KVM-B/system'}\n"
                                  "- {name: b, connect: 'qemu+ssh://kvm-b/system'}\n"])
def test_hosts_differing_in_case_only_are_refused(text, tmp_path):
    from vbench.core.errors import UserError
    from vbench.fleet import hosts

    p = tmp_path / "hosts.yaml"
    p.write_text(text)
    with pytest.raises(UserError) as exc:
        hosts.load_hosts(p)
    one_line(exc)


@pytest.mark.parametrize("uri", ["qemu+ssh://h:0/system", "qemu+ssh://h:00/system"])
def test_port_zero_is_refused_not_22(uri):
    from vbench.core.errors import BadUri
    from vbench.host.remoteuri import parse_uri

    with pytest.raises(BadUri, match="port"):
        parse_uri(uri)


# ---- finding 4: the budget covers host disk and memory, and the scratch cannot grow ------------

def _budget_refusal(text: str, host=None) -> str:
    from vbench.scenario import budget

    host = host or budget.HostFigures(free_disk_gib=500, mem_available_mib=64_000, cpus=16)
    with pytest.raises(ScenarioError) as exc:
        budget.check(load_scenario_text(text), 3, host=host)
    return one_line(exc)


BASELINE = """name: s
device: disk
host_baseline: true
variants:
  - {name: a, disk: {bus: virtio, size_gib: 2}}
workloads:
  - {name: w, fio: {rw: randwrite, %s}}
"""


def test_host_baseline_fio_size_beyond_its_scratch_is_refused():
    msg = _budget_refusal(BASELINE % "options: {size: 16t}")
    assert "workloads[0].fio.options.size" in msg
    msg = _budget_refusal(BASELINE % "options: {size: 1g, offset: 1536m}")
    assert "workloads[0].fio.options.size" in msg


def test_host_baseline_fio_buffers_count_as_host_memory():
    msg = _budget_refusal(BASELINE % "bs: 64m, iodepth: 1024, numjobs: 64")
    assert "fio" in msg and "MiB" in msg


def test_fs_share_writes_count_as_host_disk():
    text = """name: s
device: fs
variants:
  - {name: a, fs: {model: virtiofs}}
  - {name: b, fs: {model: 9p}}
workloads:
  - {name: w, fio: {rw: write, options: {size: 400g}}}
"""
    assert "GiB" in _budget_refusal(text)


def test_fio_file_and_fsmeta_set_on_one_share_count_together():
    """fio's file stays on the share while an fsmeta set is written beside it: both count."""
    from vbench.scenario import budget

    text = """name: s
device: fs
variants:
  - {name: a, fs: {model: virtiofs}}
workloads:
  - {name: w, fio: {rw: write, options: {size: 40g}}}
  - {name: small, fio: {rw: write, options: {size: 1g}}}
  - {name: m, fsmeta: {files: 20000, filesize: 1024k}}
"""
    scn = load_scenario_text(text)
    fsmeta = 20000 * (1024 + 1) * 1024 / 2**30
    assert budget.share_gib(scn) == pytest.approx(40 + fsmeta)  # one fio file: the larger one


def test_pmem_backing_files_count_at_their_size():
    from vbench.scenario import budget

    vs = "".join(f"  - {{name: v{i}, pmem: {{size_mib: 16384}}}}\n" for i in range(16))
    text = ("name: s\ndevice: pmem\nguest: {vcpus: 1, memory_mib: 1024}\nvariants:\n" + vs +
            "workloads:\n  - {name: w, fio: {rw: randread, options: {size: 64m}}}\n")
    assert budget.scratch_gib(load_scenario_text(text)) >= 16 * 16
    _budget_refusal(text, budget.HostFigures(free_disk_gib=100, mem_available_mib=64_000, cpus=16))


def test_the_host_baseline_cannot_grow_its_scratch_file(tmp_path):
    """Enforced, not only estimated: the sandboxed tool runs under RLIMIT_FSIZE."""
    import shutil
    import subprocess
    import types

    from vbench.host import sandbox

    if shutil.which("bwrap") is None or shutil.which("prlimit") is None:
        pytest.skip("bubblewrap or prlimit missing")
    f = tmp_path / "scratch.raw"
    f.write_bytes(b"\0" * (1 << 20))
    disk = types.SimpleNamespace(size_gib=1 / 1024)
    argv = sandbox.fsize_limited(["dd", "if=/dev/zero", f"of={f}", "bs=1M", "count=8",
                                  "conv=notrunc"], disk)
    subprocess.run(sandbox.confine(argv, f), capture_output=True, timeout=60)
    assert f.stat().st_size == 1 << 20


# ---- finding 7: a published run is replaced only when asked for -------------------------------

class FakePublishConn:
    def __init__(self, found):
        self.found, self.sql = found, []

    def transaction(self):
        import contextlib

        return contextlib.nullcontext()

    def execute(self, sql, params=()):
        import types

        self.sql.append(sql)
        return types.SimpleNamespace(fetchone=lambda: self.found if "FOR UPDATE" in sql else (1,))


def test_other_content_under_a_published_name_is_refused_without_replace():
    from pathlib import Path

    from vbench.results import postgres as dbstore
    from vbench.core.errors import StoreError

    conn = FakePublishConn((41, "0" * 64))  # published under this run id and host, other content
    with pytest.raises(StoreError) as exc:
        dbstore.publish_run(conn, Path(RUN))
    assert "--replace" in one_line(exc)
    assert not any(s.lstrip().startswith(("DELETE", "INSERT")) for s in conn.sql)


# ---- finding 6: an image is used as it was checked; no hard links --------------------------------

@pytest.fixture()
def image_dirs(tmp_path, monkeypatch):
    from vbench.guest import userimage

    d = tmp_path / "images"
    d.mkdir()
    monkeypatch.setenv(userimage.IMAGE_DIRS_ENV, str(d))
    monkeypatch.setenv("VBENCH_HOME", str(tmp_path / "home"))
    return d


def _qcow2(path, *extra):
    import subprocess

    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", *extra, str(path), "16M"],
                   check=True)
    return path


def test_a_hard_link_to_a_file_outside_the_allowed_dirs_is_refused(image_dirs, tmp_path):
    from vbench.guest import userimage
    from vbench.core.errors import ImageError

    outside = _qcow2(tmp_path / "secret.qcow2")
    os.link(outside, image_dirs / "mine.qcow2")
    with pytest.raises(ImageError) as exc:
        userimage.open_image("mine.qcow2")
    assert "hard link" in one_line(exc)


def test_the_image_swapped_after_its_check_is_not_what_the_overlay_reads(image_dirs, tmp_path):
    """The overlay is made over what was checked: swapping the file afterwards (here for a qcow2
    with an external data file outside the allowed directories) changes nothing QEMU reads."""
    import json
    import subprocess

    from vbench.guest import userimage

    good = _qcow2(image_dirs / "mine.qcow2")
    img = userimage.open_image("mine.qcow2")
    checked = img.sha256
    # swap: the same name now holds a qcow2 whose data lives outside the allowed directories
    (tmp_path / "outside.raw").write_bytes(b"\0" * (16 << 20))
    good.unlink()
    _qcow2(good, "-o", f"data_file={tmp_path / 'outside.raw'},data_file_raw=on")
    assert img.base != good  # the overlay is not made from the path that was swapped
    img.verify()  # what vbench will make the overlay over still has the checked hash
    assert userimage.sha256_file(img.base) == checked
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-f", img.base_format,
                                      str(img.base)], capture_output=True, text=True,
                                     check=True).stdout)
    assert not (info.get("format-specific") or {}).get("data", {}).get("data-file")


def test_a_copy_changed_after_the_check_is_refused_when_the_overlay_is_made(image_dirs):
    from vbench.guest import userimage
    from vbench.core.errors import ImageError

    _qcow2(image_dirs / "mine.qcow2")
    img = userimage.open_image("mine.qcow2")
    with open(img.base, "r+b") as fh:
        fh.seek(100_000)
        fh.write(b"x")
    with pytest.raises(ImageError) as exc:
        img.verify()
    assert "sha256" in one_line(exc)


def test_a_local_libvirtd_on_another_socket_is_reached_only_through_a_trusted_socket(tmp_path):
    """qemu+unix:///system?socket=PATH (a second libvirtd of this machine): the one parameter
    allowed; the socket must be root's, in directories nobody else can write, when opened."""
    import os
    import socket as so

    from vbench.host.uris import check_opened_uri

    def listening(path):
        s = so.socket(so.AF_UNIX)
        s.bind(str(path))
        return s

    good_dir = tmp_path / "run"
    good_dir.mkdir(mode=0o700)
    os.chmod(tmp_path, 0o700)
    keep = [listening(good_dir / "libvirt-sock")]
    uri = f"qemu+unix:///system?socket={good_dir / 'libvirt-sock'}"
    assert check_opened_uri(uri) == uri
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # others could plant a socket of theirs here
    keep.append(listening(shared / "libvirt-sock"))
    with pytest.raises(BadUri, match="writable by group or others"):
        check_opened_uri(f"qemu+unix:///system?socket={shared / 'libvirt-sock'}")
    (good_dir / "plain").write_text("")
    with pytest.raises(BadUri, match="not a socket"):
        check_opened_uri(f"qemu+unix:///system?socket={good_dir / 'plain'}")
    os.symlink(good_dir / "libvirt-sock", good_dir / "link-sock")
    with pytest.raises(BadUri, match="not a socket"):
        check_opened_uri(f"qemu+unix:///system?socket={good_dir / 'link-sock'}")
    for s in keep:
        s.close()
