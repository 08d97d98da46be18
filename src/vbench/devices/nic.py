"""The NIC under test, on the lab's test network (SSH goes over a separate management NIC).

virtio-net is paravirtual; QEMU's e1000, e1000e and rtl8139 are emulated. In the guest the NIC is
found by its MAC address (derived from the guest name) and must be bound to the model's driver.

Knobs of virtio-net: ``queues`` (multiqueue) and ``vhost`` (true: the in-kernel vhost-net backend,
false: QEMU's own userspace backend; unset: libvirt's choice, vhost where /dev/vhost-net exists).
A variant asking for vhost on a host without /dev/vhost-net is refused before anything boots,
never measured silently without it.

Once the guest runs, the host where QEMU runs proves which backend the NIC under test got
(:meth:`Nic.host_proof`): QEMU's command line names the ``-netdev`` behind the ``-device`` with
the test MAC and its ``vhostfd``; ``/proc/<pid>/fd`` shows whether that fd is /dev/vhost-net (a
``vhost-<pid>`` worker thread stands in when the fds cannot be read), and QEMU's log must not
say it fell back on userspace virtio after all. Per NIC, not per process: the management NIC is
virtio too and gets vhost by libvirt's default.
"""

from __future__ import annotations

import json
from typing import Any, Literal
from xml.sax.saxutils import quoteattr

from pydantic import Field, model_validator

from vbench.devices.base import (Device, DriverCheck, Fragment, GuestContext, HostProof, Model,
                                 Strict)
from vbench.core import qemulog


class NicSpec(Strict):
    """The NIC under test, on the lab's test network (SSH goes over a separate management NIC)."""

    model: Literal["virtio", "e1000", "e1000e", "rtl8139"] = "virtio"
    queues: int | None = Field(None, ge=1, le=64, description="virtio-net multiqueue")
    vhost: bool | None = Field(None, description="true: vhost-net backend; false: QEMU userspace")

    @model_validator(mode="after")
    def _virtio_knobs(self) -> "NicSpec":
        for knob in ("queues", "vhost"):
            if getattr(self, knob) is not None and self.model != "virtio":
                raise ValueError(f"{knob}: only virtio NICs have {knob} (model is {self.model!r})")
        return self


def interface_xml(network: str, mac: str, model: str, link_down: bool = False,
                  queues: int | None = None, vhost: bool | None = None) -> str:
    link = "      <link state='down'/>\n" if link_down else ""
    attrs = ("" if vhost is None else f" name='{'vhost' if vhost else 'qemu'}'") + (
        f" queues='{queues}'" if queues else "")
    driver = f"      <driver{attrs}/>\n" if attrs else ""
    return (f"    <interface type='network'>\n"
            f"      <mac address='{mac}'/>\n"
            f"      <source network={quoteattr(network)}/>\n"
            f"      <model type='{model}'/>\n{driver}{link}"
            f"    </interface>\n")


