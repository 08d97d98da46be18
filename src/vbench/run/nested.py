"""The nested lab: vbench under KVM one level down (``vbench lab up --nested``, ``vbench run
SCENARIO --nested``).

On a host whose own KVM cannot run stock kernels (the project's machines: ``kvm_pvm``), QEMU's
TCG emulates an AMD CPU with SVM and nested paging. A first-level "hypervisor guest" (L1, recipe
``guests/hypervisor.yaml``: Debian's QEMU and libvirt) boots under the local lab with
``<cpu mode='custom'><model>EPYC</model><feature policy='require' name='svm'/></cpu>``, loads
``kvm_amd``, ``vhost_net`` and ``vhost_vsock``, and runs the *same* ``vbench`` a user types on a
KVM host, against its own lab (its own libvirtd in its own namespace, the accelerator probed
there: KVM for real).

What L1 gets from this host (read-only 9p shares) and its domain: :mod:`vbench.guest.nested`.

Results come back as the inner run's directory (copied with tar over the SSH session, extracted
with tarfile's ``data`` filter into this host's results root); the report is built here from
them. The progress lines of the inner run are printed here as they come, prefixed with ``L1``.

Lifetimes: ``lab up --nested`` leaves L1 running and records it (domain, address, pinned host
key, this lab's client key) in ``<VBENCH_HOME>/lab/nested.json``; ``lab down --nested`` (and
``lab down``) removes it. ``run --nested`` uses that L1 if it is up, else boots one for the run
and destroys it when the run ends (also on Ctrl-C and errors: it is a :class:`vbench.guest.domain.Guest`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from vbench.core import paths
from vbench.core.errors import GuestError, LabError
from vbench.core.untrusted import labelled_lines
from vbench.guest.nested import (BOOT_TIMEOUT_S, CONSOLE_TAIL_BYTES, CPU_MODEL, DOMAIN,
                                 INNER_ROOT, NOTE, RECIPE, ROLE_TAG, VCPUS, _client_key,
                                 console, gone, hypervisor_guest_class, inner_argv, memory_mib,
                                 setup_script, shares, watch_l1)

STATE_FILE = "nested.json"
STATE_VERSION = 1
PID_MARK = "vbench-nested-pid "

Say = Callable[[str], None]


class L1Gone(GuestError):
    """The hypervisor guest itself is gone (destroyed, crashed): nothing inside is left to stop,
    and its SSH session may never notice (a vanished guest sends no TCP reset)."""


def _watched(watch: Callable[[], None] | None) -> None:
    if watch is not None:
        try:
            watch()
        except GuestError as exc:
            raise L1Gone(str(exc)) from None


class _Lines:
    """The inner command's output, split into lines as it comes (its pid line kept apart)."""

    def __init__(self, chan: Any, say: Say, prefix: str, out: list[str]) -> None:
        self.chan, self.say, self.prefix, self.lines = chan, say, prefix, out
        self.buf = b""
        self.pid: int | None = None

    def pump(self) -> bool:
        got = False
        while self.chan.recv_ready():
            self.buf += self.chan.recv(65536)
            got = True
        while b"\n" in self.buf:
            raw, self.buf = self.buf.split(b"\n", 1)
            line = raw.decode(errors="replace").rstrip("\r")
            if self.pid is None and line.startswith(PID_MARK) and line[len(PID_MARK):].isdigit():
                self.pid = int(line[len(PID_MARK):])
                continue
            self.lines.append(line)
            self.say(self.prefix + line)
        return got

    def drain(self, until: float, watch: Callable[[], None] | None = None) -> None:
        with contextlib.suppress(Exception):  # GuestError from watch: L1 is gone, stop waiting
            while not self.chan.exit_status_ready() and time.monotonic() < until:
                if not self.pump():
                    time.sleep(0.1)
                    if watch is not None:
                        watch()
            self.pump()
        if self.buf:
            self.lines.append(self.buf.decode(errors="replace"))
            self.say(self.prefix + self.lines[-1])
            self.buf = b""


