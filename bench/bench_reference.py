#!/usr/bin/env python3
"""Reference bench: each probe in raw QEMU without vbench's machinery, against the same job
through vbench, interleaved round by round (issue 25). Run as root on a quiet host with the lab
up and the image built; `--only raw` needs neither the lab nor libvirt.

Raw side, per device and round: a fresh qcow2 overlay of vbench's image, the scratch disk made by
vbench's own code, and QEMU started by hand with the device set of the domain XML vbench would
define for that variant (rendered by ``vbench.guest.xml.domain_xml``, translated element by element;
an element the bench cannot translate is an error) minus the management NIC: no SSH, no libvirt,
no DHCP. The NIC under test sits on a tap in a bridge inside a namespace of the bench's own
(``vbref-<pid>``), with the iperf3 servers on that bridge. The probe is a shell script carried on
the kernel command line (``systemd.run=``, gzip+base64; vbench's image needs nothing new): it
waits until the boot's other jobs are done, runs the same commands vbench's workloads build
(``fio_argv``, ``iperf3_client_argv``, ping's ``g2h_command``, the entropy probe's hwrng read;
same ``timeout`` wrappers), then writes its output base64-encoded between markers to the serial
console (with a SHA-256) and powers the guest off. Both sides' outputs go through vbench's own
parsers; the compared number is each workload's headline metric (vbench.workloads).

With ``--raw-net lab`` the raw side's tap sits on the lab's own test bridge, inside the lab's
namespace (the lab's DHCP server and whatever the lab's network puts on the path), added before each raw
boot and removed after it; the raw guest takes an address outside the lab's DHCP range. Raw
against raw in the two places splits "vbench's machinery" from "the lab's network".
With ``--raw-launch libvirt`` the lab's libvirt starts the raw guest from vbench's own domain XML
(its whole device set, the management NIC left down) with the probe on its kernel command line:
raw against raw started the two ways splits libvirt and the device set from vbench's session.

vbench side, per round: ``vbench run`` of a generated scenario with the same jobs (one variant per
device), its samples read back from the run directory. ``--vbench-guests alone``: one such run per
device instead (a one-variant scenario: no sibling guest paused beside the measured one);
``both``: the two set-ups in the same rounds, each against raw, and alone against siblings.

Fail closed: a round without parseable output on either side is an error, never skipped. Ctrl-C
(or SIGTERM) kills the bench's QEMU and iperf3 servers by pid, deletes its namespace and overlays.

    python bench/bench_reference.py --rounds 5            # disk and net devices (~1 h under TCG)
    python bench/bench_reference.py --only raw --devices virtio-blk,e1000,virtio-rng --rounds 1
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import hashlib
import ipaddress
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DISK_DEVICES = {"virtio-blk": "virtio", "sata": "sata", "ide": "ide", "scsi": "scsi"}
NET_DEVICES = {"virtio-net": "virtio", "e1000": "e1000", "e1000e": "e1000e", "rtl8139": "rtl8139"}
RNG_DEVICES = {"virtio-rng": "virtio"}
DEFAULT_DEVICES = "virtio-blk,sata,ide,virtio-net,e1000,rtl8139"
FLAG = 0.05           # |difference| above this is flagged
MARK = "VBREF"        # the console lines the guest writes its output on
CMDLINE_MAX = 2000    # x86's COMMAND_LINE_SIZE is 2048
TAP, BRIDGE = "vbrtap0", "vbrbr0"
# The raw guest's address: outside the lab's DHCP range (net[10] .. net[-6]), so that with
# --raw-net lab it can sit on the lab's test bridge without taking a lease a guest could get.
RAW_GUEST_HOST = -4
# QEMU's seccomp filter as libvirt sets it when qemu.conf's seccomp_sandbox is on (its default):
# every syscall of the QEMU process runs through it.
SANDBOX = {"off": [], "libvirt": ["-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,"
                                              "resourcecontrol=deny"]}


class BenchError(Exception):
    pass


def tap_options(model: str, accel: str, vhost_dev: str = "/dev/vhost-net") -> str:
    """The tap as libvirt 9 opens it for a NIC of ``model`` (measured here: the lab's taps'
    /sys/class/net/*/tun_flags): with the virtio-net header (IFF_VNET_HDR) for virtio only, so
    QEMU's e1000 and rtl8139 cannot hand their TSO segments to the host kernel and segment them
    themselves; vhost-net for virtio only in a KVM domain (libvirt gives a plain QEMU/TCG domain
    none) and only where /dev/vhost-net exists. The bench's tap is made with IFF_VNET_HDR; QEMU
    sets the flags again when it opens it."""
    if model != "virtio":
        return ",vnet_hdr=off"
    return ",vnet_hdr=on" + (",vhost=on" if accel == "kvm" and os.path.exists(vhost_dev) else "")


# ---- the jobs: one generated scenario per device kind, the same for both sides ------------------

def scenario_text(kind: str, devices: list[str], runtime: int, disk_gib: float,
                  vcpus: int = 2) -> str:
    """The scenario both sides run (the raw side takes its jobs, device profiles and guest size
    from it)."""
    device, field, models = {"disk": ("disk", "bus", DISK_DEVICES),
                             "rng": ("rng", "model", RNG_DEVICES)}.get(kind, ("nic", "model",
                                                                            NET_DEVICES))
    variants = "".join(f"  - name: {d}\n    {device}: {{{field}: {models[d]}}}\n" for d in devices)
    extra, workloads = "", ""
    if kind == "disk":
        extra = (f"defaults:\n  disk: {{size_gib: {disk_gib}}}\n"
                 f"fio_defaults: {{runtime: {runtime}, ramp_time: 2}}\n")
        workloads = ("\n  - name: randread-4k-qd32\n    fio: {rw: randread, bs: 4k, iodepth: 32}\n"
                     "  - name: randwrite-4k-qd32\n    fio: {rw: randwrite, bs: 4k, iodepth: 32}\n")
    elif kind == "rng":
        workloads = "\n  - name: hwrng\n    entropy: {read_bytes: 1048576}\n"
    else:
        # the layout vbench uses by default; a 1-vCPU guest has only one (vbench.workloads.placement)
        place = "split" if vcpus >= 2 else "free"
        workloads = ("\n"
                     f"  - name: tcp-1\n    iperf3: {{protocol: tcp, parallel: 1, duration: {runtime}, "
                     f"omit: 2, placement: {place}}}\n"
                     "  - name: rtt\n    ping: {count: 200, interval: 0.01, directions: [g2h]}\n")
    return (f"name: vbref-{'net' if device == 'nic' else kind}\n"
            "description: reference bench (bench/bench_reference.py)\n"
            f"device: {device}\nrepetitions: 1\nsmoke: true\n"
            f"guest: {{vcpus: {vcpus}, memory_mib: 1024, machine: pc}}\n"
            f"{extra}variants:\n{variants}workloads:{workloads}")


# ---- raw QEMU: the device set of vbench's domain XML, translated ------------------------------

@dataclass
class Raw:
    """What one raw boot needs: files, and the QEMU argv built from the variant's domain XML."""

    dir: Path
    argv: list[str] = field(default_factory=list)
    cmdline: str = ""
    has_nic: bool = False


def _drive(node_id: str, path: str, fmt: str, cache: str, aio: str) -> list[str]:
    return ["-drive", f"file={path.replace(',', ',,')},if=none,id={node_id},format={fmt},"
                      f"cache={cache},aio={aio}"]


def qemu_args_from_xml(xml: str, machine: str, mgmt_net: str, test_net: str,
                       tap: str, accel: str = "tcg") -> tuple[list[str], bool]:
    """QEMU device arguments of a vbench domain XML's <devices>, without the management NIC.

    Mirrors what libvirt 9 starts for it (its log's command line): -nodefaults, and libvirt's
    implicit PIIX3 UHCI USB controller on pc unless the XML says ``<controller type='usb'
    model='none'/>`` (vbench's guests do). Any element this does not know is an error: the reference
    must have exactly vbench's device set, never a silently smaller one.
    """
    root = ET.fromstring(xml)
    devs = root.find("devices")
    if devs is None:
        raise BenchError("domain XML without <devices>")
    args: list[str] = []
    if not (machine == "pc" or machine.startswith("pc-i440fx")):
        raise BenchError(f"machine {machine}: the bench only knows libvirt's pc device set")
    if not any(el.tag == "controller" and el.get("type") == "usb" for el in devs):
        args += ["-device", "piix3-usb-uhci,id=usb,bus=pci.0,addr=0x1.0x2"]  # libvirt's default
    has_nic = False
    n_disk = 0
    for el in devs:
        if el.tag == "disk":
            drv, src, tgt = el.find("driver"), el.find("source"), el.find("target")
            if drv is None or src is None or tgt is None or el.get("device") != "disk":
                raise BenchError(f"cannot translate disk element: {ET.tostring(el)[:200]!r}")
            serial = el.findtext("serial")
            nid = f"drive{n_disk}"
            n_disk += 1
            cache = drv.get("cache", "writeback")
            io = drv.get("io", "threads")
            args += _drive(nid, src.get("file", ""), drv.get("type", "raw"), cache, io)
            bus = tgt.get("bus")
            ser = f",serial={serial}" if serial else ""
            if bus == "virtio":
                args += ["-device", f"virtio-blk-pci,drive={nid}{ser}"
                                    + (",bootindex=1" if n_disk == 1 else "")]  # boot disk first
            elif bus == "sata":
                args += ["-device", "ich9-ahci,id=sata0",
                         "-device", f"ide-hd,bus=sata0.0,drive={nid}{ser}"]
            elif bus == "ide":
                args += ["-device", f"ide-hd,bus=ide.0,unit=0,drive={nid}{ser}"]
            elif bus == "scsi":
                args += ["-device", "virtio-scsi-pci,id=scsi0",
                         "-device", f"scsi-hd,bus=scsi0.0,drive={nid}{ser}"]
            else:
                raise BenchError(f"cannot translate disk bus {bus!r}")
        elif el.tag == "controller" and el.get("type") == "usb" and el.get("model") == "none":
            pass  # no USB controller: none added above
        elif el.tag == "controller" and el.get("type") == "scsi" and el.get("model") == "virtio-scsi":
            if el.find("driver") is not None:
                raise BenchError("virtio-scsi controller knobs are not translated")
            # added with its disk above
        elif el.tag == "interface":
            net = (el.find("source") if el.find("source") is not None else ET.Element("x")).get("network")
            if net == mgmt_net:
                continue  # the machinery under test: no management NIC in the reference
            if net != test_net or el.find("driver") is not None:
                raise BenchError(f"cannot translate interface on {net!r} (or its driver knobs)")
            mac = el.find("mac").get("address")  # type: ignore[union-attr]
            model = el.find("model").get("type")  # type: ignore[union-attr]
            qdev = {"virtio": "virtio-net-pci", "e1000": "e1000", "e1000e": "e1000e",
                    "rtl8139": "rtl8139"}[model]  # type: ignore[index]
            args += ["-netdev", f"tap,id=hostnet1,ifname={tap},script=no,downscript=no"
                                f"{tap_options(model, accel)}",
                     "-device", f"{qdev},netdev=hostnet1,mac={mac}"]
            has_nic = True
        elif el.tag == "rng":
            if el.get("model") != "virtio" or el.find("rate") is not None:
                raise BenchError("only a plain virtio-rng is translated")
            backend = el.findtext("backend") or "/dev/urandom"
            args += ["-object", f"rng-random,id=objrng0,filename={backend}",
                     "-device", "virtio-rng-pci,rng=objrng0"]
        elif el.tag == "memballoon":
            if el.get("model") != "none":
                args += ["-device", "virtio-balloon-pci,id=balloon0"]
        elif el.tag == "serial":
            pass  # the bench's own console file, added by the caller
        elif el.tag == "panic":
            args += ["-device", "pvpanic,ioport=1285"]
        else:
            raise BenchError(f"the bench cannot translate <{el.tag}> of vbench's domain XML")
    return args, has_nic


# ---- the probe script, carried on the kernel command line ----------------------------------

SETTLE = """i=0
while [ $i -lt 600 ]; do
  n=$(systemctl list-jobs --no-legend 2>/dev/null | grep -v -e kernel-command-line -e '\\.target ' | wc -l)
  [ "$n" = 0 ] && break
  i=$((i+1)); sleep 0.5
done
sleep 2
"""

EMIT = """dmesg -n 1
{ echo "@M@-BEGIN"; base64 -w 72 /run/vbref.out | sed 's/^/@M@ /'
  echo "@M@-END $(sha256sum < /run/vbref.out | cut -c1-64)"; } > /dev/ttyS0
""".replace("@M@", MARK)


def probe_script(steps: list[tuple[str, str]], setup: str = "") -> str:
    """A POSIX sh script: settle, ``setup``, each (name, command) with its output and exit status
    appended to /run/vbref.out between ``### name`` / ``### rc=N`` lines, then the output on the
    console."""
    body = [SETTLE, setup, ": > /run/vbref.out\n"]
    for name, cmd in steps:
        body.append(f"echo '### {name}' >> /run/vbref.out\n{{ {cmd}\n}} >> /run/vbref.out 2>&1\n"
                    f"echo \"### rc=$?\" >> /run/vbref.out\n")
    body.append(EMIT)
    return "".join(body)


def script_cmdline(script: str) -> str:
    blob = base64.b64encode(gzip.compress(script.encode(), 9, mtime=0)).decode()
    return (f"systemd.run=\"/bin/sh -c 'echo {blob} | base64 -d | gunzip | sh'\" "
            "systemd.run_success_action=poweroff systemd.run_failure_action=poweroff")


def read_console(text: str) -> str:
    """The probe's output from the console log; BenchError when it is missing or damaged."""
    lines = text.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == f"{MARK}-BEGIN")
    except StopIteration:
        raise BenchError("the guest wrote no probe output to its console") from None
    chunks, digest = [], None
    for ln in lines[start + 1:]:
        ln = ln.strip()
        if ln.startswith(f"{MARK}-END "):
            digest = ln.split()[1]
            break
        if ln.startswith(f"{MARK} "):
            chunks.append(ln[len(MARK) + 1:])
    if digest is None:
        raise BenchError("the probe output on the console has no end marker (truncated)")
    try:
        data = base64.b64decode("".join(chunks), validate=True)
    except ValueError:
        raise BenchError("the probe output on the console is damaged (base64)") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise BenchError("the probe output on the console is damaged (checksum)")
    return data.decode(errors="replace")


def split_steps(out: str) -> dict[str, tuple[int, str]]:
    """``### name`` ... ``### rc=N`` sections -> name -> (exit status, output)."""
    got: dict[str, tuple[int, str]] = {}
    for m in re.finditer(r"^### (\S+)\n(.*?)^### rc=(\d+)$", out, re.S | re.M):
        got[m.group(1)] = (int(m.group(3)), m.group(2))
    return got


@dataclass
class Job:
    """One measured step of a guest: its sample name (vbench's), shell command, parser, headline
    metric, and the host-side server it needs (argv) if any."""

    name: str
    cmd: str
    parse: object
    metric: str
    server: list[str] | None = None


def guest_jobs(scn, w, guest_ip: str, host_ip: str) -> list[Job]:
    """The steps of workload ``w`` in the raw guest: the commands each workload's own ``run``
    builds (vbench.workloads.*), run by the probe script instead of over SSH."""
    from vbench.core import procs
    from vbench.workloads.entropy import entropy_probe_script, parse_entropy
    from vbench.workloads.fio import FIO_TIMEOUT_SLACK_S, fio_argv, parse_fio_json
    from vbench.workloads.iperf3 import (iperf3_client_argv, iperf3_server_argv,
                                         parse_iperf3_json)
    from vbench.workloads.ping import g2h_command, parse_ping

    spec = getattr(w, w.tool)
    metric = w.kind.headline_of(spec)
    if w.tool == "fio":
        runtime, ramp = scn.fio_runtime(w)
        argv = procs.killed_after(runtime + ramp + FIO_TIMEOUT_SLACK_S) + fio_argv(
            w.name, "VBREFDEV", scn.fio_options(w), runtime, ramp)
        return [Job(w.name, shlex.join(argv).replace("VBREFDEV", '"$dev"'), parse_fio_json,
                    metric)]
    if w.tool == "iperf3":
        out = []
        for i, direction in enumerate(spec.directions):
            port = 5201 + i
            argv = iperf3_client_argv(host_ip, port, spec.duration, spec.omit, spec.parallel,
                                      reverse=(direction == "h2g"), udp=spec.protocol == "udp",
                                      bitrate=spec.bitrate, length=spec.length, bind=guest_ip)
            bound = spec.duration + spec.omit + 30
            out.append(Job(f"{w.name}-{direction}",
                           placed_command(procs.killed_after(bound), argv, guest_ip,
                                          spec.placement),
                           placed_parser(parse_iperf3_json, spec.placement, scn.guest.vcpus),
                           metric, iperf3_server_argv(host_ip, port)))
        return out
    if w.tool == "ping":
        if list(spec.directions) != ["g2h"]:
            raise BenchError("ping: the reference runs guest-to-host only (directions: [g2h])")
        return [Job(f"{w.name}-g2h", g2h_command(host_ip, spec), parse_ping, metric)]
    if w.tool == "entropy":
        script = entropy_probe_script(spec.read_bytes, spec.timeout_s)
        return [Job(w.name, "sh -s <<'VBENCH_EOF'\n" + script + "\nVBENCH_EOF", parse_entropy,
                    metric)]
    raise BenchError(f"workload tool {w.tool} is not in the reference bench")


def placed_command(bound: list[str], argv: list[str], guest_ip: str, placement: str) -> str:
    """The probe's shell line under the workload's placement (vbench.workloads.placement): with
    ``split`` the layout script's lines come first in the step's output, then the probe pinned to
    the vCPU it named; when the script fails, its lines alone (the parser says why)."""
    from vbench.workloads.placement import set_script

    if placement == "free":
        return shlex.join(bound + argv)
    f = "/run/vbref.place"
    # afterwards each interrupt gets its vCPU list back (``was=``), as vbench's placed_run does,
    # so that the boot's next step (ping) runs in the guest's own layout
    undo = (f"set -- $(sed -n 's/^was=//p' {f})\n"
            f"for i in $(sed -n 's/^irqs=//p' {f} | tr , ' '); do "
            "echo \"$1\" > /proc/irq/$i/smp_affinity_list; shift; done\n")
    return (f"if ( {set_script(guest_ip)}) > {f}; then cat {f}\n"
            f"  {shlex.join(bound)} taskset -c \"$(sed -n 's/^probe_cpu=//p' {f})\" "
            f"{shlex.join(argv)}\n{undo}else cat {f}; fi")


def placed_parser(parse, placement: str, vcpus: int):
    """``parse`` after checking the layout lines (:func:`placed_command`): fail closed."""
    from vbench.workloads.placement import parse_set

    if placement == "free":
        return parse

    def both(text: str, name: str):
        parse_set(text, vcpus)
        return parse(text, name)
    return both


def sample_names(w) -> list[str]:
    """The sample workload names of ``w`` (as vbench's workloads name them: iperf3 and ping per
    direction)."""
    if w.tool in ("iperf3", "ping"):
        return [f"{w.name}-{d}" for d in getattr(w, w.tool).directions]
    return [w.name]


# ---- raw rounds ---------------------------------------------------------------------------

class Cleanup:
    """Everything the raw side started, undone on exit, Ctrl-C or SIGTERM: pids, namespace, dir."""

    def __init__(self) -> None:
        self.pids: list[subprocess.Popen] = []
        self.netns: str | None = None
        self.netns_owned = True   # False: the lab's namespace (--raw-net lab), never deleted here
        self.taps: list[str] = []  # taps the bench added to a namespace it does not own
        self.dirs: list[Path] = []

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc in self.pids:
            self.pids.remove(proc)

    def drop_taps(self) -> None:
        """Remove the taps the bench added to the lab's namespace (after each raw boot, and on
        exit)."""
        for tap in self.taps:
            subprocess.run(["ip", "-n", self.netns or "", "link", "del", tap], check=False)
        self.taps.clear()

    def all(self) -> None:
        for p in list(self.pids):
            with contextlib.suppress(Exception):
                self.stop(p)
        self.drop_taps()
        if self.netns and self.netns_owned:
            subprocess.run(["ip", "netns", "delete", self.netns], check=False)
        self.netns = None
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)
        self.dirs.clear()


def sh(argv: list[str]) -> None:
    cp = subprocess.run(argv, capture_output=True, text=True)
    if cp.returncode != 0:
        raise BenchError(f"{shlex.join(argv)}: {cp.stderr.strip()[-300:]}")


def make_netns(cu: Cleanup, host_ip: str, prefix: int) -> str:
    ns = f"vbref-{os.getpid()}"
    sh(["ip", "netns", "add", ns])
    cu.netns = ns
    n = ["ip", "-n", ns]
    sh(n + ["link", "set", "lo", "up"])
    sh(n + ["link", "add", BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0"])
    sh(n + ["addr", "add", f"{host_ip}/{prefix}", "dev", BRIDGE])
    sh(n + ["link", "set", BRIDGE, "up"])
    add_tap(ns)
    sh(n + ["link", "set", TAP, "master", BRIDGE, "up"])
    return ns


def add_tap(ns: str) -> None:
    """The raw NIC's tap in ``ns``, with the root qdisc libvirt gives its taps: ``noqueue``
    (the lab's vnetN read ``qdisc noqueue`` in ``tc qdisc show``; a tap made by ``ip tuntap``
    gets the host's default, pfifo_fast here). The virtio-net header is the NIC's to ask for
    (``tap_options``)."""
    sh(["ip", "-n", ns, "tuntap", "add", "dev", TAP, "mode", "tap", "vnet_hdr"])
    sh(["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", TAP, "root", "noqueue"])


def use_lab_netns(cu: Cleanup, ns: str) -> None:
    """--raw-net lab: the raw side's taps go on the lab's test bridge in the lab's namespace
    (the lab's DHCP server and all), which the bench never deletes."""
    cu.netns, cu.netns_owned = ns, False


def lab_tap(cu: Cleanup, bridge: str) -> None:
    """A tap on ``bridge`` in the lab's namespace for one raw boot (removed after it, so the
    vbench side never runs beside a stray port)."""
    n = ["ip", "-n", cu.netns or ""]
    cu.taps.append(TAP)  # before it exists: a failure half-way still removes it
    add_tap(cu.netns or "")
    sh(n + ["link", "set", TAP, "master", bridge, "up"])


def raw_round(kind: str, scn, variant, cu: Cleanup, args, img) -> dict[str, float]:
    """One raw boot of ``variant``: its jobs' headline metrics by sample key."""
    from vbench.devices import DomainFiles
    from vbench.devices.disk import make_scratch
    from vbench.guest.xml import domain_xml, kernel_cmdline
    from vbench.host.images import ROOT_LABEL
    from vbench.host.networks import MGMT, TEST

    d = Path(tempfile.mkdtemp(prefix=f"vbref-{variant.name}-", dir=args.tmpdir))
    cu.dirs.append(d)
    prof = scn.profile(variant)
    scratch = d / "scratch.raw" if prof.disk else None
    files = DomainFiles(overlay=d / "overlay.qcow2", scratch=scratch, console=d / "console.log",
                        kernel=img.kernel, initrd=img.initrd)
    sh(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(img.base),
        str(files.overlay)])
    if prof.disk is not None and scratch is not None:
        make_scratch(scratch, prof.disk.size_gib, prof.disk.preallocate)
    # The cmdline vbench gives its guests (with a throwaway key: nothing logs in here).
    base_cmd = kernel_cmdline(ROOT_LABEL, "ssh-ed25519 AAAAvbrefnokey")
    xml = domain_xml(f"vbench-vbref-{os.getpid()}", prof, scn.guest, "qemu", files, base_cmd,
                     MGMT.name, TEST.name, owner_tags())
    root = ET.fromstring(xml)
    dev_args, has_nic = qemu_args_from_xml(xml, scn.guest.machine, MGMT.name, TEST.name, TAP,
                                           args.accel)
    cmdline = root.findtext("os/cmdline") or ""

    net = ipaddress.IPv4Network(TEST.cidr)
    guest_ip, host_ip = str(net[RAW_GUEST_HOST]), TEST.host_ip
    jobs = [j for w in scn.workloads for j in guest_jobs(scn, w, guest_ip, host_ip)]
    steps = [(j.name, j.cmd) for j in jobs]
    in_libvirt = args.raw_launch == "libvirt"
    if has_nic and not cu.netns_owned and not in_libvirt:
        lab_tap(cu, TEST.bridge)
    servers: list[subprocess.Popen] = []
    for j in jobs:
        if j.server is not None:
            srv = subprocess.Popen(["ip", "netns", "exec", cu.netns or "", "nice", "-n",
                                    str(args.nice), *j.server], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
            cu.pids.append(srv)
            servers.append(srv)
    setup = ""
    if kind == "disk":
        # udev may not have made the scratch disk's by-id link yet when the boot's jobs are done
        # (seen with AHCI under TCG): wait for it, up to a minute.
        setup = ("dev=''; i=0\nwhile [ -z \"$dev\" ] && [ $i -lt 120 ]; do\n"
                 "  for l in /dev/disk/by-id/*vbench-scratch; do [ -e \"$l\" ] && "
                 "dev=$(readlink -f \"$l\") && break; done\n"
                 "  [ -n \"$dev\" ] || sleep 0.5; i=$((i+1))\ndone\n")
    if has_nic:
        prefix = net.prefixlen
        eth = nic_ifname(xml, TEST.name) if in_libvirt else "eth0"  # raw QEMU: the only NIC
        setup = (f"ip link set {eth} up\nip addr add {guest_ip}/{prefix} dev {eth}\n"
                 "i=0; while [ $i -lt 120 ] && ! ping -c1 -W1 " + host_ip +
                 " >/dev/null 2>&1; do i=$((i+1)); done\n")
    script = probe_script(steps, setup)
    # No DHCP client (nothing answers in the reference's namespace): the script sets the address.
    extra = " systemd.mask=systemd-networkd.service systemd.mask=systemd-networkd.socket" \
        if has_nic else ""
    full = f"{cmdline}{extra} {script_cmdline(script)}"
    if len(full) > CMDLINE_MAX:
        raise BenchError(f"the probe does not fit on the kernel command line ({len(full)} bytes)")
    bound = args.boot_timeout + sum(_step_bound(s) for s in steps)
    if in_libvirt:
        how = libvirt_boot(libvirt_probe_xml(xml, full), d, bound, variant.name, files.console)
    else:
        ns = ["ip", "netns", "exec", cu.netns] if has_nic and cu.netns else []
        argv = ns + ["nice", "-n", str(args.nice)] + qemu_argv(scn, variant.name, args, img, full,
                                                               files.console, dev_args)
        if args.verbose:
            print("  raw: " + shlex.join(argv), flush=True)
        how = qemu_boot(cu, argv, d, bound, variant.name, files.console)
    for srv in servers:
        cu.stop(srv)
    cu.drop_taps()
    try:
        out = read_console(files.console.read_text(errors="replace"))
    except BenchError as exc:
        raise BenchError(f"raw {variant.name}: {exc} ({how}; console: "
                         f"{_tail(files.console)})") from None
    sections = split_steps(out)
    got: dict[str, float] = {}
    for j in jobs:
        if j.name not in sections:
            raise BenchError(f"raw {variant.name}: step {j.name} left no output")
        rc, text = sections[j.name]
        try:
            samples = j.parse(text, j.name)
        except Exception as exc:  # vbench's parsers say what is wrong: fail closed with it
            raise BenchError(f"raw {variant.name}: {j.name} (exit {rc}): {exc}") from None
        got[j.name] = _headline(samples, j.name, j.metric)
    shutil.rmtree(d, ignore_errors=True)
    cu.dirs.remove(d)
    return got


def qemu_argv(scn, name: str, args, img, append: str, console: Path,
              dev_args: list[str]) -> list[str]:
    """The hand-started raw QEMU: libvirt's machine options, the bench's console file, the
    translated device set."""
    accel = ["-accel", "tcg", "-cpu", "qemu64"] if args.accel == "tcg" else \
        ["-accel", "kvm", "-cpu", "host"]
    return ["qemu-system-x86_64", "-name", f"vbref-{name}",
            "-machine", f"{scn.guest.machine},usb=off,dump-guest-core=off", *accel,
            "-m", str(scn.guest.memory_mib),
            "-smp", f"{scn.guest.vcpus},sockets={scn.guest.vcpus},cores=1,threads=1",
            "-display", "none", "-no-user-config", "-nodefaults", "-rtc", "base=utc",
            "-kernel", str(img.kernel), "-initrd", str(img.initrd), "-append", append,
            "-chardev", f"file,id=charserial0,path={console}",
            "-device", "isa-serial,chardev=charserial0",
            *dev_args, *SANDBOX[args.sandbox]]


def qemu_boot(cu: Cleanup, argv: list[str], d: Path, bound: float, name: str,
              console: Path) -> str:
    """QEMU started by hand until the guest powers off; what it said, for an error message."""
    with open(d / "qemu.err", "w") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err)
    cu.pids.append(proc)
    try:
        proc.wait(bound)
    except subprocess.TimeoutExpired:
        cu.stop(proc)
        raise BenchError(f"raw {name}: the guest did not power off in time; console: "
                         f"{_tail(console)}") from None
    cu.pids.remove(proc)
    return f"QEMU exit {proc.returncode}; {(d / 'qemu.err').read_text()[-200:]}"


def owner_tags() -> dict[str, str]:
    """vbench's metadata tag with this bench as the owner (as vbench's own guests carry it):
    ``vbench lab gc`` leaves a --raw-launch libvirt domain alone while the bench runs and removes
    it after a SIGKILL."""
    from vbench.host.libvirtd import owner_tag

    return {"owner": "vbench", "run": "vbref", **owner_tag()}


def libvirt_probe_xml(xml: str, cmdline: str) -> str:
    """--raw-launch libvirt: vbench's own domain XML with the probe's kernel command line, every
    device as vbench defines it (the management NIC too, left down: the probe masks the DHCP
    client)."""
    root = ET.fromstring(xml)
    el = root.find("os/cmdline")
    if el is None:
        raise BenchError("vbench's domain XML has no <os><cmdline>")
    el.text = cmdline
    return ET.tostring(root, encoding="unicode")


def nic_ifname(xml: str, network: str) -> str:
    """The guest's name of the NIC on libvirt network ``network`` (``net.ifnames=0``: ethN in PCI
    slot order, which libvirt gives the interfaces in their XML order, before the disks)."""
    nets = [src.get("network") for el in ET.fromstring(xml).iter("interface")
            for src in el.findall("source")]
    if nets.count(network) != 1:
        raise BenchError(f"the domain XML has {nets.count(network)} NICs on {network}, not one")
    return f"eth{nets.index(network)}"


def libvirt_boot(xml: str, d: Path, bound: float, name: str, console: Path) -> str:
    """The probe domain started by the lab's libvirt (transient: gone when the guest powers off,
    ``on_poweroff`` destroy) and waited for; its tag names this bench (``owner_tags``)."""
    import libvirt

    from vbench.core.errors import LabError
    from vbench.host import lab as vlab
    from vbench.host.libvirtd import open_connection

    os.chmod(d, 0o755)  # libvirt's QEMU runs as its own user: it must reach the overlay
    try:
        conn = open_connection(vlab.current(None).uri)
    except LabError as exc:
        raise BenchError(f"--raw-launch libvirt: {exc}") from None
    dom = None
    try:
        try:
            dom = conn.createXML(xml, 0)
        except libvirt.libvirtError as exc:
            raise BenchError(f"raw {name}: libvirt did not start the probe domain: "
                             f"{exc}") from None
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            try:
                if not dom.isActive():
                    dom = None
                    break
            except libvirt.libvirtError:  # the transient domain is gone: it powered off
                dom = None
                break
            time.sleep(1)
        else:
            raise BenchError(f"raw {name}: the guest did not power off in time; console: "
                             f"{_tail(console)}")
    finally:  # a timeout, an error or Ctrl-C: the domain goes with it
        if dom is not None:
            with contextlib.suppress(Exception):
                dom.destroy()
        conn.close()
    return "libvirt's QEMU"


def _step_bound(step: tuple[str, str]) -> int:
    m = re.search(r"timeout -k \d+ (\d+)", step[1])
    return int(m.group(1)) + 10 if m else 120


def _tail(path: Path, n: int = 6) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").rstrip().splitlines()[-n:])
    except OSError:
        return "(none)"


def _headline(samples, name: str, metric: str) -> float:
    vals = [s.value for s in samples if s.metric == metric and s.workload == name]
    if len(vals) != 1:
        raise BenchError(f"{name}: {len(vals)} {metric} samples, expected one")
    return vals[0]


# ---- vbench rounds ------------------------------------------------------------------------

CHILD_GRACE_S = 300  # how long an interrupted `vbench run` may take to destroy its guests


def run_vbench(argv: list[str], env: dict) -> subprocess.CompletedProcess:
    """Run ``vbench run`` to its end. On Ctrl-C it is asked to stop once (SIGTERM: vbench cleans
    up as on Ctrl-C) and waited for, so no guest of its run is left behind: subprocess.run would
    SIGKILL it a quarter second after the interrupt. It runs in its own session so that a
    terminal's Ctrl-C does not reach it a second time, in the middle of that cleanup."""
    with subprocess.Popen(argv, cwd=ROOT, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env, start_new_session=True) as p:
        try:
            out, err = p.communicate()
        except KeyboardInterrupt:
            p.send_signal(signal.SIGTERM)
            try:
                p.communicate(timeout=CHILD_GRACE_S)
            except subprocess.TimeoutExpired:
                p.kill()
                print(f"vbench run did not stop within {CHILD_GRACE_S} s: killed; "
                      f"`vbench lab gc` removes what it left", file=sys.stderr)
            raise
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


def vbench_round(text: str, scn, work: Path, args) -> dict[tuple[str, str], float]:
    """One `vbench run` of the scenario: (variant, sample workload) -> headline value."""
    from vbench.results.rundir import load_record, load_samples

    scn_file = work / f"{scn.name}.yaml"
    scn_file.write_text(text)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    argv = ["nice", "-n", str(args.nice), sys.executable, "-m", "vbench", "run", str(scn_file),
            "--results", str(work / "results"), "--no-report"]
    cp = run_vbench(argv, env)
    m = re.search(r"^run: (.+)$", cp.stdout, re.M)
    if cp.returncode != 0 or not m:
        raise BenchError(f"vbench run failed ({cp.returncode}): {cp.stderr.strip()[-400:]}")
    run_dir = m.group(1).strip()
    acc = load_record(run_dir).environment.accelerator or "unknown"
    if acc != args.accel:  # the two sides must run under the same accelerator
        raise BenchError(f"vbench ran under {acc}, the raw side under {args.accel}: pass --accel")
    df = load_samples(run_dir)
    got: dict[tuple[str, str], float] = {}
    for v in scn.variants:
        for w in scn.workloads:
            metric = w.kind.headline_of(getattr(w, w.tool))
            for name in sample_names(w):
                sel = df[(df.variant == v.name) & (df.workload == name) & (df.metric == metric)]
                if len(sel) != 1:
                    raise BenchError(f"vbench run {run_dir}: {len(sel)} samples of {v.name} "
                                     f"{name}, expected one")
                got[(v.name, name)] = float(sel.value.iloc[0])
    return got


def alone_round(kind: str, devices: list[str], work: Path, args) -> dict[tuple[str, str], float]:
    """The vbench side with one `vbench run` per device (a one-variant scenario each): no other
    guest of the run exists, paused or not, while a device is measured."""
    from vbench.scenario.schema import load_scenario_text

    got: dict[tuple[str, str], float] = {}
    for d in devices:
        text = scenario_text(kind, [d], args.runtime, args.disk_gib, args.vcpus)
        got.update(vbench_round(text, load_scenario_text(text), work, args))
    return got


# The vbench side's set-ups (--vbench-guests): "siblings", one run per device kind with all its
# devices as variants (each measured guest has its siblings paused beside it, as in a user's
# scenario); "alone", one run per device; "both", the two in the same rounds.
VBENCH_SIDES = {"siblings": ("vbench",), "alone": ("alone",), "both": ("vbench", "alone")}


def side_order(rnd: int, sides: list[str]) -> list[str]:
    """The order of the sides in round ``rnd`` (0-based): rotated every round, so that no side
    always goes first or follows the same other side."""
    k = rnd % len(sides)
    return sides[k:] + sides[:k]


# ---- main ---------------------------------------------------------------------------------

WORDS = {"unchanged": "within", "inconclusive": "inconclusive", "missing": "missing"}


def row_verdict(raw: list[float], vb: list[float], metric: str):
    """vbench / raw for one row, judged by vbench's own rule (vbench.stats.verdict, the one
    ``vbench compare`` uses, threshold FLAG): "within" when the 90 % interval of the change lies
    inside +-FLAG (an equivalence test), "below" / "above" when the change is significant and
    that interval lies wholly beyond it, otherwise "inconclusive" (the rounds cannot tell: more
    rounds, or a quieter machine); fewer than 3 rounds a side is inconclusive. Stalled rounds
    are set aside as the gate sets them aside. Returns (word, RowStats)."""
    from vbench.stats.verdict import decide, row_stats

    rs = row_stats(raw, vb, metric=metric, threshold=FLAG)
    word, _ = decide(rs, rs.p_value)
    if word in ("regression", "improvement"):
        return ("below" if rs.change < 0 else "above"), rs
    return WORDS[word], rs


def median_change(raw: list[float] | None, vb: list[float] | None) -> float:
    """median(vbench) / median(raw) - 1 over the rounds; NaN when a side has none."""
    if not raw or not vb or statistics.median(raw) <= 0:
        return math.nan
    return statistics.median(vb) / statistics.median(raw) - 1


def spread(xs: list[float] | None) -> float:
    """How far one side's rounds scatter: their sample standard deviation over their mean (NaN
    with fewer than two rounds). The machine's own noise: a change much smaller than it cannot be
    resolved in a few rounds, whatever vbench does."""
    if not xs or len(xs) < 2 or statistics.fmean(xs) <= 0:
        return math.nan
    return statistics.stdev(xs) / statistics.fmean(xs)


def rounds_needed(raw: list[float] | None, vb: list[float] | None, flag: float = FLAG) -> float:
    """About how many rounds a side would let the 90 % interval of the change fit inside
    +-``flag`` if the true change were zero, at the spread the rounds showed: the smallest n with
    1.645 * sqrt((spread_raw^2 + spread_vbench^2) / n) < ``flag`` (normal approximation; NaN
    with fewer than two rounds a side). What "within" costs on this machine."""
    a, b = spread(raw), spread(vb)
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.nan
    return float(max(3, math.floor(1.645 ** 2 * (a * a + b * b) / flag ** 2) + 1))


def pooled(raw: dict, vb: dict, metrics: dict) -> tuple[float, float, float, int, int]:
    """vbench against raw over all rows at once: per round, the mean over rows of the log of
    vbench / raw, oriented so that below zero is worse for vbench (a lower throughput or IOPS, a
    longer round trip); then the mean over rounds and its 90 % t-interval, as a relative change.
    One row's rounds scatter too much to resolve a few percent on a noisy host, but a tax that
    vbench's machinery puts on every device shows in all rows: this is its estimate. Only rows
    with the same number of rounds on both sides (rounds paired in time); returns (change, low,
    high, rounds, rows), NaN without two rounds."""
    from vbench.core.metrics import higher_is_better
    from vbench.stats.inference import t_quantile

    keys = [k for k in raw if vb.get(k) and len(vb[k]) == len(raw[k])]
    n = min((len(raw[k]) for k in keys), default=0)
    if n < 2:
        return math.nan, math.nan, math.nan, n, len(keys)
    per_round = []
    for r in range(n):
        logs = [(1 if higher_is_better(metrics[k]) else -1) * math.log(vb[k][r] / raw[k][r])
                for k in keys]
        per_round.append(statistics.fmean(logs))
    m, sd = statistics.fmean(per_round), statistics.stdev(per_round)
    half = t_quantile(0.95, n - 1) * sd / math.sqrt(n)
    return math.expm1(m), math.expm1(m - half), math.expm1(m + half), n, len(keys)


def table(raw: dict, vb: dict, metrics: dict) -> tuple[str, dict[str, int]]:
    """Per device and job: both sides' centres (geometric means of the rounds), their change,
    the change of the two sides' medians (what issue 25's acceptance names), each side's spread
    over the rounds (:func:`spread`, raw/vbench), the 90 % interval of vbench / raw and its
    verdict (:func:`row_verdict`), the rounds "within" would need at that spread
    (:func:`rounds_needed`); and how many rows got each verdict."""
    from vbench.core.metrics import metric_unit

    keys = list(dict.fromkeys([*raw, *vb]))
    rows = [f"{'device':<12} {'job':<20} {'vbench':>12} {'raw QEMU':>12} {'change':>8} "
            f"{'medians':>8} {'spread r/v':>11} {'90% interval':>17}  {'verdict':<12} {'need':>5} n"]
    counts: dict[str, int] = {}
    fmt = (lambda x: "-" if not math.isfinite(x) else f"{x:,.0f}" if abs(x) >= 100
           else f"{x:.3g}")
    pct = (lambda x: f"{x:+.1%}" if math.isfinite(x) else "-")
    sp = (lambda x: f"{x:.0%}" if math.isfinite(x) else "-")
    for k in keys:
        word, rs = row_verdict(raw.get(k, []), vb.get(k, []), metrics[k])
        counts[word] = counts.get(word, 0) + 1
        ci = f"{pct(rs.eq_low)} .. {pct(rs.eq_high)}" if math.isfinite(rs.eq_low) else "-"
        set_aside = rs.outliers_base + rs.outliers_new
        note = f", {set_aside} stalled round(s) set aside" if set_aside else ""
        rows.append(f"{k[0]:<12} {k[1]:<20} {fmt(rs.centre_new):>12} {fmt(rs.centre_base):>12} "
                    f"{pct(rs.change):>8} {pct(median_change(raw.get(k), vb.get(k))):>8} "
                    f"{sp(spread(raw.get(k))) + '/' + sp(spread(vb.get(k))):>11} "
                    f"{ci:>17}  {word:<12} {fmt(rounds_needed(raw.get(k), vb.get(k))):>5} "
                    f"{len(vb.get(k, []))}/{len(raw.get(k, []))} "
                    f"{metrics[k]} ({metric_unit(metrics[k])}){note}")
    return "\n".join(rows), counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--devices", default=DEFAULT_DEVICES,
                    help=f"comma-separated, of "
                         f"{', '.join([*DISK_DEVICES, *NET_DEVICES, *RNG_DEVICES])}")
    ap.add_argument("--only", choices=("raw", "vbench"), help="one side only (development)")
    ap.add_argument("--runtime", type=int, default=8, help="fio runtime / iperf3 duration (s)")
    ap.add_argument("--disk-gib", type=float, default=1.0)
    ap.add_argument("--accel", choices=("tcg", "kvm"), default="tcg",
                    help="raw side's accelerator: the one vbench picks on this host")
    ap.add_argument("--nice", type=int, default=0, help="nice both sides (a shared machine)")
    ap.add_argument("--raw-net", choices=("own", "lab"), default="own",
                    help="where the raw side's NIC sits: a namespace and bridge of the bench's own, "
                         "or the lab's test bridge in the lab's namespace (its DHCP server and "
                         "all): what differs between the two is the lab's network, "
                         "not vbench's machinery")
    ap.add_argument("--raw-launch", choices=("qemu", "libvirt"), default="qemu",
                    help="who starts the raw side's guest: QEMU by hand with the translated device "
                         "set, or the lab's libvirt with vbench's own domain XML (management NIC "
                         "included, left down; implies --raw-net lab; TCG only): what differs "
                         "between the two is libvirt and the device set, not vbench's session "
                         "(SSH, driver check, pauses)")
    ap.add_argument("--sandbox", choices=tuple(SANDBOX), default="off",
                    help="the raw side's QEMU seccomp filter: none, or libvirt's default one")
    ap.add_argument("--vbench-guests", choices=tuple(VBENCH_SIDES), default="siblings",
                    help="the vbench side: one run per device kind with its devices' guests side "
                         "by side (siblings), one run per device (alone), or both in the same "
                         "rounds (prints both against raw, and alone against siblings)")
    ap.add_argument("--vcpus", type=int, default=2,
                    help="vCPUs of every guest on both sides (vbench's shipped scenarios: 2), "
                         "to check the fidelity at the guest size one's own scenarios use")
    ap.add_argument("--boot-timeout", type=int, default=600)
    ap.add_argument("--tmpdir", default="/var/tmp",
                    help="overlays and scratch disks (not a tmpfs: cache=none needs O_DIRECT)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    if args.vcpus < 1:
        ap.error("--vcpus must be >= 1")
    if args.raw_launch == "libvirt":
        if args.accel != "tcg":
            ap.error("--raw-launch libvirt: TCG only (the domain XML is rendered for TCG)")
        args.raw_net = "lab"  # libvirt puts the NIC on the lab's test network
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    bad = [d for d in devices if d not in {**DISK_DEVICES, **NET_DEVICES, **RNG_DEVICES}]
    if bad:
        ap.error(f"unknown devices {bad}")
    if os.geteuid() != 0:
        sys.exit("run as root (QEMU with a tap in a namespace, vbench's lab)")

    from vbench.host import images
    from vbench.host.networks import TEST
    from vbench.scenario.schema import load_scenario_text

    def term(*_):
        raise KeyboardInterrupt
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # also where SIGINT came ignored
        signal.signal(sig, term)

    kinds = [(k, [d for d in devices if d in table_]) for k, table_ in
             (("disk", DISK_DEVICES), ("net", NET_DEVICES), ("rng", RNG_DEVICES))]
    kinds = [(k, ds) for k, ds in kinds if ds]
    img = images.require("default")
    cu = Cleanup()
    work = Path(tempfile.mkdtemp(prefix="vbref-work-", dir=args.tmpdir))
    cu.dirs.append(work)
    raw: dict[tuple[str, str], list[float]] = {}
    vb: dict[tuple[str, str], list[float]] = {}
    alone: dict[tuple[str, str], list[float]] = {}
    metrics: dict[tuple[str, str], str] = {}
    try:
        if any(k == "net" for k, _ in kinds) and args.only != "vbench":
            if args.raw_net == "lab":
                from vbench.core.errors import LabError
                from vbench.host import lab as vlab

                try:
                    ns = vlab.current(None).netns
                except LabError as exc:
                    raise BenchError(f"--raw-net lab: {exc}") from None
                if not ns:
                    raise BenchError("--raw-net lab: the lab has no namespace")
                use_lab_netns(cu, ns)
            else:
                make_netns(cu, TEST.host_ip, ipaddress.IPv4Network(TEST.cidr).prefixlen)
        for rnd in range(args.rounds):
            for kind, ds in kinds:
                text = scenario_text(kind, ds, args.runtime, args.disk_gib, args.vcpus)
                scn = load_scenario_text(text)
                for w in scn.workloads:
                    metric = w.kind.headline_of(getattr(w, w.tool))
                    for v in scn.variants:
                        for n in sample_names(w):
                            metrics[(v.name, n)] = metric
                # Interleaved, and the order turns every round: no side always goes first.
                sides = side_order(rnd, ["raw", *VBENCH_SIDES[args.vbench_guests]])
                for side in sides:
                    if args.only and side != args.only and not (args.only == "vbench"
                                                                and side == "alone"):
                        continue
                    t0 = time.monotonic()
                    if side == "raw":
                        for v in scn.variants:
                            got = raw_round(kind, scn, v, cu, args, img)
                            for name, val in got.items():
                                raw.setdefault((v.name, name), []).append(val)
                            print(f"round {rnd + 1} raw {v.name}: " + ", ".join(
                                f"{n} {x:,.4g}" for n, x in got.items()), flush=True)
                    else:
                        got2 = (vbench_round(text, scn, work, args) if side == "vbench"
                                else alone_round(kind, ds, work, args))
                        for key, val in got2.items():
                            (vb if side == "vbench" else alone).setdefault(key, []).append(val)
                        print(f"round {rnd + 1} {side} {kind}: " + ", ".join(
                            f"{k[0]} {k[1]} {x:,.4g}" for k, x in got2.items()), flush=True)
                    print(f"  ({side} {kind} took {time.monotonic() - t0:.0f} s)", flush=True)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        cu.all()
    return report(raw, vb, alone, metrics, args)


def report(raw: dict, vb: dict, alone: dict, metrics: dict, args) -> int:
    """Print the tables and pooled figures; 0 when every row of every vbench set-up is within."""
    setups = [(name, got) for name, got in (("siblings", vb), ("alone", alone)) if got]
    if args.only or len(setups) < 2:
        return report_one(raw, vb or alone, metrics, args)
    codes = []
    for name, got in setups:
        print(f"\n==== vbench side: {name} ====")
        codes.append(report_one(raw, got, metrics, args))
    change, low, high, n, rows = pooled(vb, alone, metrics)
    if math.isfinite(change):
        print(f"\nalone against siblings, {rows} rows pooled (below zero: worse alone): "
              f"{change:+.1%}, 90 % interval {low:+.1%} .. {high:+.1%} over {n} rounds")
    return max(codes)


def report_one(raw: dict, vb: dict, metrics: dict, args) -> int:
    from vbench.host import sched

    text_out, counts = table(raw, vb, metrics)
    launch = ("the lab's libvirt from vbench's domain XML" if args.raw_launch == "libvirt"
              else f"hand, sandbox {args.sandbox}")
    bridge = "the lab" if args.raw_net == "lab" else "the bench"
    print(f"\ngeometric means over {args.rounds} round(s), accelerator {args.accel}, "
          f"{args.vcpus} vCPU(s) per guest, host scheduler {sched.this_host()}, raw side "
          f"started by {launch}, raw NIC on {bridge}'s own bridge; "
          f"change = vbench / raw - 1; verdict (vbench's own rule, threshold "
          f"{FLAG:.0%}): the 90 % interval inside it (within), a significant change wholly beyond "
          f"it (below, above), or neither (inconclusive; at least 3 rounds a side); spread = "
          f"each side's standard deviation over its mean across rounds (raw/vbench); need = the "
          f"rounds a side that would put the interval inside +-{FLAG:.0%} at that spread if "
          f"there were no difference:\n{text_out}")
    if args.only:
        return 0
    print(", ".join(f"{n} {w}" for w, n in sorted(counts.items())))
    change, low, high, n, rows = pooled(raw, vb, metrics)
    if math.isfinite(change):
        print(f"all {rows} rows pooled (below zero: worse through vbench): {change:+.1%}, 90 % "
              f"interval {low:+.1%} .. {high:+.1%} over {n} rounds")
    return 0 if set(counts) == {"within"} else 1


if __name__ == "__main__":
    sys.exit(main())
