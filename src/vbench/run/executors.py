"""Executing one workload once: build the command, run it where it belongs, time the host side,
parse the output. One function per tool, registered with :func:`register` (its ``EXECUTORS``
entry and its headline metric); the runner calls them through :func:`execute`.

Each executor returns ``(samples, raw_text)``; any failure raises a UserError subclass (probe,
remote command, guest) that the runner records as a failed repetition.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from vbench.core import procs
from vbench.core.errors import ProbeError, RemoteCommandError
from vbench.core.metrics import Sample
from vbench.run.cpuwindow import CpuWindow
from vbench.workloads import WORKLOADS
from vbench.scenario.schema import Scenario, Workload

if TYPE_CHECKING:  # pragma: no cover
    from vbench.host.lab import Lab
    from vbench.guest.domain import Guest

FIO_TIMEOUT_SLACK_S = 20  # fio start-up and teardown, generous even under TCG


@dataclass
class Target:
    """Where a workload runs: a booted guest of a variant, or the host (baseline)."""

    variant: str
    guest: "Guest | None" = None         # None for the host baseline
    facts: dict = field(default_factory=dict)
    host_scratch: Path | None = None     # host baseline's backing file
    lab: "Lab | None" = None


def run_fio(scn: Scenario, w: Workload, target: Target) -> tuple[list[Sample], str]:
    from vbench.workloads.fio import fio_argv, fio_total_ios, parse_fio_json

    runtime, ramp = scn.fio_runtime(w)
    opts = scn.fio_options(w)
    # fio ends on its own after ramp+runtime; past `limit` it is hung (or stopped): `timeout`
    # signals its whole process group, SIGKILL 5 s later even if stopped.
    limit = runtime + ramp + FIO_TIMEOUT_SLACK_S
    wrap = procs.killed_after(limit)
    bound = limit + 20
    if target.guest is None:
        assert target.host_scratch is not None
        from vbench.host.sandbox import fsize_limited

        argv = fsize_limited(fio_argv(w.name, str(target.host_scratch), opts, runtime, ramp),
                             scn.profile(scn.variants[0]).disk)
        # Root on the host with a scenario's options: confined to its scratch file, no network;
        # the host where the guests run (another host: its own fio on its own storage).
        res = _lab(target).host.run_confined(argv, target.host_scratch, wrap, timeout=bound)
        if not res.ok:
            raise RemoteCommandError(res)
        text = res.stdout
        samples = parse_fio_json(text, w.name)
        return samples, text
    g = target.guest
    disks = target.facts.get("disks") or []
    # A disk under test, else a file in the shared folder under test (device fs).
    path = f"/dev/{disks[0]['dev']}" if disks else target.facts.get("fio_file")
    if not path:
        raise ProbeError(f"no scratch disk and no shared folder was found in guest {g.name}")
    if not disks:
        _lay_out_once(g, target, path, opts)
    argv = fio_argv(w.name, path, opts, runtime, ramp)
    cmd = shlex.join(wrap + argv)
    with CpuWindow(g.qemu_pid(), ramp, runtime) as cpu:
        res = g.ssh.run(cmd, timeout=bound, check=False)
    if not res.ok:
        g.check_alive()
        if res.timed_out or res.exit_status in (124, 137):
            raise RemoteCommandError(res, f"fio did not finish within {limit} s in {g.name} "
                                          f"(hung or stopped); it was killed: {res.command}")
        raise RemoteCommandError(res)
    text = res.stdout
    samples = parse_fio_json(text, w.name)
    rate = cpu.rate()
    ios_per_s = fio_total_ios(text) / runtime
    if rate is not None and ios_per_s > 0:
        samples.append(Sample(w.name, "host_cpu_per_io", rate / ios_per_s * 1e6, "us"))
    return samples, text


LAYOUT_TIMEOUT_S = 900


def _lay_out_once(g, target: Target, path: str, opts: dict) -> None:
    """Write a file target in full once per guest, unmeasured, before its first job.

    fio lays out a missing file before it starts its clock, in the job's own block size; on a
    slow shared folder (9p under TCG: ~30 s for 256 MiB in 4k writes) that eats the job's time
    bound and the job is killed as hung. The layout job is a *read* job: fio writes a file out
    in full only for reads (for a write job with ``create_only`` it left a 0-byte file on 9p,
    so the first measured read job laid it out again, inside its bound). The size fio left is
    checked: a short file is an error, never a silent layout inside the next measured job.
    """
    if target.facts.get("fio_file_ready") == path:
        return
    argv = [*procs.killed_after(LAYOUT_TIMEOUT_S), "fio", "--name=vbench-layout",
            f"--filename={path}", "--rw=read", "--bs=1m", "--create_only=1"]
    if "size" in opts:
        argv.append(f"--size={opts['size']}")
    cmd = f"{shlex.join(argv)} >/dev/null && stat -c size=%s {shlex.quote(path)}"
    res = g.ssh.run(cmd, timeout=LAYOUT_TIMEOUT_S + 20, check=False)
    if not res.ok:
        g.check_alive()
        raise RemoteCommandError(res, f"fio could not lay out {path} in {g.name}")
    m = re.search(r"^size=(\d+)$", res.stdout, re.M)
    have = int(m.group(1)) if m else 0
    from vbench.workloads.fioopts import _size_bytes

    want = _size_bytes(str(opts["size"])) if "size" in opts else None  # None: relative (50%)
    if have == 0 or (want is not None and have < want):
        raise ProbeError(f"fio laid out {path} in {g.name} with {have} bytes, "
                         f"not the {opts.get('size', 'non-zero size')} asked for")
    target.facts["fio_file_ready"] = path


Executor = Callable[[Scenario, Workload, Target], tuple[list[Sample], str]]
EXECUTORS: dict[str, Executor] = {"fio": run_fio}


def register(tool: str) -> Callable[[Executor], Executor]:
    """Decorator: the executor of ``tool``'s workloads (a kind of :data:`vbench.workloads.WORKLOADS`)."""
    def deco(fn: Executor) -> Executor:
        if tool not in WORKLOADS:
            raise TypeError(f"executor for {tool!r}: no such workload in vbench.workloads")
        EXECUTORS[tool] = fn
        return fn
    return deco