def stream(ssh: Any, argv: list[str], say: Say, prefix: str = "L1 | ",
           timeout: float = 24 * 3600, cwd: str = INNER_ROOT, out: list[str] | None = None,
           watch: Callable[[], None] | None = None) -> tuple[int, list[str]]:
    """Run ``argv`` in L1, printing its output lines (stdout and stderr) as they come; ``out``
    receives them (the caller keeps them also on Ctrl-C). ``watch`` raises GuestError when L1
    itself is gone (checked every few seconds): then this raises :class:`L1Gone` at once.

    On Ctrl-C/SIGTERM here the inner process gets SIGTERM (vbench cleans up on it as on Ctrl-C)
    and is waited for, up to 3 minutes, before KeyboardInterrupt goes on."""
    cmd = (f"cd {shlex.quote(cwd)} && exec sh -c 'echo \"{PID_MARK}$$\"; exec \"$@\"' sh "
           + shlex.join(argv))
    tr = ssh._client.get_transport()
    if tr is None or not tr.is_active():
        raise GuestError("the SSH session to the hypervisor guest is closed")
    chan = tr.open_session(timeout=10)
    chan.set_combine_stderr(True)
    chan.settimeout(1.0)
    chan.exec_command(cmd)
    got = _Lines(chan, say, prefix, [] if out is None else out)
    deadline, next_watch = time.monotonic() + timeout, time.monotonic() + 5
    try:
        while not (chan.exit_status_ready() and not chan.recv_ready()):
            if not got.pump():
                time.sleep(0.05)
            if time.monotonic() > next_watch:
                next_watch = time.monotonic() + 5
                _watched(watch)
            if time.monotonic() > deadline:
                raise GuestError(f"the inner command did not finish within {timeout:.0f} s")
            if not tr.is_active():
                raise GuestError("the SSH session to the hypervisor guest was lost")
    except (KeyboardInterrupt, GuestError) as exc:
        if got.pid is not None and tr.is_active() and not isinstance(exc, L1Gone):
            ssh.run(f"kill -TERM {got.pid}", timeout=20, check=False)
            say("interrupted: asked the inner vbench to stop (its guests are destroyed) ...")
            got.drain(time.monotonic() + 180, watch)
        chan.close()
        raise
    got.drain(time.monotonic() + 10)
    status = chan.recv_exit_status() if chan.exit_status_ready() else -1
    chan.close()
    return status, got.lines


# ---- the record of a long-lived L1 (lab up --nested) -------------------------------------------

def _state_path() -> Path:
    return paths.lab_dir() / STATE_FILE


