"""The nested lab's pure parts (vbench.run.nested): the hypervisor guest's domain XML (golden file),
the read-only shares, the setup script, the inner command line, the run record's two levels.
Booting it is tests/integration's business."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vbench.run import nested
from vbench.guest import domain as virt, nested as nestedguest
from vbench.host import libvirtd
from vbench.results import record

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
UPDATE = os.environ.get("VBENCH_UPDATE_GOLDEN") == "1"
NAME = "vbench-nested-l1"
GDIR = Path("/var/lib/vbench/guests") / NAME
IMG = Path("/var/lib/vbench/images/hypervisor-0123456789ab")
SHARES = [nestedguest.Share("vb0", "/opt/py", "/opt/py", True),
          nestedguest.Share("vb1", "/var/lib/vbench/images/debian12-0123456789ab",
                       "/var/lib/vbench/images/debian12-0123456789ab", True)]
TAGS = {"owner": "vbench", "dir": str(GDIR), "pid": "4242", "pid_start": "1", "role": "nested-lab"}


def render(domain_type: str) -> str:
    files = virt.DomainFiles(overlay=GDIR / "overlay.qcow2", scratch=None,
                             console=GDIR / "console.log", kernel=IMG / "vmlinuz",
                             initrd=IMG / "initrd.img")
    return nestedguest.l1_xml(NAME, domain_type, files, "root=LABEL=vbench-root rw", "vbench-mgmt",
                         TAGS, SHARES, memory_mib=6144, vcpus=2)


def test_l1_xml_golden_and_facts():
    for dt in ("qemu", "kvm"):
        xml = render(dt)
        golden = GOLDEN / f"nested-l1-{dt}.xml"
        if UPDATE:
            golden.write_text(xml)
        assert xml == golden.read_text()
        root = ET.fromstring(xml)
        assert root.get("type") == dt
        cpu = root.find("cpu")
        if dt == "qemu":  # TCG: an AMD model with SVM required, never host-passthrough
            assert cpu.get("mode") == "custom" and cpu.findtext("model") == "EPYC"
            assert cpu.find("feature").attrib == {"policy": "require", "name": "svm"}
        else:
            assert cpu.get("mode") == "host-passthrough"
        fss = root.findall("devices/filesystem")
        assert [fs.find("target").get("dir") for fs in fss] == ["vb0", "vb1"]
        assert all(fs.find("readonly") is not None for fs in fss)  # never writable
        seclabel = root.find("seclabel")
        assert seclabel.get("relabel") == "no"  # libvirt must not chown the shared directories
        assert root.find("metadata/{%s}guest" % libvirtd.VBENCH_NS) is not None


def test_shares_dedupe_and_image_target(tmp_path, monkeypatch):
    img = tmp_path / "debian12-0123456789ab"
    img.mkdir()
    got = nestedguest.shares(img)
    sources = [s.source for s in got]
    assert len(set(sources)) == len(sources)
    for a in sources[:-1]:  # no share inside another
        assert not any(Path(a) in Path(b).parents for b in sources[:-1] if b != a)
    assert got[-1].target == f"{nestedguest.INNER_IMAGES}/{img.name}"
    assert [s.tag for s in got] == [f"vb{i}" for i in range(len(got))]


def test_setup_script_mounts_read_only_and_checks_devices():
    script = nestedguest.setup_script(SHARES)
    assert "modprobe vhost_net" in script and "modprobe vhost_vsock" in script
    assert "test -c /dev/kvm" in script
    assert script.count("mount -t 9p -o trans=virtio,version=9p2000.L,ro") == len(SHARES)
    assert script.count("cache=loose") == 2  # both static here


def test_inner_argv_runs_this_vbench():
    argv = nestedguest.inner_argv(["run", "x.yaml"])
    assert argv[0] == "env" and any(a.startswith("PYTHONPATH=") for a in argv)
    assert argv[-2:] == ["run", "x.yaml"]


def test_inner_run_dir_only_under_the_inner_results():
    lines = ["results: /etc/passwd", f"results: {nested.INNER_ROOT}/results/20261205-smoke-disk"]
    assert nested._inner_run_dir(lines) == f"{nested.INNER_ROOT}/results/20261205-smoke-disk"
    assert nested._inner_run_dir(["results: /tmp/x"]) is None


def test_nested_runs_never_pool_with_flat_ones():
    flat = record.RunRecord.model_construct(environment=record.Environment(accelerator="kvm"),
                                            variants={})
    nest = record.RunRecord.model_construct(environment=record.Environment(
        accelerator="kvm", nested={"outer_accelerator": "tcg", "outer_host": {"host": "h"}}),
        variants={})
    assert record.checked_metadata(flat)["nested"] is None
    assert record.checked_metadata(nest)["nested"] == "under tcg on h"


def test_owner_of_the_long_lived_l1_is_the_labs_libvirtd():
    """`lab gc` (of any vbench) destroys domains whose owner process is gone: the L1 that
    `lab up --nested` leaves running is tied to the lab's libvirtd, one booted for a run to it."""
    from vbench.core import procs

    me = procs.ref(os.getpid())
    daemons = {"libvirtd": {"pid": 1, "starttime": 7, "what": "libvirtd"}}
    long_lived = nestedguest.owner_tags(nestedguest.ROLE_TAG, daemons)
    assert long_lived == {"pid": "1", "pid_start": "7", "held_by": "libvirtd"}
    for_run = nestedguest.owner_tags("nested-run", daemons)
    assert for_run == {"pid": str(os.getpid()), "pid_start": str(me.starttime)}