def execute(scn: Scenario, w: Workload, target: Target) -> tuple[list[Sample], str]:
    fn = EXECUTORS.get(w.tool) or (w.kind.run if w.kind.runs_itself else None)
    if fn is None:
        raise ProbeError(f"workload {w.name}: the {w.tool} probe is not available in this vbench")
    return fn(scn, w, target)


# ---- network: iperf3 and ping between the guest's NIC under test and a host-side peer ---------

def _free_port() -> int:
    import random

    return random.randint(20000, 40000)


def _test_ips(target: Target) -> tuple[str, str]:
    """(guest address on the test network, host-side peer address); both checked to be lab-only."""
    from vbench.host.networks import TEST
    from vbench.host.netns import check_target

    if "test_ip" not in target.facts:
        target.facts["test_ip"] = _guest(target, "network").test_nic_ip()
    check_target(target.facts["test_ip"])
    check_target(TEST.host_ip)
    return target.facts["test_ip"], TEST.host_ip


def _guest(target: Target, tool: str) -> "Guest":
    """The guest a network/entropy/balloon workload runs in (they have no host variant)."""
    if target.guest is None:
        raise ProbeError(f"{tool} workloads need a guest")
    return target.guest


def _lab(target: Target) -> "Lab":
    """The lab whose host runs the host side of ``target`` (a peer, ping, the baseline's fio):
    ``lab.host`` (:mod:`vbench.host.hosts`), here in the lab's namespace or another host."""
    if target.lab is None:
        raise ProbeError(f"variant {target.variant}: a host-side peer or baseline needs the lab")
    return target.lab


