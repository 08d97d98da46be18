"""A libvirtd of "the user's", started the way a distribution starts it, but outside vbench's lab.

The same Debian binaries and configuration (a copy of /etc/libvirt) as the system daemon, with:

- its own state: private mounts over /run/libvirt, /var/lib/libvirt, /var/log/libvirt,
  /var/cache/libvirt and /etc/libvirt (directories under a temporary directory), in a mount
  namespace of its own, so neither the lab's daemon nor the host's files are shared or changed;
- its own network namespace (created here), so its bridges, dnsmasq and guests are reachable only
  from inside it (the network rule) and nothing collides with the lab's namespace;
- its own virtlogd next to it, and pid files in the temporary directory.

From outside, clients reach it through its socket: ``qemu+unix:///system?socket=<tmp>/run/libvirt-sock``.
Clients that must reach its guests (vbench with ``--connect``) run inside its network namespace
(``ip netns exec NAME ...``), as they would on the user's host.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from pgcluster import process_running

PRIVATE_DIRS = {"run": "/run/libvirt", "lib": "/var/lib/libvirt", "log": "/var/log/libvirt",
                "cache": "/var/cache/libvirt", "etc": "/etc/libvirt"}


class OwnLibvirtd:
    def __init__(self, base: Path, netns: str) -> None:
        self.base, self.netns = base, netns

    @property
    def socket(self) -> Path:
        return self.base / "run" / "libvirt-sock"

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.socket}"

    def pid(self, name: str) -> int | None:
        try:
            return int((self.base / f"{name}.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    @classmethod
    def start(cls, netns: str, extra: Callable[[Path], str] | None = None,
              uts: bool = False) -> "OwnLibvirtd":
        """``extra(base)``: called once the namespace exists; returns shell commands run last in
        the daemon's namespaces (e.g. start an sshd, see :func:`sshd_script`); ``uts``: a UTS
        namespace of its own too (its own host name)."""
        base = Path(tempfile.mkdtemp(prefix="vbench-ownlv-"))
        os.chmod(base, 0o755)  # QEMU (user libvirt-qemu) reads the test guest's files in here
        lv = cls(base, netns)
        try:
            subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True, timeout=20)
            subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True,
                           capture_output=True, timeout=20)
            for sub in PRIVATE_DIRS:
                (base / sub).mkdir()
            # the distribution's configuration, without its autostart links (nothing of the host's
            # networks starts in here unless the test starts it)
            shutil.copytree("/etc/libvirt", base / "etc", dirs_exist_ok=True, symlinks=True)
            for link in (base / "etc").rglob("autostart/*"):
                link.unlink()
            more = extra(base) if extra else ""
            mounts = "; ".join(f"mount --bind {shlex.quote(str(base / sub))} {target}"
                               for sub, target in PRIVATE_DIRS.items())
            script = (f"set -e; {mounts}; "
                      f"virtlogd -d -p {shlex.quote(str(base / 'virtlogd.pid'))}; "
                      f"libvirtd -d -p {shlex.quote(str(base / 'libvirtd.pid'))}"
                      + (f"; {more}" if more else ""))
            subprocess.run(["ip", "netns", "exec", netns, "unshare", "--mount",
                            *(["--uts"] if uts else []),
                            "--propagation", "private", "sh", "-c", script],
                           check=True, capture_output=True, text=True, timeout=60)
            deadline = time.monotonic() + 60
            while not lv._answers():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"own libvirtd did not answer on {lv.socket} within 60 s")
                time.sleep(0.2)
        except BaseException:
            lv.stop()
            raise
        return lv

    def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(str(self.socket))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def exec_argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def stop(self) -> None:
        """Stop its guests (all of them are the test's), its daemons, remove its namespace and files."""
        try:
            import libvirt

            if self._answers():
                conn = libvirt.open(self.uri)
                try:
                    for dom in conn.listAllDomains():
                        if dom.isActive():
                            dom.destroy()
                    for net in conn.listAllNetworks():
                        if net.isActive():
                            net.destroy()
                finally:
                    conn.close()
        except Exception:
            pass
        for name in ("sshd", "libvirtd", "virtlogd"):
            pid = self.pid(name)
            if pid and process_running(pid):
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 30
                while process_running(pid) and time.monotonic() < deadline:
                    time.sleep(0.2)
                if process_running(pid):
                    os.kill(pid, signal.SIGKILL)
        subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True, timeout=20)
        shutil.rmtree(self.base, ignore_errors=True)