class _Chan:
    """A channel whose command prints its pid and one line, then never ends (a vanished L1)."""

    def __init__(self):
        self.data, self.commands = b"vbench-nested-pid 42\nL2 booting\n", []

    def set_combine_stderr(self, _): pass
    def settimeout(self, _): pass
    def exec_command(self, cmd): self.commands.append(cmd)
    def recv_ready(self): return bool(self.data)
    def recv(self, n): out, self.data = self.data[:n], self.data[n:]; return out
    def exit_status_ready(self): return False
    def close(self): pass


class _Ssh:
    def __init__(self, chan):
        tr = type("T", (), {"is_active": lambda s: True, "open_session": lambda s, timeout: chan})()
        self._client = type("C", (), {"get_transport": lambda s: tr})()
        self.ran = []

    def run(self, cmd, timeout, check):
        self.ran.append(cmd)


def test_stream_stops_at_once_when_l1_is_gone(monkeypatch):
    """A destroyed hypervisor guest never resets its TCP connection: the watch, not SSH, ends the
    wait, and nothing is sent to a process that no longer exists."""
    import pytest

    from vbench.core.errors import GuestError

    monkeypatch.setattr(nested.time, "sleep", lambda s: None)
    clock = iter(range(0, 10**6, 1))
    monkeypatch.setattr(nested.time, "monotonic", lambda: float(next(clock)))
    said, ssh = [], _Ssh(_Chan())

    def gone():
        raise GuestError("the hypervisor guest is gone")

    with pytest.raises(nested.L1Gone):
        nested.stream(ssh, ["vbench", "run", "x.yaml"], said.append, watch=gone)
    assert said == ["L1 | L2 booting"] and ssh.ran == []


@pytest.mark.parametrize("raw", ["lots", "6g", "-1", "1024", "99999999", "6144.5"])
def test_a_bad_nested_memory_setting_is_one_line_not_a_traceback(monkeypatch, raw):
    from vbench.core.errors import LabError
    from vbench.guest import nested

    monkeypatch.setenv("VBENCH_NESTED_MEMORY_MIB", raw)
    with pytest.raises(LabError, match="VBENCH_NESTED_MEMORY_MIB"):
        nested.memory_mib()


def test_nested_memory_default_and_override(monkeypatch):
    from vbench.guest import nested

    monkeypatch.delenv("VBENCH_NESTED_MEMORY_MIB", raising=False)
    assert nested.memory_mib() == nested.MEMORY_MIB
    monkeypatch.setenv("VBENCH_NESTED_MEMORY_MIB", "8192")
    assert nested.memory_mib() == 8192


