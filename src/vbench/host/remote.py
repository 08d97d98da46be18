"""Another host: ``vbench run --connect qemu+ssh://[USER@]HOST[:PORT]/system``.

vbench keeps one SSH session to that host (paramiko), with the host key *pinned*: it must already
be in a known_hosts file the user names (``VBENCH_KNOWN_HOSTS``, default ``~/.ssh/known_hosts``);
an unknown host is refused with one line, never accepted. The client key is ``VBENCH_SSH_KEY``
(default: the first of ``~/.ssh/id_ed25519``, ``id_ecdsa``, ``id_rsa``). libvirt connects with its
own ssh transport through a small wrapper that runs the ``ssh`` binary with the same known_hosts
file (``StrictHostKeyChecking=yes``) and key.

Over the session vbench

- uploads the guest image (base, kernel, initrd) once into ``REMOTE_ROOT/images/<sha256>``,
  keyed by its content hash, and reuses it when present;
- creates each guest's overlay, scratch disk (written in full, as locally) and console file in
  ``REMOTE_ROOT/guests/<domain>`` and removes that directory when the guest goes;
- reaches guests through the host (a ``direct-tcpip`` channel of the session: a jump), their host
  key pinned as for lab guests;
- runs the host-native fio baseline on that host, confined with bubblewrap as locally.

Every command is an argv list quoted with :func:`shlex.join`; every path it names is checked to
lie under ``REMOTE_ROOT``. Only the disk device (fio workloads) is supported remotely so far; any
other device or probe is refused with one line before anything boots.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

from vbench.core import paths, procs
from vbench.core.errors import GuestError, LabError, RemoteCommandError
from vbench.host.remoteuri import (COMPLETE, IMAGE_FILES, REMOTE_ROOT, Target, _inside_root,
                                   _NAME_RE, client_key_file, known_hosts_file, libvirt_uri, parse_uri, wrapper_path,
                                   pinned_host_keys, remote_path, scratch_argv, ssh_wrapper)


# ---- the session ---------------------------------------------------------------------------------

class RemoteImage:
    """A local image whose base, kernel and initrd were uploaded to the other host."""

    def __init__(self, local: Any, remote_dir: PurePosixPath) -> None:
        self._local, self.remote_dir = local, remote_dir

    def __getattr__(self, name: str) -> Any:
        return getattr(self._local, name)

    @property
    def base(self) -> PurePosixPath:
        return self.remote_dir / "base"

    @property
    def kernel(self) -> PurePosixPath:
        return self.remote_dir / "kernel"

    @property
    def initrd(self) -> PurePosixPath:
        return self.remote_dir / "initrd"

    @property
    def path(self) -> str:
        return str(self.remote_dir)


# One SFTP request (a console tail, one block of the image upload, owner.json): a host that stops
# answering for this long is treated as gone for that request (vbench.host.remote.RemoteHost.sftp).
SFTP_TIMEOUT_S = 60.0


# A remote host's facts, one ``key=value`` line each, read by key (untrusted.labelled_lines): a
# fact the host cannot give (no QEMU installed, no "model name" in an ARM host's /proc/cpuinfo) is
# empty instead of moving every later fact into the wrong field.
def fact_commands() -> tuple[tuple[str, str], ...]:
    """(key, shell command) of each fact a remote host's shell prints."""
    from vbench.host import sched
    from vbench.host.accel import kvm_module_sh

    return (("node", "uname -n"), ("kernel", "uname -r"), ("cpus", "nproc"),
            ("cpu_model", "sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1"),
            ("memory_mib", "awk '/^MemTotal/ {print int($2/1024)}' /proc/meminfo"),
            ("qemu", "qemu-system-x86_64 --version 2>/dev/null | head -n1"),
            ("fio", "fio --version 2>/dev/null | head -n1"),
            ("kvm", kvm_module_sh()), ("autogroup", sched.read_sh()))


def host_facts_sh() -> str:
    """The shell that prints a remote host's facts, one ``key=value`` line each."""
    return "; ".join(f'printf \'%s=%s\\n\' {key} "$({cmd})"' for key, cmd in fact_commands())


