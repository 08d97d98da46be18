"""Guest.close always removes the guest's overlay and scratch directory, even when keeping the
console log in the results directory fails (a full or read-only results file system)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from vbench.core import files
from vbench.results import rundir as store
from vbench.guest import domain as virt
from vbench.core.errors import StoreError
from vbench.scenario.schema import parse_profile


def _guest(tmp_path: Path, monkeypatch) -> virt.Guest:
    monkeypatch.setenv("VBENCH_HOME", str(tmp_path / "home"))
    from vbench.host.hosts import LocalLab

    lab = SimpleNamespace(host=LocalLab("qemu:///system", None))  # reads the console here
    g = virt.Guest(name="vbench-20261127-000000-t-0-virtio-blk", lab=lab,
                   image=SimpleNamespace(kernel=tmp_path / "vmlinuz", initrd=tmp_path / "initrd"),
                   profile=parse_profile("disk=virtio"), spec=None, accel=None, client_key=None,
                   client_pub="", keep_console=tmp_path / "results" / "console.log")
    g.dir.mkdir(parents=True)
    (g.dir / "overlay.qcow2").write_bytes(b"x")
    (g.dir / "console.log").write_text("boot\n")
    return g


def test_close_keeps_the_console_tail_and_removes_the_guest_dir(tmp_path, monkeypatch):
    g = _guest(tmp_path, monkeypatch)
    g.close()
    assert (tmp_path / "results" / "console.log").read_text() == "boot\n"
    assert not g.dir.exists()


def test_close_removes_the_guest_dir_when_the_results_fs_is_full(tmp_path, monkeypatch):
    g = _guest(tmp_path, monkeypatch)

    def full(path, data, mode=0o644):
        raise StoreError(f"cannot write {path}: No space left on device; free space")

    monkeypatch.setattr(files, "atomic_write", full)
    with pytest.raises(StoreError, match="free space"):
        g.close()
    assert not g.dir.exists(), "the overlay and scratch disk were left behind"


def test_a_remote_guest_removes_its_files_there_and_never_a_local_path(tmp_path, monkeypatch):
    from pathlib import PurePosixPath

    from vbench.guest.domain import guest_class
    from vbench.host import hosts
    from vbench.host.lab import Lab, LabState

    local_twin = tmp_path / "twin"  # a local directory at the remote guest's path: must survive
    local_twin.mkdir()
    removed: list = []
    session = SimpleNamespace(libvirt_uri="qemu+ssh://root@hv1/system",
                              guest_dir=lambda name: local_twin,
                              remove_dir=lambda p: removed.append(PurePosixPath(p)),
                              read_tail=lambda path, size: b"boot\n")
    lab = Lab(session.libvirt_uri, None, LabState(), hosts.OtherHost(session))  # type: ignore[arg-type]
    g = guest_class(lab)(name="vbench-20261127-000000-t-0-virtio-blk",
                                 lab=lab, image=None,
                                 profile=parse_profile("disk=virtio"), spec=None, accel=None,
                                 client_key=None, client_pub="", keep_console=None)
    g.close()
    assert removed == [PurePosixPath(local_twin)]
    assert local_twin.exists(), "a remote guest's close removed a local directory"


def test_a_guest_that_died_says_how_and_what_its_kernel_reported(tmp_path, monkeypatch):
    """check_alive on a domain that is gone: libvirt's ending from the QEMU log, then the first
    warning the guest kernel printed (the L1 crash seen 2026-12-06: BUG in KVM's vCPU thread)."""
    from vbench.core import qemulog

    g = _guest(tmp_path, monkeypatch)
    g.dom = SimpleNamespace(isActive=lambda: False)
    (g.dir / "console.log").write_text(
        "[    1.0] Linux version 6.1.0-57-amd64\n"
        "[  643.8] BUG: TASK stack guard page was hit at 000000003f45dc60\n"
        "[  643.8] CPU: 0 PID: 985 Comm: CPU 1/KVM Not tainted 6.1.0-57-amd64 #1\n")
    monkeypatch.setattr(qemulog, "read_tail", lambda host, name: (
        "2026-12-06 16:22:38.009+0000: shutting down, reason=crashed\n"))
    with pytest.raises(virt.GuestError) as exc:
        g.check_alive()
    assert str(exc.value) == (
        f"guest {g.name} is no longer running (libvirt: shutting down, reason=crashed: libvirt saw "
        f"it crash (a kernel panic via pvpanic, or QEMU itself)); its kernel reported: "
        f"'[  643.8] BUG: TASK stack guard page was hit at 000000003f45dc60'")
    (g.dir / "console.log").write_text("[    1.0] Linux version 6.1.0-57-amd64\n")
    with pytest.raises(virt.GuestError) as exc:
        g.check_alive()
    assert "its kernel reported" not in str(exc.value)


def test_console_tail_reads_only_the_end_of_a_long_console(tmp_path, monkeypatch):
    g = _guest(tmp_path, monkeypatch)
    body = "".join(f"[{i:7d}] early line\n" for i in range(20000))  # about 420 KiB
    (g.dir / "console.log").write_text(body + "[ 99.0] second last\n[ 99.1] last\n")
    asked: list[int] = []
    real = g.lab.host.read_tail
    monkeypatch.setattr(g.lab.host, "read_tail", lambda p, n: asked.append(n) or real(p, n))
    tail = g.console_tail(lines=2)
    assert tail == "[ 99.0] second last\n[ 99.1] last"
    assert asked == [64 << 10], "the whole console file was read"
    (g.dir / "console.log").unlink()
    assert g.console_tail() == ""
