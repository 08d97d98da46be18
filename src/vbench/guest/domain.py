"""The libvirt lifecycle of guests and networks (the domain XML itself: :mod:`vbench.guest.xml`).

libvirt itself comes through :mod:`vbench.host.libvirtd`, the only module that imports it.

A :class:`Guest` is a context manager: it creates an overlay over the cached base image, starts a
transient domain tagged as vbench's, waits for its lease and SSH, and on exit always destroys the
domain and removes its files (also on Ctrl-C). A dead or hung boot ends the wait early, and says
where it stopped (:class:`~vbench.core.errors.BootError`, :mod:`vbench.host.bootlog`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from vbench.core import paths, procs
from vbench.devices import DomainFiles
from vbench.guest.xml import domain_xml, kernel_cmdline, mac_for
from vbench.host.bootlog import PANIC_MARK
from vbench.host.hosts import OtherHost
from vbench.host.libvirtd import (_libvirt, claim_dir, open_connection, owner_tag)
from vbench.guest.userimage import own_boot, write_seed
from vbench.host.networks import MGMT, TEST
from vbench.core import files
from vbench.core.errors import GuestError
from vbench.host import bootlog
from vbench.core import qemulog
from vbench.core.errors import BootError

if TYPE_CHECKING:  # pragma: no cover
    from vbench.host.libvirtd import virConnect, virDomain
    from paramiko import PKey

    from vbench.host.images import Image
    from vbench.guest.userimage import UserImage
    from vbench.host.lab import Lab
    from vbench.host.accel import Accelerator
    from vbench.host.ssh import Ssh
    from vbench.scenario.schema import DeviceProfile, GuestSpec

CONSOLE_KEEP_BYTES = 8 << 20  # the console log kept in a run: its last 8 MiB
BOOT_CONSOLE_BYTES = 1 << 20  # what is read to see how far a boot got (a boot's log is ~60 KB)


# ---- guests ----------------------------------------------------------------------------------

@dataclass
class Guest:
    """One running guest of a device profile. Use as a context manager."""

    name: str
    lab: "Lab"
    image: "Image | UserImage"
    profile: "DeviceProfile"
    spec: "GuestSpec"
    accel: "Accelerator"
    client_key: "PKey"
    client_pub: str
    tags: dict = field(default_factory=dict)
    progress: Callable[[str], None] | None = None
    conn: "virConnect | None" = None
    dom: "virDomain | None" = None
    ip: str | None = None
    shell: "Ssh | None" = None         # the SSH connection while the guest runs (see .ssh)
    xml: str = ""
    boot_seconds: float | None = None
    keep_console: Path | None = None  # where to copy the console log when the guest goes away
    mgmt_link_down: bool = False       # test-only failpoint: boot without a management lease
    extra_cmdline: str = ""            # test-only failpoint: kernel options of a hung boot
    emulator: str | None = None        # an A/B side's QEMU binary (vbench.run.ab); None: libvirt's
    kernel: Path | None = None         # an A/B side's guest kernel/initrd instead of the image's
    initrd: Path | None = None
    host_key: str = ""                 # the pinned host key: the image's, or its seed's
    cancel: threading.Event | None = None  # set: the run stopped, a boot still waiting gives up
    _watch: bootlog.BootWatch | None = field(default=None, init=False, repr=False)  # booting
    _silence: bootlog.DhcpSilence | None = field(default=None, init=False, repr=False)

    @property
    def ssh(self) -> "Ssh":
        """The guest's SSH connection; GuestError when it has none (not started, or closed)."""
        if self.shell is None:
            raise GuestError(f"{self.name} has no SSH connection")
        return self.shell

    def _domain(self) -> "virDomain":
        if self.dom is None:
            raise GuestError(f"{self.name} is not running")
        return self.dom

    @property
    def dir(self) -> Path:
        return paths.guests_dir() / self.name

    def files(self) -> DomainFiles:
        return DomainFiles(overlay=self.dir / "overlay.qcow2",
                           scratch=(self.dir / f"scratch.{self.profile.disk.format}"
                                    if self.profile.disk else None),
                           console=self.dir / "console.log", kernel=self.kernel or self.image.kernel,
                           initrd=self.initrd or self.image.initrd)

    def __enter__(self) -> "Guest":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _say(self, msg: str) -> None:
        if self.progress:
            self.progress(msg)

    def build_xml(self) -> str:
        from vbench.host.images import ROOT_LABEL

        tags = {"owner": "vbench", "dir": str(self.dir), **owner_tag(), **self.tags}
        cmdline = " ".join(filter(None, (kernel_cmdline(ROOT_LABEL, self.client_pub),
                                         self.extra_cmdline)))
        return domain_xml(self.name, self.profile, self.spec, self.accel.domain_type, self.files(),
                          cmdline, MGMT.name, TEST.name, tags,
                          mgmt_link_down=self.mgmt_link_down,
                          cpu_mode=self.accel.cpu_mode, emulator=self.emulator,
                          own_boot=own_boot(self.image, self.dir, self.kernel or self.initrd))

    def _prepare_files(self) -> None:
        f = self.files()
        shutil.rmtree(self.dir, ignore_errors=True)  # a leftover of this name: mkdir says if not
        self.dir.mkdir(parents=True)
        os.chmod(self.dir, 0o755)
        claim_dir(self.dir)
        self.image.verify()  # a user's image: its private copy still has the checked hash
        res = procs.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", self.image.base_format,
                         "-b", str(self.image.base), str(f.overlay)], timeout=60, check=False)
        if not res.ok:
            raise GuestError(f"cannot create overlay for {self.name}: {res.tail()}")
        self.host_key = (write_seed(self.dir, self.name, self.client_pub, self.profile.nic is not None)
                         if self.image.own_boot else self.image.host_key_pub)
        for dev, spec in self.profile.present():
            dev.prepare(spec, f)

    def start(self) -> None:
        libvirt = _libvirt()
        from vbench.host import ssh as remote

        t0 = time.monotonic()
        self._prepare_files()
        self.xml = self.build_xml()
        self.conn = conn = open_connection(self.lab.uri)
        try:
            self.dom = conn.createXML(self.xml, 0)
        except libvirt.libvirtError as exc:
            raise GuestError(f"libvirt could not start {self.name}: {exc.get_error_message()}") from None
        self._say(f"{self.name}: started ({self.accel.name}), waiting for DHCP lease ...")
        deadline = t0 + self.spec.boot_timeout_s
        self._watch = bootlog.BootWatch(self.spec.boot_stall_s, bool(self.image.own_boot))
        self._silence = bootlog.DhcpSilence()
        self.ip = self._wait_lease(mac_for(self.name, "mgmt"), deadline, boot=True)
        self._say(f"{self.name}: lease {self.ip}, waiting for SSH ...")
        try:
            self.shell = remote.wait_for_ssh(self.ip, self.lab.netns, self.host_key,
                                             self.client_key, self.image.user, deadline,
                                             alive=self._boot_alive, via=self.lab.host.via)
        except GuestError as exc:  # a timeout is explained (not a host key that is not the pinned one)
            if isinstance(exc, BootError) or time.monotonic() < deadline:
                raise
            raise self.boot_error(str(exc), lease=self.ip) from None
        self.shell.watch = self.check_alive
        self.boot_seconds = time.monotonic() - t0
        self._say(f"{self.name}: SSH ready after {self.boot_seconds:.1f} s")

    def check_alive(self) -> None:
        """Raise GuestError (with the console tail) when the domain is gone or shut off."""
        libvirt = _libvirt()
        try:
            active = bool(self._domain().isActive())
        except libvirt.libvirtError:
            active = False
        if not active:
            why = bootlog.gone(qemulog.read_tail(self.lab.host, self.name),
                               self.console_end(64 << 10),
                               "crashed, panicked or destroyed from outside")
            raise GuestError(f"guest {self.name} is no longer running {why}", self.console_tail())
        if PANIC_MARK in self.console_end():
            raise GuestError(f"guest {self.name} kernel panicked", self.console_tail())

    def boot_error(self, message: str, lease: str | None = None) -> BootError:
        """What a failed boot raises: ``message``, where the boot stopped, the console tail."""
        d = bootlog.explain(self.console_end(BOOT_CONSOLE_BYTES), lease=lease,
                            dhcp_seen=self._mgmt_dhcp_seen())
        return BootError(f"{message}: {d.reason}", self.console_tail(), stage=d.stage)

    def _mgmt_dhcp_seen(self) -> bool | None:
        """Whether the lab's DHCP log shows a request from the management NIC (None: unknown)."""
        return getattr(self.lab, "dhcp_seen", lambda mac: None)(mac_for(self.name, "mgmt"))

    def _boot_alive(self) -> None:
        """check_alive while booting, and a hung boot (bootlog.BootWatch): BootError. Once
        ``cancel`` is set (the run stopped while this guest booted): GuestError, not retried."""
        if self.cancel is not None and self.cancel.is_set():
            raise GuestError(f"guest {self.name}: boot cancelled, the run is stopping")
        try:
            self.check_alive()
        except GuestError as exc:
            raise self.boot_error(str(exc), lease=self.ip) from None
        quiet = self._watch and self._watch.check(lambda: self.console_end(BOOT_CONSOLE_BYTES))
        if quiet is not None:
            raise self.boot_error(f"guest {self.name} hung while booting (its console has not "
                                  f"grown for {quiet:.0f} s)", lease=self.ip)
        if self.ip is None and self._silence is not None:
            up = self._silence.check(lambda: self.console_end(BOOT_CONSOLE_BYTES),
                                     self._mgmt_dhcp_seen)
            if up is not None:
                raise self.boot_error(f"guest {self.name} got no DHCP lease: its sshd has run for "
                                      f"{up:.0f} s and the lab's DHCP server never heard from it")

    def console_end(self, size: int = 8192) -> str:
        return self.lab.host.read_tail(self.files().console, size).decode(errors="replace")

    def _wait_lease(self, mac: str, deadline: float, boot: bool = False) -> str:
        libvirt = _libvirt()
        while time.monotonic() < deadline:
            (self._boot_alive if boot else self.check_alive)()
            try:
                ifaces = self._domain().interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE)
            except libvirt.libvirtError:
                ifaces = {}
            for iface in ifaces.values():
                if (iface.get("hwaddr") or "").lower() == mac:
                    for a in iface.get("addrs") or []:
                        if a.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4:
                            return a["addr"]
            time.sleep(0.5)
        if boot:
            raise self.boot_error(f"guest {self.name} got no DHCP lease within "
                                  f"{self.spec.boot_timeout_s} s")
        raise GuestError(f"guest {self.name} got no DHCP lease within {self.spec.boot_timeout_s} s",
                         self.console_tail())

    def test_nic_ip(self, timeout: float = 60) -> str:
        """The DHCP address of the NIC under test (on the lab's test network)."""
        return self._wait_lease(mac_for(self.name, "test"), time.monotonic() + timeout)

    def console_tail(self, lines: int = 15) -> str:
        """The console's last ``lines`` lines, read from its last 64 KiB (never the whole file)."""
        return "\n".join(self.console_end(64 << 10).rstrip().splitlines()[-lines:])

    def qemu_pid(self) -> int | None:
        """QEMU's pid when its CPU time can be sampled (the host knows: here, or None)."""
        return self.lab.host.qemu_pid(self.name)

    def suspend(self) -> None:
        self._domain().suspend()

    def resume(self) -> None:
        self._domain().resume()

    def is_paused(self) -> bool:
        libvirt = _libvirt()
        return self._domain().state()[0] == libvirt.VIR_DOMAIN_PAUSED

    def set_memory_kib(self, kib: int) -> tuple[bool, str]:
        """Ask the balloon for ``kib``; (False, libvirt's answer) when the guest has no balloon."""
        libvirt = _libvirt()
        try:
            self._domain().setMemoryFlags(kib, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            return True, "ok"
        except libvirt.libvirtError as exc:
            return False, f"not supported: {exc.get_error_message()}"

    def balloon_actual_kib(self) -> int | None:
        libvirt = _libvirt()
        try:
            return int(self._domain().memoryStats().get("actual"))
        except (libvirt.libvirtError, TypeError, ValueError):
            return None

    def wait_balloon(self, target_kib: int, timeout: float, shrinking: bool) -> float:
        """Seconds until libvirt's balloon 'actual' reaches the target (1% tolerance)."""
        t0 = time.monotonic()
        tol = target_kib * 0.01
        while time.monotonic() - t0 < timeout:
            actual = self.balloon_actual_kib()
            if actual is not None and (actual <= target_kib + tol if shrinking
                                       else actual >= target_kib - tol):
                return time.monotonic() - t0
            time.sleep(0.05)
        raise GuestError(f"the balloon of {self.name} did not reach {target_kib // 1024} MiB "
                         f"within {timeout:.0f} s")

    def live_xml(self) -> str:
        """The running domain's XML as libvirt has it now (what it chose: a vsock guest CID)."""
        return self._domain().XMLDesc(0)

    def update_device_live(self, xml: str) -> None:
        """Change a device of the running guest (libvirt updateDeviceFlags, live only)."""
        libvirt = _libvirt()
        try:
            self._domain().updateDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        except libvirt.libvirtError as exc:
            raise GuestError(f"{self.name}: libvirt refused the device update: "
                             f"{exc.get_error_message()}") from None

    def close(self) -> None:
        """Always: close SSH, destroy the domain, remove overlay and scratch disk."""
        libvirt = _libvirt()
        if self.shell is not None:
            try:
                self.shell.close()
            except Exception:
                pass
            self.shell = None
        if self.dom is not None:
            try:
                self.dom.destroy()
            except libvirt.libvirtError:
                pass  # already gone
            self.dom = None
        if self.conn is not None:
            try:
                self.conn.close()
            except libvirt.libvirtError:
                pass
            self.conn = None
        try:
            self._keep_console_tail()
        finally:  # even when keeping the console failed (StoreError: full results file system)
            self._remove_files()

    def _remove_files(self) -> None:  # overlay, scratch disk, console (a remote guest's: there)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _keep_console_tail(self) -> None:
        """The console's last bytes into the run directory, read on the guest's host (nothing
        written when there is nothing to read). Replaces (never follows) a symlink planted at the
        destination; the run directory's raw_path already refused symlinked directories."""
        if self.keep_console is None:
            return
        tail = self.lab.host.read_tail(self.files().console, CONSOLE_KEEP_BYTES)
        if tail:
            with contextlib.suppress(OSError):
                files.atomic_write(self.keep_console, tail)

    def reconnect(self) -> None:
        """A new SSH connection (after sshd died or the connection broke); GuestError if none."""
        from vbench.host import ssh as remote

        if self.shell is not None:
            with contextlib.suppress(Exception):
                self.shell.close()
        self.shell = None
        if self.ip is None:
            raise GuestError(f"{self.name} has no management address to reconnect to")
        self.shell = remote.wait_for_ssh(self.ip, self.lab.netns, self.host_key,
                                         self.client_key, self.image.user, time.monotonic() + 20,
                                         alive=self.check_alive, via=self.lab.host.via)
        self.shell.watch = self.check_alive


# ---- a guest on another host (``--connect qemu+ssh://``) ------------------------------------------

class RemoteGuest(Guest):
    """A guest whose files live on the other host (:class:`vbench.host.hosts.OtherHost`) and
    whose SSH goes through it."""

    @property
    def _there(self) -> OtherHost:
        host = self.lab.host
        if not isinstance(host, OtherHost):
            raise GuestError(f"{self.name}: a guest on another host needs that host's session, "
                             f"not a {host.kind} host")
        return host

    @property
    def dir(self) -> Path:
        return self.lab.host.guest_dir(self.name)

    def _prepare_files(self) -> None:
        self._there.prepare_guest(self)

    def _remove_files(self) -> None:  # on the other host, never a local path of that name
        self.lab.host.remove_dir(self.dir)


# Which guest class a host's kind gets: guest files here (the lab, a user's libvirt) or on the
# other host. The one place that keys on the kind; an unknown kind is refused, never defaulted.
GUEST_CLASSES: dict[str, type[Guest]] = {"lab": Guest, "libvirtd": Guest, "remote": RemoteGuest}


def guest_class(lab: "Lab") -> type[Guest]:
    """The guest class for a lab's host (:data:`GUEST_CLASSES`)."""
    kind = lab.host.kind
    if kind not in GUEST_CLASSES:
        raise GuestError(f"no guest class for a {kind!r} host (known: "
                         f"{', '.join(sorted(GUEST_CLASSES))})")
    return GUEST_CLASSES[kind]