class RemoteHost:
    """One pinned SSH session to another host (see the module doc)."""

    # One SFTP request at a time: paramiko's SFTP client answers a request only to the thread
    # that reads the reply, so two threads asking at once (a run's guests boot side by side, each
    # reading its console) can each wait forever for the reply the other thread took.
    _sftp_lock = threading.RLock()

    def __init__(self, target: Target, client, libvirt_uri: str) -> None:
        from vbench.host.ssh import Ssh

        self.target, self._client, self.libvirt_uri = target, client, libvirt_uri
        self.ssh = Ssh(client, target.host)
        self._sftp: Any = None

    @classmethod
    def open(cls, uri: str, timeout: float = 20.0) -> "RemoteHost":
        import paramiko

        t = parse_uri(uri)
        kh = known_hosts_file()
        keys = pinned_host_keys(t, kh)
        key = client_key_file()
        client = paramiko.SSHClient()
        for kt, k in keys.items():
            client.get_host_keys().add(t.known_hosts_name, kt, k)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            sock = socket.create_connection((t.host, t.port), timeout=timeout)
        except OSError as exc:
            raise LabError(f"cannot reach {t.host}:{t.port} ({exc})") from None
        try:
            client.connect(t.host, port=t.port, username=t.user, key_filename=str(key),
                           sock=sock, timeout=timeout, banner_timeout=timeout,
                           auth_timeout=timeout, look_for_keys=False, allow_agent=False)
        except paramiko.BadHostKeyException:
            client.close()
            raise LabError(f"{t.known_hosts_name} presented a host key that is not the one pinned "
                           f"in {kh}; refusing to connect") from None
        except (paramiko.SSHException, OSError) as exc:
            client.close()
            raise LabError(f"cannot log in to {t.public_uri} with {key}: {exc}") from None
        tr = client.get_transport()
        if tr is not None:
            tr.set_keepalive(5)
        wrapper = ssh_wrapper(kh, key, wrapper_path(t, paths.lab_dir()))
        return cls(t, client, libvirt_uri(t, wrapper))

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
        self._client.close()

    # -- commands and files
    def run(self, argv: list[str], timeout: float = 120.0, check: bool = True):
        return self.ssh.run_argv(argv, timeout=timeout, check=check)

    @contextlib.contextmanager
    def sftp(self) -> Iterator[Any]:
        """The session's SFTP client, to this thread alone while the block runs. A request the
        other host leaves unanswered for SFTP_TIMEOUT_S raises TimeoutError (an OSError) instead
        of holding the thread (and the lock) forever, and the client is dropped: a reply that
        comes later cannot be taken for the answer to a later request; the next block opens a
        new one."""
        with self._sftp_lock:
            if self._sftp is None:
                self._sftp = self._client.open_sftp()
                self._sftp.get_channel().settimeout(SFTP_TIMEOUT_S)
            try:
                yield self._sftp
            except TimeoutError:  # socket.timeout is TimeoutError
                sftp, self._sftp = self._sftp, None
                with contextlib.suppress(Exception):
                    sftp.close()
                raise

    def jump(self, addr: str, port: int, timeout: float):
        """A channel to addr:port opened by the host (a guest on its libvirt network)."""
        from vbench.host.netns import check_target

        check_target(addr)
        tr = self._client.get_transport()
        if tr is None or not tr.is_active():
            raise GuestError(f"the SSH session to {self.target.host} is closed")
        return tr.open_channel("direct-tcpip", (addr, port), ("127.0.0.1", 0), timeout=timeout)

    def read_tail(self, path: PurePosixPath | Path, size: int) -> bytes:
        try:
            with self.sftp() as sftp, sftp.open(str(_inside_root(path)), "rb") as fh:
                end = fh.stat().st_size or 0
                fh.seek(max(0, end - size))
                return fh.read(size)
        except (OSError, EOFError):
            return b""

    def remove_dir(self, path: PurePosixPath | Path) -> None:
        p = _inside_root(path)
        self.run(["rm", "-rf", "--one-file-system", "--", str(p)], timeout=120, check=False)

    # -- the image, once per content
    def upload_image(self, img: Any, say: Callable[[str], None]) -> RemoteImage:
        files = [Path(img.base), Path(img.kernel), Path(img.initrd)]
        local = [content_hash_one(f) for f in files]
        digest = hashlib.sha256("\n".join(local).encode()).hexdigest()
        d = remote_path("images", digest[:32])
        if self.run(["test", "-e", str(d / COMPLETE)], timeout=30, check=False).ok:
            say(f"guest image already on {self.target.host} ({d})")
            return RemoteImage(img, d)
        tmp = remote_path("images", f"{digest[:32]}.part")
        self.remove_dir(tmp)
        self.run(["mkdir", "-p", "-m", "0755", str(tmp)])
        total = sum(f.stat().st_size for f in files)
        say(f"uploading guest image to {self.target.host}:{d} ({total / 2**20:.0f} MiB, once)")
        for name, f in zip(IMAGE_FILES, files):
            try:
                with self.sftp() as sftp:
                    sftp.put(str(f), str(tmp / name), confirm=True)
                    sftp.chmod(str(tmp / name), 0o644)
            except (OSError, EOFError) as exc:
                self.remove_dir(tmp)
                raise LabError(f"uploading the guest image to {self.target.host} failed "
                               f"({type(exc).__name__}: {str(exc)[:120]}); nothing was kept") from None
        got = self.run(["sha256sum", "--", *(str(tmp / n) for n in IMAGE_FILES)], timeout=600)
        remote = [line.split()[0] for line in got.stdout.splitlines() if line.strip()]
        if remote != local:
            self.remove_dir(tmp)
            raise LabError(f"the image uploaded to {self.target.host} does not match its local "
                           f"copy (hash mismatch); nothing was kept")
        self.run(["touch", str(tmp / COMPLETE)])
        self.remove_dir(d)
        self.run(["mv", "-T", "--", str(tmp), str(d)])
        return RemoteImage(img, d)

    # -- per guest
    def guest_dir(self, name: str) -> Path:
        if not _NAME_RE.match(name):
            raise LabError(f"refusing guest directory name {name!r}")
        return Path(remote_path("guests", name))

    def prepare_guest(self, g: Any) -> None:
        """Overlay and scratch disk of guest ``g`` (a virt.Guest) in its remote directory."""
        f = g.files()
        self.remove_dir(g.dir)
        self.run(["mkdir", "-p", "-m", "0755", str(g.dir)])
        self.claim(g.dir)
        res = self.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", g.image.base_format,
                        "-b", str(g.image.base), str(f.overlay)], timeout=60, check=False)
        if not res.ok:
            raise GuestError(f"cannot create the overlay of {g.name} on {self.target.host}: "
                             f"{res.tail()}")
        disk = g.profile.disk
        if disk is not None:
            self.make_scratch(PurePosixPath(f.scratch), disk.size_gib, disk.preallocate,
                              disk.format)
        g.host_key = g.image.host_key_pub

    def make_scratch(self, path: PurePosixPath, size_gib: float, mode: str,
                     fmt: str = "raw") -> None:
        raw = path.with_suffix(".raw-tmp") if fmt == "qcow2" else path
        for argv in scratch_argv(raw, size_gib, mode):
            res = self.run(argv, timeout=3600, check=False)
            if not res.ok:
                raise GuestError(f"cannot create the {size_gib:g} GiB scratch disk {raw} on "
                                 f"{self.target.host}: {res.tail()}")
        if fmt == "qcow2":
            self.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw),
                      str(_inside_root(path))], timeout=3600)
            self.run(["rm", "-f", "--", str(raw)])

    # -- the host baseline
    def host_scratch(self, run_id: str, size_gib: float, mode: str) -> Path:
        d = self.guest_dir(f"vbench-host-{run_id}"[:127])
        self.remove_dir(d)
        self.run(["mkdir", "-p", "-m", "0700", str(d)])
        self.claim(d)
        f = d / "scratch.raw"
        self.make_scratch(PurePosixPath(f), size_gib, mode)
        return f

    def run_confined(self, argv: list[str], writable: PurePosixPath, wrap: list[str],
                     timeout: float):
        """``argv`` on the host under bubblewrap, able to write only ``writable`` (as locally)."""
        w = str(_inside_root(writable))
        box = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
               "--bind", w, w, "--unshare-all", "--die-with-parent", "--new-session",
               "--cap-drop", "ALL", "--"]
        res = self.run(wrap + box + argv, timeout=timeout, check=False)
        if not res.ok:
            raise RemoteCommandError(res)
        return res

    # -- facts
    def host_facts(self, libvirt_uri: str) -> dict:
        from vbench.host import libvirtd, sched
        from vbench.host.accel import NO_KVM_MODULE

        from vbench.core.untrusted import labelled_lines

        got = labelled_lines(self.ssh.run(host_facts_sh(), timeout=60).stdout,
                             {key for key, _ in fact_commands()})
        cpus, mem = got.get("cpus", ""), got.get("memory_mib", "")
        return {"host": got.get("node", ""), "host_kernel": got.get("kernel", ""),
                "cpus": int(cpus) if cpus.isdigit() else None,
                "cpu_model": got.get("cpu_model", ""),
                "memory_mib": int(mem) if mem.isdigit() else None,
                "qemu_version": got.get("qemu", ""), "fio_version_host": got.get("fio", ""),
                "kvm_module": got.get("kvm") or NO_KVM_MODULE,
                "libvirt_uri": self.target.public_uri,
                "host_scheduler": sched.fact(got.get("autogroup", "")),
                "remote_host": self.target.host, **libvirtd.daemon_facts(libvirt_uri)}

    # -- host-side peers (iperf3 -s)
    def peer(self, argv: list[str], port: int) -> "RemotePeer":
        return RemotePeer(self, argv, port)

    # -- cleanup of leftovers (gc)
    def claim(self, d: PurePosixPath | Path) -> None:
        """Which vbench (this machine, pid + start time) owns a directory on the host."""
        import json
        import platform

        from vbench.core import procs

        me = procs.ref(os.getpid(), "vbench")
        try:
            with self.sftp() as sftp, sftp.open(str(_inside_root(PurePosixPath(d) / "owner.json")),
                                                "w") as fh:
                fh.write(json.dumps({"client": platform.node(), **(me.to_dict() if me else {})}))
        except (OSError, EOFError) as exc:
            raise LabError(f"cannot write {d}/owner.json on {self.target.host} "
                           f"({type(exc).__name__}: {str(exc)[:120]})") from None

    def remove_leftovers(self, live: set[str]) -> list[str]:
        """Remove guest/baseline directories vbench left on the host: only those no domain uses
        whose owner was a vbench on this machine that is gone. Others are left and named."""
        import json
        import platform

        from vbench.core import procs

        done = []
        res = self.run(["ls", "-1", "--", str(REMOTE_ROOT / "guests")], timeout=30, check=False)
        for d in (REMOTE_ROOT / "guests" / n for n in res.stdout.split() if _NAME_RE.match(n)):
            if str(d) in live:
                continue
            try:
                owner = json.loads(self.read_tail(d / "owner.json", 4096) or b"{}")
                mine = owner.pop("client", None) == platform.node()
                alive = mine and procs.alive(procs.ProcRef.from_dict(owner))
            except (ValueError, KeyError, TypeError):
                mine = alive = False
            if not mine or alive:
                done.append(f"left {self.target.host}:{d} (in use, or made by a vbench elsewhere)")
                continue
            self.remove_dir(d)
            done.append(f"removed leftover guest files {self.target.host}:{d}")
        return done