@register("iperf3")
def run_iperf3(scn: Scenario, w: Workload, target: Target) -> tuple[list[Sample], str]:
    from vbench.workloads.iperf3 import iperf3_client_argv, iperf3_server_argv, parse_iperf3_json

    spec = w.iperf3
    assert spec is not None
    g = _guest(target, "iperf3")
    guest_ip, host_ip = _test_ips(target)
    samples: list[Sample] = []
    raws = []
    for direction in spec.directions:
        name = f"{w.name}-{direction}"
        port = _free_port()
        # The guest is always the client; -R makes the host-side server send (host to guest).
        argv = iperf3_client_argv(host_ip, port, spec.duration, spec.omit, spec.parallel,
                                  reverse=(direction == "h2g"), udp=spec.protocol == "udp",
                                  bitrate=spec.bitrate, length=spec.length, bind=guest_ip)
        bound = spec.duration + spec.omit + 30
        with _lab(target).host.peer(iperf3_server_argv(host_ip, port), port):
            # iperf3 runs omit + duration seconds; only the last `duration` are measured.
            with CpuWindow(g.qemu_pid(), spec.omit, spec.duration) as cpu:
                res = g.ssh.run(shlex.join(procs.killed_after(bound) + argv),
                                timeout=bound + 15, check=False)
        raws.append(f"### {name}\n{res.stdout}")
        if res.timed_out:
            raise RemoteCommandError(res, f"iperf3 did not finish within {bound} s in {g.name} (hung?)")
        got = parse_iperf3_json(res.stdout, name)
        if not res.ok and not got:
            raise RemoteCommandError(res)
        samples += got
        tput = next((s.value for s in got if s.metric == "throughput"), None)
        rate = cpu.rate()
        if tput and rate is not None:
            samples.append(Sample(name, "host_cpu_per_gbit", rate / (tput / 1000), "s/Gbit"))
    return samples, "\n".join(raws)


@register("ping")
def run_ping(scn: Scenario, w: Workload, target: Target) -> tuple[list[Sample], str]:
    from vbench.workloads.ping import parse_ping, ping_argv

    spec = w.ping
    assert spec is not None
    g = _guest(target, "ping")
    guest_ip, host_ip = _test_ips(target)
    bound = int(spec.count * spec.interval + 30)
    samples, raws = [], []
    for direction in spec.directions:
        name = f"{w.name}-{direction}"
        if direction == "h2g":
            res = _lab(target).host.run(ping_argv(guest_ip, spec.count, spec.interval,
                                                  spec.size), timeout=bound)
        else:
            res = g.ssh.run(shlex.join(ping_argv(host_ip, spec.count, spec.interval, spec.size)),
                            timeout=bound, check=False)
        raws.append(f"### {name}\n{res.stdout}{res.stderr}")
        samples += parse_ping(res.stdout, name)
    return samples, "\n".join(raws)


# ---- entropy: /dev/hwrng, crng init, early getrandom -----------------------------------------

@register("entropy")
def run_entropy(scn: Scenario, w: Workload, target: Target) -> tuple[list[Sample], str]:
    from vbench.workloads.entropy import entropy_probe_script, parse_entropy

    spec = w.entropy
    assert spec is not None
    g = _guest(target, "entropy")
    script = entropy_probe_script(spec.read_bytes, spec.timeout_s)
    heredoc = "sh -s <<'VBENCH_EOF'\n" + script + "\nVBENCH_EOF\n"
    res = g.ssh.run(heredoc, timeout=spec.timeout_s + 30, check=False)
    if res.timed_out:
        raise RemoteCommandError(res, f"the entropy probe did not finish in {g.name}")
    samples = parse_entropy(res.stdout, w.name)
    boot = getattr(g, "boot_seconds", None)
    if boot and target.facts.get("fresh_boot"):
        samples.append(Sample(w.name, "ssh_ready_time", float(boot), "s"))
    return samples, res.stdout