class Nic(Device):
    kind = "nic"
    spec = NicSpec
    models = (
        Model("virtio", True, ("virtio_net",), {"CONFIG_VIRTIO_NET": "virtio_net"}),
        Model("e1000", False, ("e1000",), {"CONFIG_E1000": "e1000"}),
        Model("e1000e", False, ("e1000e",), {"CONFIG_E1000E": "e1000e"}),
        # QEMU's rtl8139 is an RTL8139C+; Linux binds 8139cp to it (8139too would also do).
        Model("rtl8139", False, ("8139cp", "8139too"), {"CONFIG_8139CP": "8139cp"}),
    )
    presets = {"virtio": "virtio", "emulated": "e1000"}
    headline_metrics = ("throughput", "pps", "rtt_p50")
    facts_script = r"""for n in /sys/class/net/*; do
  [ -e "$n/device/driver" ] || continue
  echo "nic=$(cat "$n/address") $(basename "$n") $(basename "$(readlink -f "$n/device/driver")")"
done
"""

    def xml(self, spec: NicSpec, ctx: GuestContext) -> Fragment:
        return Fragment(interfaces=interface_xml(ctx.test_net, ctx.test_mac, spec.model,
                                                 queues=spec.queues, vhost=spec.vhost))

    def host_requirements(self, spec: NicSpec) -> tuple[tuple[str, str], ...]:
        return ((VHOST_NET, "vhost: true"),) if spec.vhost else ()

    def facts_init(self) -> dict[str, Any]:
        return {"nics": {}}

    def parse_fact(self, key: str, value: str, facts: dict[str, Any]) -> bool:
        if key != "nic":
            return False
        parts = value.split()
        if len(parts) == 3:
            facts["nics"][parts[0].lower()] = (parts[1], parts[2])
        return True

    def check(self, spec: NicSpec, facts: dict[str, Any], ctx: GuestContext) -> DriverCheck:
        want = self.model(spec).drivers
        nic = facts["nics"].get(ctx.test_mac.lower())
        found = nic[1] if nic else "no NIC with the test MAC"
        return DriverCheck("nic", spec.model, "|".join(want), found, found in want,
                           nic[0] if nic else "")

    def host_proof(self, spec: NicSpec, host: Any, guest_name: str,
                   ctx: GuestContext) -> HostProof | None:
        if spec.model != "virtio":
            return None
        used, evidence = vhost_on_host(host, guest_name, ctx.test_mac)
        asked = "" if spec.vhost is None else f"vhost: {str(spec.vhost).lower()}"
        return HostProof("vhost", asked, used, evidence, spec.vhost is None or used == spec.vhost)


# ---- the vhost proof: pure parsing of what the host shows, then the commands that show it --------

VHOST_NET = "/dev/vhost-net"
FALLBACK = "falling back on userspace virtio"


def qemu_options(arg: str) -> dict[str, str]:
    """A ``-netdev``/``-device`` argument as key -> value: libvirt's JSON form
    (``{"type":"tap","vhost":true,"vhostfd":"35","id":"hostnet1"}``) or QEMU's ``tap,fd=33,...``
    (a leading bare word is the ``type``/``driver``); booleans as "on"/"off"."""
    if arg.startswith("{"):
        try:
            obj = json.loads(arg)
        except ValueError:
            return {}
        if not isinstance(obj, dict):
            return {}
        return {str(k): ("on" if v else "off") if isinstance(v, bool) else str(v)
                for k, v in obj.items()}
    out = {}
    for i, item in enumerate(arg.split(",")):
        key, sep, value = item.partition("=")
        if sep:
            out[key] = value
        elif i == 0:
            out["type"] = key
    return out


def netdev_for_mac(argv: list[str], mac: str) -> dict[str, str] | None:
    """The options of the ``-netdev`` behind the ``-device`` with MAC ``mac`` on QEMU's command
    line ``argv`` (None: no such NIC, or its netdev is not there)."""
    pairs = [(argv[i], qemu_options(argv[i + 1])) for i in range(len(argv) - 1)
             if argv[i] in ("-device", "-netdev")]
    dev = next((o for flag, o in pairs if flag == "-device"
                and o.get("mac", "").lower() == mac.lower()), None)
    if dev is None or "netdev" not in dev:
        return None
    return next((o for flag, o in pairs if flag == "-netdev" and o.get("id") == dev["netdev"]),
                None)


def open_fds(listing: str) -> dict[str, str]:
    """fd number -> target from ``ls -l /proc/<pid>/fd``
    (``lrwx------ 1 root root 64 Dec  5 07:00 35 -> /dev/vhost-net``)."""
    out = {}
    for line in listing.splitlines():
        left, sep, target = line.partition(" -> ")
        words = left.split()
        if sep and words and words[-1].isdigit():
            out[words[-1]] = target.strip()
    return out


def vhost_threads(ps_comm: str, pid: int) -> int:
    """How many ``vhost-<pid>`` threads ``ps -eLo comm=`` lists: vhost-net's workers for QEMU
    ``pid`` (kernel threads before Linux 6.4, threads of the QEMU process since)."""
    return sum(1 for line in ps_comm.splitlines() if line.strip() == f"vhost-{pid}")


