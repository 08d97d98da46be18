"""The host side of the lab: daemons, network namespace, libvirt networks, accelerator.

``up`` is idempotent and records everything it starts or changes (pids with start times, the
namespace, the networks, the original /dev/kvm owner and mode) in ``<VBENCH_HOME>/lab/state.json``.
``down`` undoes exactly that record and nothing else: a libvirtd or guest that vbench did not start
is never touched. With ``connect`` set to a libvirt URI (a user's own daemon, e.g. a real KVM
server) vbench uses that daemon without a namespace and only adds its own networks to it.
"""

from __future__ import annotations

import grp
import json
import os
import shutil
import socket
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from vbench.host import hosts, netns, remote as remotehost
from vbench.host import sched, uris
from vbench.core import paths, procs
from vbench.host.accel import (kvm_module, probe_accelerator)
from vbench.core.errors import LabError
from vbench.core.files import atomic_write
from vbench.host.hosts import Host, dhcp_log
from vbench.host.networks import (MGMT, NETWORKS, TEST, LabNetwork, check_subnets, firewall_fact,
                                  forward_mode)

NETNS = "vbench"
LAB_URI = "qemu:///system"
LIBVIRT_SOCK = Path("/run/libvirt/libvirt-sock")
LIBVIRTD_PIDFILE = Path("/run/libvirtd.pid")
VIRTLOGD_PIDFILE = Path("/run/virtlogd.pid")
STATE_VERSION = 1


@dataclass
class LabState:
    uri: str = LAB_URI
    netns: str | None = None
    netns_created: bool = False
    daemons: dict = field(default_factory=dict)      # name -> ProcRef dict (only ones we started)
    kvm_original: dict | None = None                 # {uid, gid, mode} before we changed it
    networks: list = field(default_factory=list)     # names of networks we created
    accelerator: dict | None = None                  # (old records; the probe has its own cache)
    external: dict = field(default_factory=dict)     # URI -> networks we added to a user's libvirt
    autogroup_original: str | None = None            # "1": we turned scheduler autogroup off

    @classmethod
    def load(cls) -> "LabState":
        path = paths.lab_dir() / "state.json"
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text())
            version = data.pop("schema_version", None)
            if version != STATE_VERSION:
                raise LabError(f"{path} has schema version {version!r}, this vbench reads "
                               f"{STATE_VERSION}; run `vbench lab down --force` to reset it")
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise LabError(f"{path} is unreadable ({exc}); run `vbench lab down --force` to reset it") from exc

    def save(self) -> None:
        data = {"schema_version": STATE_VERSION, **self.__dict__}
        atomic_write(paths.lab_dir() / "state.json", json.dumps(data, indent=2) + "\n", mode=0o600)

    def clear(self) -> None:
        try:
            (paths.lab_dir() / "state.json").unlink()
        except FileNotFoundError:
            pass


# ---- checks ----------------------------------------------------------------------------------

REQUIRED_BINARIES = {
    "libvirtd": "libvirt-daemon-system", "virtlogd": "libvirt-daemon-system",
    "qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils", "ip": "iproute2",
    "dnsmasq": "dnsmasq-base",
}


def _require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the local lab needs root (namespaces, libvirtd, /dev/kvm): run vbench as root, "
                       "or use --connect URI with a libvirt you can reach")


def _require_binaries(names=REQUIRED_BINARIES) -> None:
    missing = [n for n in names if not shutil.which(n) and not Path("/usr/sbin", n).exists()]
    if missing:
        pkgs = sorted({REQUIRED_BINARIES[m] for m in missing})
        raise LabError(f"missing {', '.join(missing)}: run `scripts/setup.sh` as root "
                       f"(or apt-get install {' '.join(pkgs)})")


def _socket_answers(path: Path) -> bool:
    if not path.exists():
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


# ---- /dev/kvm --------------------------------------------------------------------------------

def _fix_kvm_permissions(state: LabState) -> str | None:
    """Let the qemu user open /dev/kvm; without it libvirt re-probes QEMU on every createXML
    (60-90 s each, see LAB-NOTES). Records the original owner/mode so ``down`` restores it."""
    dev = Path("/dev/kvm")
    if not dev.exists():
        return None
    st = dev.stat()
    try:
        kvm_gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        return "no 'kvm' group on this host; /dev/kvm left as it is"
    if st.st_gid == kvm_gid and (st.st_mode & 0o060) == 0o060:
        return None
    if state.kvm_original is None:
        state.kvm_original = {"uid": st.st_uid, "gid": st.st_gid, "mode": stat.S_IMODE(st.st_mode)}
        state.save()  # on disk before the change: a crash in between must not lose the original
    os.chown(dev, 0, kvm_gid)
    os.chmod(dev, 0o660)
    return f"/dev/kvm was {oct(stat.S_IMODE(st.st_mode))} gid {st.st_gid}; set to root:kvm 0660"