# ---- balloon: shrink through libvirt, grow back, see what the host got back --------------------

@register("balloon")
def run_balloon(scn: Scenario, w: Workload, target: Target) -> tuple[list[Sample], str]:
    from vbench.workloads.balloon import balloon_samples, mem_total_mib

    spec = w.balloon
    assert spec is not None
    g = _guest(target, "balloon")
    pid = g.qemu_pid()
    log: list[str] = []

    def guest_mem() -> float:
        return mem_total_mib(g.ssh.run("cat /proc/meminfo", timeout=20, check=True).stdout)

    give, take, wait = _memory_controls(scn, spec.target_mib, g)
    if spec.touch_mib:
        # Pages the guest never touched were never resident on the host: fill and free memory
        # first, or inflating the balloon gives nothing back and the benchmark measures nothing.
        fill = (f"set -e; d=/run/vbench-fill; mkdir -p $d; mount -t tmpfs -o size={spec.touch_mib + 64}M "
                f"vbfill $d; dd if=/dev/zero of=$d/f bs=1M count={spec.touch_mib} status=none; "
                f"rm $d/f; umount $d; rmdir $d")
        g.ssh.run(fill, timeout=120, check=True)
    facts: dict[str, float | None] = {"guest_mem_before": guest_mem()}
    facts["host_rss_before"] = procs.rss_mib(pid) if pid else None
    ok, answer = give()
    log.append(answer)
    if not ok:
        facts_s = balloon_samples(w.name, {k: v for k, v in facts.items() if v is not None})
        return facts_s + [Sample(w.name, "balloon_supported", 0.0, "bool")], "\n".join(log)
    facts["balloon_inflate_time"] = wait(True, spec.timeout_s)
    time.sleep(1.0)  # let the guest's MemTotal and the host's RSS settle
    facts["guest_mem_shrunk"] = guest_mem()
    facts["host_rss_shrunk"] = procs.rss_mib(pid) if pid else None
    ok, answer = take()
    log.append(answer)
    facts["balloon_deflate_time"] = wait(False, spec.timeout_s)
    time.sleep(1.0)
    facts["guest_mem_after"] = guest_mem()
    log.append(" ".join(f"{k}={v}" for k, v in facts.items()))
    samples = balloon_samples(w.name, {k: v for k, v in facts.items() if v is not None})
    return samples + [Sample(w.name, "balloon_supported", 1.0, "bool")], "\n".join(log)


def _memory_controls(scn: Scenario, target_mib: int, g):
    """How this guest gives memory back and takes it again: the live operation of the device that
    manages its memory (the balloon, or virtio-mem where device ``mem`` replaces it)."""
    prof = getattr(g, "profile", None)
    for dev, spec in (prof.present() if prof is not None else ()):
        control = dev.memory_control(spec, g, scn.guest.memory_mib, target_mib)
        if control is not None:
            return control.give, control.take, control.wait
    raise ProbeError(f"no device of {g.name} gives memory back (a balloon or virtio-mem)")


# ---- shared folders: metadata operations (create, stat, delete many small files) --------------

@register("fsmeta")
def run_fsmeta(scn: Scenario, w: Workload, target: Target) -> tuple[list[Sample], str]:
    from vbench.workloads.fsmeta import fsmeta_command, parse_fsmeta

    spec = w.fsmeta
    assert spec is not None
    g = _guest(target, "fsmeta")
    where = target.facts.get("fs_dir")
    if not where:
        raise ProbeError(f"fsmeta workloads need a mounted shared folder (device fs) in {g.name}")
    cmd = fsmeta_command(f"{where}/vbench-meta", spec.files, spec.filesize, spec.timeout_s)
    res = g.ssh.run(cmd, timeout=3 * spec.timeout_s + 30, check=False)
    if not res.ok:
        g.check_alive()
        raise RemoteCommandError(res)
    return parse_fsmeta(res.stdout, w.name), res.stdout



# ---- byte channel: a host UNIX socket <-> the guest's port (device console) --------------------

