"""The boot wait of virt.Guest with a fake domain: a guest that is visibly dead or hung ends the
wait early with a BootError that says where the boot stopped and carries the console tail."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from vbench.host import bootlog
from vbench.guest import domain as virt
from vbench.core.errors import BootError, GuestError
from vbench.core.metrics import CommandResult
from vbench.scenario.schema import GuestSpec, parse_profile

KERNEL = "[    0.000000] Linux version 6.1.0-57-amd64\n[    9.3] Run /init as init process\n"
USERSPACE = "[   23.1] vbench-boot: userspace \n"


# libvirt's log of the guest's QEMU, as the host reads it: a stop the guest made itself
RESET_LOG = "2026-12-05 09:31:02.321+0000: shutting down, reason=shutdown\n"


class FakeHost:
    def run(self, argv, timeout):
        return CommandResult(" ".join(argv), 0, RESET_LOG, "", 0.1)

    def read_tail(self, path, size):  # the guest's console here, as the local lab reads it
        from vbench.core.files import read_tail

        return read_tail(path, size)


class FakeDomain:
    def __init__(self) -> None:
        self.active = True

    def isActive(self) -> bool:
        return self.active

    def interfaceAddresses(self, source):
        return {}


def _guest(tmp_path: Path, monkeypatch, console: str, **spec) -> virt.Guest:
    monkeypatch.setenv("VBENCH_HOME", str(tmp_path / "home"))
    g = virt.Guest(name="vbench-20261205-000000-t-0-virtio-blk",
                   lab=SimpleNamespace(dhcp_seen=lambda mac: False, host=FakeHost()),
                   image=SimpleNamespace(kernel=tmp_path / "vmlinuz", initrd=tmp_path / "initrd",
                                         own_boot=False),
                   profile=parse_profile("disk=virtio"), spec=GuestSpec(**spec), accel=None,
                   client_key=None, client_pub="")
    g.dir.mkdir(parents=True)
    (g.dir / "console.log").write_text(console)
    g.dom = FakeDomain()  # type: ignore[assignment]
    g._watch = bootlog.BootWatch(g.spec.boot_stall_s)
    return g


def test_a_domain_that_is_gone_while_booting_says_where_it_stopped(tmp_path, monkeypatch):
    g = _guest(tmp_path, monkeypatch, KERNEL)
    g.dom.active = False  # type: ignore[union-attr]
    with pytest.raises(BootError) as exc:
        g._boot_alive()
    assert "no longer running" in str(exc.value)
    assert "reason=shutdown: the guest stopped itself: it reset or powered off" in str(exc.value)
    assert "kernel booted, userspace did not start (stopped in the initramfs)" in str(exc.value)
    assert exc.value.stage == "kernel" and "Run /init" in exc.value.console_tail


def test_a_console_that_stopped_growing_before_userspace_is_a_hung_boot(tmp_path, monkeypatch):
    g = _guest(tmp_path, monkeypatch, KERNEL, boot_stall_s=5)
    g._boot_alive()                      # read now: growing
    g._watch.grew -= 6                   # ... and not since, for longer than its budget
    g._watch.checked -= 2
    with pytest.raises(BootError, match=r"hung while booting \(its console has not grown for 6 s\)"
                                        r": kernel booted, userspace did not start"):
        g._boot_alive()


def test_no_lease_by_the_deadline_names_the_stage_and_the_dhcp_log(tmp_path, monkeypatch):
    g = _guest(tmp_path, monkeypatch, KERNEL + USERSPACE, boot_timeout_s=10)
    t0 = time.monotonic()
    with pytest.raises(BootError) as exc:
        g._wait_lease("52:54:00:00:00:01", time.monotonic() + 0.2, boot=True)
    assert time.monotonic() - t0 < 5
    assert str(exc.value).startswith(f"guest {g.name} got no DHCP lease within 10 s: "
                                     f"userspace up, no DHCP request seen")
    assert exc.value.stage == "userspace" and "vbench-boot: userspace" in exc.value.console_tail


def test_sshd_up_and_no_dhcp_request_ends_the_wait_long_before_the_timeout(tmp_path, monkeypatch):
    """The management link is down (or the DHCP client broken): sshd runs, the lab's DHCP log
    never saw the NIC. The wait ends 30 s after sshd, not at the 240 s boot timeout."""
    g = _guest(tmp_path, monkeypatch, KERNEL + USERSPACE + "[   38.7] vbench-boot: sshd \n")
    g._silence = bootlog.DhcpSilence(grace_s=0.3, every_s=0.05)
    t0 = time.monotonic()
    with pytest.raises(BootError) as exc:
        g._wait_lease("52:54:00:00:00:01", time.monotonic() + 60, boot=True)
    assert time.monotonic() - t0 < 5
    assert str(exc.value).startswith(f"guest {g.name} got no DHCP lease: its sshd has run for ")
    assert "never heard from it: userspace up, no DHCP request seen" in str(exc.value)
    assert exc.value.stage == "userspace"


def test_without_the_dhcp_log_sshd_up_keeps_waiting(tmp_path, monkeypatch):
    g = _guest(tmp_path, monkeypatch, KERNEL + USERSPACE + "[   38.7] vbench-boot: sshd \n")
    g.lab = SimpleNamespace(dhcp_seen=lambda mac: None, host=FakeHost())  # a user's libvirt
    g._silence = bootlog.DhcpSilence(grace_s=0.05, every_s=0.01)
    with pytest.raises(BootError, match="got no DHCP lease within"):  # only the deadline ends it
        g._wait_lease("52:54:00:00:00:01", time.monotonic() + 0.5, boot=True)


def test_a_cancelled_boot_stops_waiting_with_an_error_that_is_not_retried(tmp_path, monkeypatch):
    import threading

    g = _guest(tmp_path, monkeypatch, KERNEL + USERSPACE, boot_timeout_s=60)
    g.cancel = threading.Event()
    g._boot_alive()                      # not cancelled: still waiting
    g.cancel.set()
    t0 = time.monotonic()
    with pytest.raises(GuestError, match="boot cancelled, the run is stopping") as exc:
        g._wait_lease("52:54:00:00:00:01", time.monotonic() + 30, boot=True)
    assert time.monotonic() - t0 < 5 and not isinstance(exc.value, BootError)