class RemotePeer:
    """A host-side server (``iperf3 -s -1``) on the other host for one test: started on its own
    channel of the session under ``timeout`` (so it can never outlive a lost vbench by long), its
    pid reported first and killed by that pid on exit; ready once the host lists its socket."""

    LIMIT_S = 600

    def __init__(self, host: RemoteHost, argv: list[str], port: int) -> None:
        self.host, self.port = host, port
        self.argv = ["sh", "-c", 'echo "$$"; exec "$@"', "vbench-peer",
                     *procs.killed_after(self.LIMIT_S), *argv]
        self.chan: Any = None
        self.pid: int | None = None

    def __enter__(self) -> "RemotePeer":
        import shlex
        import time

        from vbench.core.errors import ProbeError

        tr = self.host._client.get_transport()
        if tr is None or not tr.is_active():
            raise ProbeError(f"the SSH session to {self.host.target.host} is closed")
        self.chan = tr.open_session(timeout=10)
        self.chan.exec_command(shlex.join(self.argv))
        try:
            deadline, out = time.monotonic() + 10, b""
            while time.monotonic() < deadline:
                while self.chan.recv_ready():
                    out += self.chan.recv(4096)
                if self.pid is None and b"\n" in out and out.split(b"\n")[0].strip().isdigit():
                    self.pid = int(out.split(b"\n")[0])
                if self.chan.exit_status_ready():
                    break
                ss = self.host.run(["ss", "-Hltn", f"sport = :{self.port}"], timeout=10,
                                   check=False)
                if self.pid is not None and ss.ok and ss.stdout.strip():
                    return self
                time.sleep(0.1)
        except BaseException:
            self.__exit__()
            raise
        said = out.decode(errors="replace").strip().splitlines()[-3:]
        self.__exit__()
        raise ProbeError(f"host-side peer on {self.host.target.host} did not start listening on "
                         f"port {self.port}: {' '.join(self.argv[4:])} -- {' | '.join(said)}")

    def __exit__(self, *exc: Any) -> None:
        if self.pid is not None:
            self.host.run(["kill", "-TERM", str(self.pid)], timeout=10, check=False)
            self.pid = None
        if self.chan is not None:
            self.chan.close()
            self.chan = None


def content_hash_one(f: Path) -> str:
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