def _read_exactly(sock, n: int) -> tuple[int, float]:
    """Read n bytes; (bytes after the first chunk, seconds from the first chunk to the last)."""
    got, first_len, t_first, t_last = 0, 0, None, None
    while got < n:
        b = sock.recv(min(65536, n - got))
        if not b:
            break
        t_last = time.monotonic()
        if t_first is None:
            t_first, first_len = t_last, len(b)
        got += len(b)
    if got < n or t_first is None or t_last is None:
        raise ProbeError(f"bytestream: the host read {got} of {n} bytes")
    return got - first_len, t_last - t_first


def _echo_rtts_us(sock, pings: int) -> list[float]:
    """Round trips of one byte through the guest's echo, in microseconds."""
    rtts = []
    for _ in range(pings):
        t0 = time.perf_counter()
        sock.sendall(b"x")
        if sock.recv(1) != b"x":
            raise ProbeError("bytestream: the echo returned another byte")
        rtts.append((time.perf_counter() - t0) * 1e6)
    return rtts


@register("bytestream")
def run_bytestream(scn: Scenario, w: Workload, target: Target) -> tuple[list[Sample], str]:
    import socket

    from vbench.workloads import bytestream as bs

    spec = w.bytestream
    assert spec is not None
    g = _guest(target, "bytestream")
    prof = getattr(g, "profile", None)
    channel = next((c for d, s in (prof.present() if prof is not None else ())
                    if (c := d.byte_channel(s, g, target.facts)) is not None), None)
    if channel is None:
        raise ProbeError(f"bytestream workloads need a byte channel (device console) in {g.name}")
    dev = channel.guest_device
    log: list[str] = [f"guest device {dev}"]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(spec.timeout_s)
    try:
        sock.connect(str(channel.host_socket))
        got: dict = {}

        def reader() -> None:
            try:
                got["g2h"] = _read_exactly(sock, spec.g2h_bytes)
            except (OSError, ProbeError) as exc:
                got["error"] = str(exc)

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        g.ssh.run(bs.g2h_command(dev, spec.g2h_bytes), timeout=spec.timeout_s, check=True)
        th.join(spec.timeout_s)
        if "g2h" not in got:
            raise ProbeError(f"bytestream: guest to host did not arrive: {got.get('error', 'timeout')}")
        log.append(f"g2h {got['g2h'][0]} bytes in {got['g2h'][1]:.6f} s")
        out = "/run/vbench-h2g.out"
        g.ssh.run(bs.h2g_command(dev, spec.h2g_bytes, out), timeout=30, check=True)
        time.sleep(0.5)  # the guest has opened its end
        sock.sendall(b"\0" * spec.h2g_bytes)
        deadline, text = time.monotonic() + spec.timeout_s, ""
        while time.monotonic() < deadline:
            text = g.ssh.run(f"cat {out} 2>/dev/null", timeout=30, check=False).stdout
            if "h2g " in text:
                break
            time.sleep(0.2)
        log.append(text.strip())
        h2g = bs.parse_h2g(text)
        g.ssh.run(bs.echo_command(dev), timeout=30, check=True)
        time.sleep(0.5)
        rtts = _echo_rtts_us(sock, spec.pings)
        log.append("rtt_us " + " ".join(f"{x:.1f}" for x in rtts))
    except OSError as exc:
        raise ProbeError(f"bytestream over {channel.host_socket}: {exc}") from None
    finally:
        sock.close()
        with contextlib.suppress(Exception):
            g.ssh.run(bs.stop_echo_command(), timeout=30, check=False)
    return bs.bytestream_samples(w.name, got["g2h"], h2g, rtts), "\n".join(log)


_missing = {t for t, k in WORKLOADS.items() if t not in EXECUTORS and not k.runs_itself}
if _missing:  # fail at import, not in the middle of a run
    raise TypeError(f"workloads without an executor: {', '.join(sorted(_missing))}")