def test_a_gone_hypervisor_guest_is_explained_by_its_log_and_console(tmp_path, monkeypatch):
    """L1 crashed (its kernel panicked in KVM's code under TCG's SVM, seen 2026-12-06): the error
    says what libvirt saw and what the kernel printed, not "destroyed from outside?"."""
    from vbench.core import qemulog

    monkeypatch.setenv("VBENCH_HOME", str(tmp_path))
    gdir = tmp_path / "guests" / NAME
    gdir.mkdir(parents=True)
    (gdir / "console.log").write_text(
        "[   29.05] kvm: Nested Virtualization enabled\n"
        "[  643.87] BUG: TASK stack guard page was hit at 000000003f45dc60 (stack is ...)\n"
        "[  643.87] stack guard page: 0000 [#1] PREEMPT SMP NOPTI\n"
        "[  643.87] CPU: 0 PID: 985 Comm: CPU 1/KVM Not tainted 6.1.0-57-amd64 #1\n")
    logs = tmp_path / "qemu"
    logs.mkdir()
    (logs / f"{NAME}.log").write_text(
        "2026-12-06 16:22:38.009+0000: shutting down, reason=crashed\n"
        "2026-12-06T16:22:38.011715Z qemu-system-x86_64: terminating on signal 15 from pid 11176 "
        "(libvirtd)\n")
    monkeypatch.setattr(qemulog, "QEMU_LOG", str(logs / "{name}.log"))
    msg = nestedguest.gone({"domain": NAME, "dir": str(gdir)})
    assert msg.startswith(f"the hypervisor guest {NAME} is gone (libvirt: shutting down, "
                          f"reason=crashed: libvirt saw it crash"), msg
    assert msg.endswith("; its kernel reported: '[  643.87] BUG: TASK stack guard page was hit at "
                        "000000003f45dc60 (stack is ...)'"), msg
    # nothing to read (a dir tag that is not vbench's, no log): still one line, no guess dressed up
    assert nestedguest.gone({"domain": NAME, "dir": "/etc"}) == (
        f"the hypervisor guest {NAME} is gone (libvirt: shutting down, reason=crashed: libvirt saw "
        f"it crash (a kernel panic via pvpanic, or QEMU itself); QEMU ended on signal 15 from "
        f"libvirtd (pid 11176))")
    (logs / f"{NAME}.log").unlink()
    assert nestedguest.gone({"domain": NAME}) == (f"the hypervisor guest {NAME} is gone (destroyed "
                                              f"from outside?)")


# Lines from the hypervisor guest's console on 2026-12-06 (kvm_amd npt=0 and QEMU 10.0 trials).
LOCKUP_26 = "[  980.62] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [CPU 0/KVM:1105]"
LOCKUP_164 = "[ 1128.51] watchdog: BUG: soft lockup - CPU#0 stuck for 164s! [CPU 1/KVM:1107]"


def test_a_wedged_kernel_is_told_from_one_that_only_warned():
    from vbench.host.bootlog import wedged

    warned = ("[   19.28] WARNING: CPU: 0 PID: 0 at arch/x86/kernel/fpu/xstate.c:606 "
              "fpu__init_system_xstate+0x85a/0xb19\n[   29.05] NMI watchdog: Perf NMI watchdog "
              "permanently disabled\n" + LOCKUP_26 + "\n[  981.00] vbtest0: port 2(vnet7) entered "
              "forwarding state\n")
    assert wedged(warned) == ""            # a warning and a short lockup: a starved vCPU, go on
    assert wedged(warned + LOCKUP_164 + "\n") == LOCKUP_164
    for fatal in ("[  151.75] BUG: scheduling while atomic: CPU 0/KVM/592/0x00110001",
                  "[  643.87] BUG: TASK stack guard page was hit at 000000003f45dc60",
                  "[  152.07] Oops: 0011 [#1] PREEMPT SMP NOPTI",
                  "[  152.07] general protection fault, probably for non-canonical address",
                  "[  152.07] kernel BUG at mm/slub.c:431!"):
        assert wedged(warned + fatal + "\n[  152.08] Call Trace:\n") == fatal


def test_the_l1_watch_stops_on_a_wedged_kernel_and_on_a_gone_domain():
    from vbench.core.errors import GuestError

    console = {"text": "[  980.00] kvm: Nested Virtualization enabled\n" + LOCKUP_26 + "\n"}

    def alive():
        if console.get("gone"):
            raise GuestError("the hypervisor guest vbench-nested-l1 is not running")

    watch = nestedguest.watch_l1(alive, lambda: console["text"])
    watch()                                   # running, kernel sound: nothing to say
    console["text"] += LOCKUP_164 + "\n"
    with pytest.raises(GuestError) as exc:
        watch()
    assert str(exc.value) == (f"the hypervisor guest's kernel failed: {LOCKUP_164!r}; nothing "
                              f"inside it can go on (`vbench lab down --nested` destroys it)")
    console["gone"] = True
    with pytest.raises(GuestError, match="is not running"):
        watch()