def load_state() -> dict | None:
    try:
        data = json.loads(_state_path().read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema_version") != STATE_VERSION:
        return None
    return data


def _save_state(data: dict) -> None:
    from vbench.results.rundir import atomic_write

    atomic_write(_state_path(), json.dumps({"schema_version": STATE_VERSION, **data}, indent=2)
                 + "\n", mode=0o600)


# ---- up / down / status ----------------------------------------------------------------------

@dataclass
class L1:
    """A running hypervisor guest reached over SSH."""

    ssh: Any
    facts: dict          # what the nested record keeps about both levels (see facts())
    inner_image: Path    # the inner image directory shared into it
    booted: Any = None   # the HypervisorGuest when this process booted it (else None)
    key_pem: str = ""    # its client key (kept by `lab up --nested` for later sessions)
    alive: Callable[[], None] | None = None  # raises GuestError once L1 itself is gone


def _images(say: Say, inner: str = "debian12"):
    from vbench.host import images

    hv = images.find(RECIPE)
    if hv is None:
        say(f"hypervisor guest image not built yet: building {RECIPE} (cached for later runs)")
        hv, _, secs = images.build(RECIPE, progress=say)
        say(f"image {RECIPE} built in {secs:.0f} s")
    img = images.find(inner)
    if img is None:
        say(f"guest image {inner} not built yet: building it (cached for later runs)")
        img, _, secs = images.build(inner, progress=say)
        say(f"image {inner} built in {secs:.0f} s")
    return hv, img


def boot(stack: contextlib.ExitStack, say: Say, inner: str = "debian12",
         role: str = "nested-run") -> L1:
    """Boot L1 under the local lab (destroyed when ``stack`` closes unless detached), set it up
    and bring its own lab up; returns it."""
    from vbench.host import lab
    from vbench.scenario.schema import DeviceProfile, GuestSpec

    lb = lab.up(progress=say)
    hv, img = _images(say, inner)
    acc = lb.host.accelerator(hv.kernel)
    share_list = shares(img.dir)
    key, pub, pem = _client_key()
    cls = hypervisor_guest_class()
    g = cls(DOMAIN if role == ROLE_TAG else f"{DOMAIN}-{os.getpid()}", lb, hv, DeviceProfile(),
            GuestSpec.model_validate({"vcpus": VCPUS, "memory_mib": memory_mib(),
                                    "boot_timeout_s": BOOT_TIMEOUT_S}), acc,
            key, pub, tags={"role": role}, progress=say, share_list=share_list)
    t0 = time.monotonic()
    say(f"booting the hypervisor guest {g.name} ({acc.name.upper()} outside, {CPU_MODEL} with "
        f"svm, {VCPUS} vCPUs, {memory_mib()} MiB) ...")
    stack.enter_context(g)
    boot_s = time.monotonic() - t0
    watch = watch_l1(g.check_alive, lambda: g.console_end(CONSOLE_TAIL_BYTES))
    l1 = L1(g.ssh, {}, img.dir, booted=g, key_pem=pem, alive=watch)
    t1 = time.monotonic()
    res = g.ssh.run(setup_script(share_list), timeout=300, check=False)
    if not res.ok:
        raise LabError(f"the hypervisor guest could not be set up (KVM, vhost, shares): "
                       f"{res.tail()}")
    got = labelled_lines(res.stdout, {"kvm_module", "kernel"})
    say(f"{g.name}: {got.get('kvm_module') or 'no kvm module'} loaded, /dev/kvm, "
        f"/dev/vhost-net, /dev/vhost-vsock present, {len(share_list)} read-only shares mounted "
        f"({time.monotonic() - t1:.0f} s)")
    t2 = time.monotonic()
    status, lines = stream(g.ssh, inner_argv(["lab", "up"]), say, watch=watch)
    if status != 0:
        raise LabError(f"the inner `vbench lab up` failed (exit {status}): "
                       f"{' | '.join(lines[-3:])}")
    inner_acc = next((ln.split(":", 1)[1].strip() for ln in lines
                      if ln.startswith("accelerator:")), "unknown")
    l1.facts = {
        "outer_host": lb.host.facts(),
        "outer_accelerator": acc.name, "outer_accelerator_reason": acc.reason,
        "hypervisor_guest": {
            "domain": g.name, "domain_type": acc.domain_type,
            "cpu": (f"{CPU_MODEL} with svm required (SVM and nested paging emulated by TCG)"
                    if acc.name == "tcg" else "host-passthrough"),
            "vcpus": VCPUS, "memory_mib": memory_mib(), "image_key": hv.manifest.get("key"),
            "kernel": hv.kernel_release, "kvm_module": got.get("kvm_module", ""),
            "boot_seconds": round(boot_s, 1),
        },
        "inner_lab_accelerator": inner_acc,
        "inner_lab_up_seconds": round(time.monotonic() - t2, 1),
        "shares": [s.source for s in share_list],
    }
    say(f"nested lab is up: inner accelerator {inner_acc} (L1 boot {boot_s:.0f} s, inner lab "
        f"up {time.monotonic() - t2:.0f} s)")
    return l1


def up(say: Say) -> dict:
    """``vbench lab up --nested``: boot L1 and leave it running (idempotent)."""
    st = load_state()
    if st is not None:
        with contextlib.suppress(LabError, GuestError, OSError):
            ssh = _reconnect(st)
            ssh.close()
            say(f"nested lab already up: {st['domain']} at {st['ip']}")
            return st
        say("the recorded nested lab does not answer: removing it and booting a new one")
        down(say)
    stack = contextlib.ExitStack()
    with stack:
        l1 = boot(stack, say, role=ROLE_TAG)
        g = l1.booted
        kdir = paths.lab_dir() / "nested"
        kdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(kdir / "client_key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(l1.key_pem)
        st = {"domain": g.name, "dir": str(g.dir), "ip": g.ip, "host_key": g.host_key,
              "client_key": str(kdir / "client_key"), "inner_image": str(l1.inner_image),
              "facts": l1.facts, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        _save_state(st)
        g.detach()           # nothing left for the stack to destroy
        stack.pop_all()
    return st


def _domain_running(st: dict) -> None:
    """GuestError unless the recorded hypervisor guest's domain is running; a gone one is
    explained (:func:`vbench.guest.nested.gone`)."""
    from vbench.host import lab
    from vbench.host import libvirtd

    name = st["domain"]
    try:
        conn = libvirtd.open_connection(lab.LAB_URI)
    except LabError as exc:
        raise GuestError(str(exc)) from None
    try:
        if not conn.lookupByName(name).isActive():
            raise GuestError(f"the hypervisor guest {name} is not running")
    except libvirtd._libvirt().libvirtError:
        raise GuestError(gone(st)) from None
    finally:
        conn.close()


def _reconnect(st: dict):
    import paramiko

    from vbench.host import lab
    from vbench.host import ssh as remote

    try:
        _domain_running(st)
    except GuestError as exc:
        raise LabError(str(exc)) from None
    pkey = paramiko.Ed25519Key.from_private_key_file(st["client_key"])
    return remote.Ssh.connect(st["ip"], lab.NETNS, st["host_key"], pkey, timeout=10)


def down(say: Say) -> list[str]:
    """Destroy the recorded L1 (its inner guests go with it) and forget it."""
    from vbench.host import lab
    from vbench.host import libvirtd

    st = load_state()
    done: list[str] = []
    if st is None:
        return done
    with contextlib.suppress(LabError, OSError):
        conn = libvirtd.open_connection(lab.LAB_URI)
        try:
            libvirt = libvirtd._libvirt()
            with contextlib.suppress(libvirt.libvirtError):
                dom = conn.lookupByName(st["domain"])
                if libvirtd._tags(dom) is not None and dom.isActive():
                    dom.destroy()
                    done.append(f"destroyed hypervisor guest {st['domain']}")
        finally:
            conn.close()
    gdir = libvirtd.owned_guest_dir(st.get("dir"))
    if gdir is not None and gdir.exists():
        import shutil

        shutil.rmtree(gdir, ignore_errors=True)
        done.append(f"removed its files {gdir}")
    import shutil

    shutil.rmtree(paths.lab_dir() / "nested", ignore_errors=True)
    _state_path().unlink(missing_ok=True)
    for line in done:
        say(line)
    return done


def status_rows() -> list[tuple[str, str]]:
    st = load_state()
    if st is None:
        return [("nested lab", "not up (`vbench lab up --nested`)")]
    try:
        ssh = _reconnect(st)
        ssh.close()
        state = "running, SSH answers"
    except Exception as exc:  # a status line, whatever went wrong
        state = f"recorded but not answering ({type(exc).__name__}: {exc})"
    f = st.get("facts", {})
    return [("nested lab", f"{st['domain']} at {st['ip']}: {state}"),
            ("nested accelerators", f"outside {str(f.get('outer_accelerator', '?')).upper()}, "
                                    f"inside {f.get('inner_lab_accelerator', '?')}")]


# ---- run --nested -------------------------------------------------------------------------------

@contextlib.contextmanager
def session(say: Say, inner: str = "debian12"):
    """The L1 a nested run uses: the recorded one when it answers, else one booted for the run."""
    st = load_state()
    if st is not None:
        try:
            ssh = _reconnect(st)
        except (LabError, GuestError, OSError) as exc:
            raise LabError(f"the nested lab recorded in {_state_path()} does not answer ({exc}): "
                           f"run `vbench lab down --nested` and `vbench lab up --nested`") from None
        if Path(st["inner_image"]).name != _image_dir_name(inner):
            ssh.close()
            raise LabError(f"the nested lab shares the image {Path(st['inner_image']).name}, this "
                           f"scenario needs {inner}: restart it (`vbench lab down --nested`)")
        say(f"using the nested lab {st['domain']} at {st['ip']}")
        try:
            yield L1(ssh, st["facts"], Path(st["inner_image"]),
                     alive=watch_l1(lambda: _domain_running(st), lambda: console(st)))
        finally:
            ssh.close()
        return
    with contextlib.ExitStack() as stack:
        yield boot(stack, say, inner)


def _image_dir_name(inner: str) -> str:
    from vbench.host import images

    recipe, key = images.load_recipe(inner)
    return images.image_dir(recipe, key).name


def fetch_run(ssh: Any, inner_dir: str, results_root: Path) -> Path:
    """Copy the inner run directory into ``results_root`` (tar over SSH; only regular files and
    directories, nothing outside the destination: tarfile's data filter)."""
    parent, name = str(Path(inner_dir).parent), Path(inner_dir).name
    if not name or "/" in name or name in (".", ".."):
        raise LabError(f"refusing inner run directory {inner_dir!r}")
    tr = ssh._client.get_transport()
    chan = tr.open_session(timeout=10)
    chan.exec_command(shlex.join(["tar", "-C", parent, "-cf", "-", "--", name]))
    results_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as tmp:
        while True:
            chunk = chan.recv(1 << 20)
            if not chunk:
                break
            tmp.write(chunk)
        status = chan.recv_exit_status()
        chan.close()
        if status != 0:
            raise LabError(f"copying {inner_dir} out of the hypervisor guest failed (tar exit "
                           f"{status})")
        tmp.seek(0)
        with tarfile.open(fileobj=tmp, mode="r:") as tf:
            members = [m for m in tf.getmembers()
                       if m.name == name or m.name.startswith(name + "/")]
            tf.extractall(results_root, members=members, filter="data")
    return results_root / name


def label_run(run_path: Path, facts: dict) -> None:
    """Keep both levels in the run record: the inner one as measured (KVM, proven by the domain
    type of every variant and the guest's own systemd-detect-virt) and the outer one."""
    from vbench.results.rundir import RunDir

    rd = RunDir.open(run_path)
    rec = rd.read_record()
    types = sorted({t for v in rec.variants.values() if v.domain_xml
                    for t in [v.domain_xml.split("type='", 1)[1].split("'", 1)[0]]})
    seen = {name: v.guest_virt for name, v in rec.variants.items() if v.guest_virt}
    rec.environment.nested = {**facts, "inner_domain_types": types, "inner_guest_virt": seen,
                              "note": NOTE}
    rd.write_record(rec)


def run(scenario_file: str, text: str, results_root: Path, say: Say, extra: list[str],
        inner_image: str = "debian12") -> Path | None:
    """``vbench run SCENARIO --nested``: the same ``vbench run`` inside L1; returns the copied run
    directory (None when the inner run made none)."""
    name = Path(scenario_file).name
    with session(say, inner_image) as l1:
        inner_scn = f"{INNER_ROOT}/scenarios/{name}"
        with l1.ssh._client.open_sftp() as sftp:
            with sftp.open(inner_scn, "w") as fh:
                fh.write(text)
        inner_results = f"{INNER_ROOT}/results"
        argv = inner_argv(["run", inner_scn, "--results", inner_results, "--no-report", *extra])
        t0 = time.monotonic()
        lines: list[str] = []
        try:
            status, _ = stream(l1.ssh, argv, say, out=lines, watch=l1.alive)
        except KeyboardInterrupt:
            # Keep what the inner run stored before it stopped (as a flat run keeps it).
            with contextlib.suppress(Exception):
                partial = _inner_run_dir(lines)
                if partial is not None:
                    path = fetch_run(l1.ssh, partial, results_root)
                    label_run(path, l1.facts)
                    say(f"results so far copied to {path}")
            raise
        say(f"inner run finished (exit {status}) after {time.monotonic() - t0:.0f} s")
        run_dir = _inner_run_dir(lines)
        if run_dir is None:
            return None
        path = fetch_run(l1.ssh, run_dir, results_root)
        label_run(path, l1.facts)
        return path


def _inner_run_dir(lines: list[str]) -> str | None:
    for line in lines:
        if line.startswith("results: ") and line[9:].startswith(INNER_ROOT + "/results/"):
            return line[9:].strip()
    return None