def _restore_kvm_permissions(state: LabState) -> None:
    orig = state.kvm_original
    dev = Path("/dev/kvm")
    if orig and dev.exists():
        os.chown(dev, orig["uid"], orig["gid"])
        os.chmod(dev, orig["mode"])
    state.kvm_original = None


# ---- the scheduler's autogroup (vbench.host.sched) ------------------------------------------------

def _autogroup_off(state: LabState) -> str | None:
    """Turn the host scheduler's autogroup off for the lab's measurements, the old value on disk
    first (``down`` turns it on again); a line for the user, or None when it was not on."""
    if sched.read() != "1":
        return None
    state.autogroup_original = "1"
    state.save()
    off, line = sched.turn_off()
    if not off:
        state.autogroup_original = None
        state.save()
    return line


# ---- daemons ---------------------------------------------------------------------------------

def _start_daemon(state: LabState, name: str, argv: list[str], pidfile: Path, ready) -> None:
    ours = state.daemons.get(name)
    if ours and procs.alive(procs.ProcRef.from_dict(ours)):
        return
    existing = procs.read_pidfile(pidfile)
    if existing and procs.ref(existing) is not None:
        if name == "libvirtd":
            raise LabError(f"a libvirtd that vbench did not start is running (pid {existing}); vbench "
                           f"will not touch it. Use it with `--connect qemu:///system` (no lab "
                           f"namespace), or stop it and run `vbench lab up` again")
        return  # a virtlogd someone else started serves us as well; it is not ours to stop
    res = procs.run(netns.exec_argv(state.netns, argv), timeout=30, check=False)
    if not res.ok:
        raise LabError(f"{name} failed to start: {res.tail()}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pid = procs.read_pidfile(pidfile)
        ref = procs.ref(pid, name) if pid else None
        if ref is not None and ready():
            state.daemons[name] = ref.to_dict()
            state.save()
            return
        time.sleep(0.2)
    raise LabError(f"{name} did not come up within 30 s; see /var/log/libvirt/ and run "
                   f"`vbench lab down` before trying again")


# ---- public API ------------------------------------------------------------------------------

@dataclass
class Lab:
    """The lab as seen by the rest of vbench: where to connect, which namespace, which networks,
    and the host whose libvirt runs the guests (:mod:`vbench.host.hosts`: ask it, never which
    kind it is). Without ``host`` it is this machine's: the lab with a namespace, else a user's
    libvirt."""

    uri: str
    netns: str | None
    state: LabState
    host: Host = field(default=None)  # type: ignore[assignment]  # set in __post_init__

    def __post_init__(self) -> None:
        if self.host is None:
            self.host = hosts.for_uri(self.uri, self.netns, self.state)

    def dhcp_seen(self, mac: str, network: str = MGMT.name) -> bool | None:
        """Whether the lab's DHCP server logged a request from ``mac``; None when it cannot tell
        (a user's libvirt or another host, or a lab brought up before its dnsmasq logged)."""
        return self.host.dhcp_seen(mac, network)

    @property
    def mgmt(self) -> LabNetwork:
        return MGMT

    @property
    def test(self) -> LabNetwork:
        return TEST


def up(connect: str | None = None, progress=print) -> Lab:
    """Bring the lab up (idempotent) and return it."""
    from vbench.host import libvirtd

    if connect is not None:
        uris.check_uri(connect)
    state = LabState.load()
    session = None
    if connect and uris.is_remote(connect):
        session = remotehost.RemoteHost.open(connect)  # pinned; libvirt over its own ssh
        connect = session.libvirt_uri
    if connect:
        # A user's own libvirt: no namespace, no daemons; only vbench's isolated networks are
        # added, and recorded apart from the local lab so that neither record clobbers the other.
        conn = libvirtd.open_connection(connect)
        try:
            check_subnets(conn, connect)
            for net in NETWORKS:
                if libvirtd.ensure_network(conn, net.name, net.xml()):
                    progress(f"started libvirt network {net.name} ({net.cidr} on {net.bridge}) "
                             f"in {connect}")
                    state.external.setdefault(connect, [])
                    if net.name not in state.external[connect]:
                        state.external[connect].append(net.name)
        finally:
            conn.close()
        state.save()
        if session is None and sched.read() == "1":  # this host's, and not vbench's to change
            progress(sched.LEFT_ON)
        return Lab(connect, None, state, hosts.for_uri(connect, None, state, session))
    else:
        _require_root()
        _require_binaries()
        state.uri = LAB_URI
        state.netns = NETNS
        if not netns.exists(NETNS):
            netns.create(NETNS)
            state.netns_created = True
            progress(f"created network namespace {NETNS}")
        state.save()
        for note in (_fix_kvm_permissions(state), _autogroup_off(state)):
            if note:
                progress(note)
        state.save()
        _start_daemon(state, "virtlogd", ["virtlogd", "-d"], VIRTLOGD_PIDFILE,
                      lambda: Path("/run/libvirt/virtlogd-sock").exists())
        _start_daemon(state, "libvirtd", ["libvirtd", "-d"], LIBVIRTD_PIDFILE,
                      lambda: _socket_answers(LIBVIRT_SOCK))
    _start_own_networks(state, progress)
    return Lab(state.uri, state.netns, state)


def _start_own_networks(state: LabState, progress) -> None:
    """The lab's networks in its own namespace, without firewall rules (LabNetwork.xml), and the
    namespace's IPv4 forwarding off again: its guests talk to the host, never through it."""
    from vbench.host import libvirtd

    conn = libvirtd.open_connection(state.uri)
    try:
        for net in NETWORKS:
            _drop_firewalled(conn, net, state, progress)
            if libvirtd.ensure_network(conn, net.name, net.xml(dhcp_log=str(dhcp_log(net.name)),
                                                                firewall=False)):
                progress(f"started libvirt network {net.name} ({net.cidr} on {net.bridge})")
            if net.name not in state.networks:
                state.networks.append(net.name)
    finally:
        conn.close()
    state.save()
    # libvirt turns forwarding on when it starts an open network; the guests talk to the host,
    # never through it. One write, read back: forwarding left on is an error, not a lab.
    if netns.ip_forwarding(NETNS, on=False):
        raise LabError(f"IPv4 forwarding in network namespace {NETNS} stays on after turning it "
                       f"off; run 'vbench lab down' and 'vbench lab up' again")


def _drop_firewalled(conn, net: LabNetwork, state: LabState, progress) -> None:
    """Remove the lab's network ``net`` when an older vbench started it isolated (libvirt's
    firewall rules on the NIC's path, issue 25), so that it is started again without them; only a
    network this lab recorded, and only while no guest runs (a running guest keeps it, said so)."""
    from vbench.host import libvirtd

    xml = libvirtd.network_xml(conn, net.name)
    if xml is None or forward_mode(xml) == "open" or net.name not in state.networks:
        return
    if conn.numOfDomains() > 0:
        progress(f"libvirt network {net.name} still has libvirt's firewall rules (started by an "
                 f"older vbench) and guests are running: left as it is, and runs record it; "
                 f"`vbench lab down` then `vbench lab up` drops them")
        return
    if libvirtd.destroy_network(conn, net.name):
        progress(f"removed libvirt network {net.name}: an older vbench started it with libvirt's "
                 f"firewall rules on the path; starting it again without them (libvirt keeps its "
                 f"emptied top-level chains in the namespace: `vbench lab down` then `vbench lab "
                 f"up` leaves none)")


def current(connect: str | None = None) -> Lab:
    """The lab as it is now, without changing anything; a clear error when it is not up."""
    from vbench.host import libvirtd

    if connect is not None:
        uris.check_uri(connect)
    state = LabState.load()
    if connect and uris.is_remote(connect):
        raise LabError(f"{connect}: guest checks are not supported on a remote host yet "
                       f"(`vbench run` is)")
    uri = connect or state.uri
    ns = None if connect else state.netns
    if not connect:
        lv = state.daemons.get("libvirtd")
        if not lv or not procs.alive(procs.ProcRef.from_dict(lv)):
            raise LabError("the vbench lab is not up (libvirtd is not running): run `vbench lab up`")
    conn = libvirtd.open_connection(uri)
    try:
        for net in NETWORKS:
            if not libvirtd.network_active(conn, net.name):
                raise LabError(f"libvirt network {net.name} is not active: run `vbench lab up`")
    finally:
        conn.close()
    return Lab(uri, ns, state)


def down(progress=print, force: bool = False) -> list[str]:
    """Remove everything the lab record says vbench made. Returns what was done."""
    from vbench.host import libvirtd

    done: list[str] = []
    try:
        state = LabState.load()
    except LabError:
        if not force:
            raise
        state = LabState()
    _down_external(state, done)
    lv = state.daemons.get("libvirtd")
    if lv and procs.alive(procs.ProcRef.from_dict(lv)):
        _down_guests_and_networks(state, done)
    state.networks = []
    for net in NETWORKS:
        dhcp_log(net.name).unlink(missing_ok=True)
    for name in ("libvirtd", "virtlogd"):
        d = state.daemons.pop(name, None)
        if d and procs.stop(procs.ProcRef.from_dict(d)):
            done.append(f"stopped {name} (pid {d['pid']})")
    if state.netns_created and state.netns:
        netns.delete(state.netns)
        done.append(f"deleted network namespace {state.netns}")
    state.netns_created = False
    if state.kvm_original:
        _restore_kvm_permissions(state)
        done.append("restored /dev/kvm owner and mode")
    said = sched.restore(state.autogroup_original)
    if said:
        done.append(said)
    state.autogroup_original = None
    libvirtd.remove_guest_dirs(done)
    state.clear()
    for line in done:
        progress(line)
    return done


def _down_external(state: LabState, done: list[str]) -> None:
    """vbench's guests and networks in users' own libvirts (``up(connect=...)``)."""
    from vbench.host import libvirtd

    for uri, nets in list(state.external.items()):
        try:
            conn = libvirtd.open_connection(uri)
        except LabError:
            continue
        try:
            for name in libvirtd.destroy_tagged_domains(conn):
                done.append(f"destroyed guest {name} in {uri}")
            for name in nets:
                if libvirtd.destroy_network(conn, name):
                    done.append(f"removed network {name} from {uri}")
        finally:
            conn.close()
    state.external = {}


def _down_guests_and_networks(state: LabState, done: list[str]) -> None:
    """vbench's guests and networks in the lab's own libvirtd (while it still runs)."""
    from vbench.host import libvirtd

    try:
        conn = libvirtd.open_connection(state.uri)
    except LabError:
        return
    try:
        for name in libvirtd.destroy_tagged_domains(conn):
            done.append(f"destroyed guest {name}")
        for name in list(state.networks):
            if libvirtd.destroy_network(conn, name):
                done.append(f"removed network {name}")
    finally:
        conn.close()


def status(connect: str | None = None) -> list[tuple[str, str]]:
    """What is up, as (item, state) rows for the CLI."""
    from vbench.host import images
    from vbench.host import libvirtd

    if connect is not None:
        uris.check_uri(connect)
    rows: list[tuple[str, str]] = []
    state = LabState.load()
    uri = connect or state.uri
    if not connect:
        rows.append(("namespace", f"{state.netns} (present)" if state.netns and netns.exists(state.netns)
                     else "absent"))
        for name in ("virtlogd", "libvirtd"):
            d = state.daemons.get(name)
            ok = d is not None and procs.alive(procs.ProcRef.from_dict(d))
            rows.append((name, f"running, pid {d['pid']} (started by vbench)" if d is not None and ok
                         else "not running"))
    dev = Path("/dev/kvm")
    if dev.exists():
        st = dev.stat()
        rows.append(("/dev/kvm", f"mode {oct(stat.S_IMODE(st.st_mode))} gid {st.st_gid}, module {kvm_module()}"))
    else:
        rows.append(("/dev/kvm", "absent"))
    if not (connect and uris.is_remote(connect)):  # this host's; a remote one's is its runs'
        rows.append(("scheduler", sched.this_host() + (
            " (turned off by vbench's lab; `vbench lab down` turns it on again)"
            if state.autogroup_original == "1" and not connect else "")))
    try:
        conn = libvirtd.open_connection(uri)
    except LabError as exc:
        rows.append(("libvirt", str(exc)))
        return rows
    try:
        rows.append(("libvirt", f"{uri} (libvirt {libvirtd.libvirt_version(conn)})"))
        for net in NETWORKS:
            xml = libvirtd.network_xml(conn, net.name)
            rows.append((f"network {net.name}",
                         f"active, {net.cidr} on {net.bridge}, {firewall_fact(forward_mode(xml))}"
                         if xml else "inactive"))
        guests = libvirtd.tagged_domains(conn)
        rows.append(("vbench guests", ", ".join(guests) if guests else "none"))
        caps_kvm = libvirtd.supports_kvm(conn)
    finally:
        conn.close()
    img = images.find_default()
    acc = probe_accelerator(img.kernel if img else None, caps_kvm, state)
    rows.append(("accelerator", f"{acc.name.upper()}: {acc.reason}"))
    rows.append(("guest image", f"{img.name} at {img.dir}" if img else "not built (run `vbench image build`)"))
    return rows