SSHD_CONFIG = """Port 22
ListenAddress {addr}
HostKey {base}/ssh_host_ed25519_key
PidFile {base}/sshd.pid
AuthorizedKeysFile {base}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp /usr/lib/openssh/sftp-server
"""


def sshd_script(base: Path, addr: str, client_pub: str, hostname: str) -> str:
    """Files for an sshd of the simulated host (a fresh host key, one authorized client key) and
    the shell line that starts it: to pass as ``OwnLibvirtd.start(extra=...)``. Returns the line;
    the host's public key is then in ``base/ssh_host_ed25519_key.pub``."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", hostname, "-f",
                    str(base / "ssh_host_ed25519_key")], check=True, capture_output=True, timeout=30)
    (base / "authorized_keys").write_text(client_pub.strip() + "\n")
    os.chmod(base / "authorized_keys", 0o600)
    (base / "sshd_config").write_text(SSHD_CONFIG.format(addr=addr, base=base))
    return (f"hostname {shlex.quote(hostname)}; mkdir -p /run/sshd; "
            f"/usr/sbin/sshd -f {shlex.quote(str(base / 'sshd_config'))}")


def busybox_initrd(path: Path) -> None:
    """An initramfs whose init prints a line and then sleeps forever: a tiny guest of the user's."""
    from vbench.host.initramfs import newc, static_busybox

    init = b"#!/bin/busybox sh\n/bin/busybox echo USERS-GUEST-UP\nwhile :; do /bin/busybox sleep 3600; done\n"
    path.write_bytes(newc([("bin", 0o040755, b""), ("bin/busybox", 0o100755, static_busybox()),
                           ("init", 0o100755, init)]))
    os.chmod(path, 0o644)


def users_domain_xml(name: str, kernel: Path, initrd: Path, console: Path, network: str) -> str:
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 quiet rdinit=/init</cmdline>
  </os>
  <devices>
    <interface type='network'><source network='{network}'/><model type='virtio'/></interface>
    <serial type='file'><source path='{console}'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def users_network_xml(name: str, bridge: str, address: str, netmask: str) -> str:
    return (f"<network><name>{name}</name><bridge name='{bridge}' stp='off' delay='0'/>"
            f"<ip address='{address}' netmask='{netmask}'/></network>")


def separate_home(prefix: str = "vbench-home-", root: Path | None = None) -> Path:
    """A VBENCH_HOME of its own, sharing only the built images (hard links: vbench refuses a
    symlinked images directory) and the accelerator probe, so that a run against another libvirtd
    never changes the lab's record. ``root``: where (a hosts file may only name a home under
    /var/lib/vbench/homes). The caller removes it."""
    from vbench.core import paths

    if root is not None:
        root.mkdir(mode=0o755, parents=True, exist_ok=True)
    h = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    os.chmod(h, 0o755)
    shutil.copytree(paths.images_dir(), h / "images", symlinks=True, copy_function=os.link)
    (h / "lab").mkdir()
    probe = paths.lab_dir() / "accelerator.json"
    if probe.exists():
        shutil.copy(probe, h / "lab" / probe.name)
    return h


class DomainWatcher(threading.Thread):
    """Lists a daemon's domains every second while vbench runs: what did it create?
    (``seen``: domain name -> vbench's tags on it)"""

    def __init__(self, uri: str) -> None:
        super().__init__(daemon=True)
        self.uri, self.seen, self.stop_flag = uri, {}, threading.Event()

    def run(self) -> None:
        import libvirt

        from vbench.host import libvirtd

        conn = libvirt.open(self.uri)
        try:
            while not self.stop_flag.is_set():
                for dom in conn.listAllDomains():
                    try:
                        self.seen.setdefault(dom.name(), libvirtd._tags(dom))
                    except libvirt.libvirtError:
                        pass  # gone between listing and asking
                self.stop_flag.wait(1)
        finally:
            conn.close()