def vhost_evidence(netdev: dict[str, str], pid: int, fds: str | None,
                   ps_comm: str | None) -> tuple[bool | None, str]:
    """Whether the NIC backed by ``netdev`` uses vhost-net, with the evidence, from the QEMU
    process ``pid``'s fd listing and the host's thread names (either None: could not be read).
    None: the netdev asks for vhost but nothing readable shows it (cannot tell)."""
    nd = netdev.get("id", "?")
    wanted = [f for f in (netdev.get("vhostfds") or netdev.get("vhostfd") or "").split(":") if f]
    if not wanted and netdev.get("vhost", "off") not in ("on", "true", "yes"):
        return False, "none"
    table = open_fds(fds) if fds is not None else None
    if table is not None and wanted:  # libvirt opened /dev/vhost-net and passed the fds
        if all(table.get(f) == VHOST_NET for f in wanted):
            return True, f"{VHOST_NET} open as fd {', '.join(wanted)} (netdev {nd})"
        return False, f"vhostfd {', '.join(wanted)} of netdev {nd} is not {VHOST_NET}"
    own = [f for f, t in (table or {}).items() if t == VHOST_NET]  # QEMU opened it itself
    if own:
        return True, f"{VHOST_NET} open as fd {', '.join(own)} (netdev {nd} asks for vhost)"
    if ps_comm is not None and vhost_threads(ps_comm, pid):
        return True, f"vhost-{pid} worker thread (netdev {nd} asks for vhost)"
    return None, f"netdev {nd} asks for vhost, but neither QEMU's fds nor a vhost-{pid} thread " \
                 f"show it"


def vhost_fallback(log: str) -> str | None:
    """QEMU's line saying vhost was set up but could not be started, so the NIC runs on the
    userspace backend after all (``unable to start vhost net: 38: falling back on userspace
    virtio``, e.g. without ioeventfd under TCG), from the guest's QEMU log; None: no such line.
    It does not name the NIC: any such line counts against every vhost NIC of that QEMU."""
    return next((line.strip() for line in log.splitlines() if FALLBACK in line), None)


def qemu_pid_in_ps(listing: str, guest_name: str) -> int | None:
    """The pid of guest ``guest_name``'s QEMU from ``ps -ww -eo pid=,args=`` (libvirt passes
    ``-name guest=NAME,...``)."""
    want = f"guest={guest_name}"
    for line in listing.splitlines():
        words = line.split()
        if len(words) > 2 and words[0].isdigit() and "qemu" in words[1] and any(
                w == want or w.startswith(want + ",") for w in words[2:]):
            return int(words[0])
    return None


def vhost_on_host(host: Any, guest_name: str, mac: str) -> tuple[bool | None, str]:
    """Look on the host where QEMU runs (argv lists only: nothing goes through a shell) whether
    the NIC with ``mac`` in guest ``guest_name`` uses vhost-net: (used, evidence)."""
    def out(argv: list[str]) -> str | None:
        res = host.run(argv, timeout=30)
        return res.stdout if res.ok else None

    pid = host.qemu_pid(guest_name) or qemu_pid_in_ps(
        out(["ps", "-ww", "-eo", "pid=,args="]) or "", guest_name)
    if pid is None:
        return None, f"QEMU of {guest_name} not found on the host"
    netdev = netdev_for_mac((out(["cat", f"/proc/{pid}/cmdline"]) or "").split("\0"), mac)
    if netdev is None:
        return None, f"no NIC with MAC {mac} on QEMU's command line (pid {pid})"
    used, evidence = vhost_evidence(netdev, pid, out(["ls", "-l", f"/proc/{pid}/fd"]),
                                    out(["ps", "-eLo", "comm="]))
    if used:  # set up, but did QEMU start it? (unreadable log: the fds are the evidence)
        line = vhost_fallback(qemulog.read_tail(host, guest_name))
        if line:
            return False, f"{evidence}, but QEMU's log says: {line}"
    return used, evidence


DEVICE = Nic()
