"""One host interface (vbench.host.hosts, issue 19 item 4): the local lab, a user's libvirtd and
another host answer the same questions, and no caller asks which one it has."""

from __future__ import annotations

import ast
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from vbench.core import procs
from vbench.core.errors import GuestError, LabError, RemoteCommandError
from vbench.core.metrics import CommandResult
from vbench.host import hosts, lab

SRC = Path(__file__).resolve().parents[2] / "src" / "vbench"

# Where "which kind of host is this" may be asked: the host implementations themselves (the
# interface, the session and URI of another host, the lab that builds its host from --connect,
# gc that opens a session to clean up), the guest-class registry, and the fleet's identity probe
# (it pins a URI before opening it read-only; no lab there).
HOST_IMPLEMENTATIONS = {"host/hosts.py", "host/remote.py", "host/remoteuri.py", "host/uris.py",
                        "host/lab.py", "host/gc.py"}
GUEST_REGISTRY = "guest/domain.py"
HOST_CLASSES = {"Host", "LocalLab", "OwnLibvirtd", "OtherHost"}


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def host_branches(tree: ast.AST) -> list[tuple[int, str]]:
    """``lab.remote``-style questions in a module: (line, what)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "remote":
            found.append((node.lineno, ".remote"))
        elif isinstance(node, ast.Call):
            fn = _name(node.func)
            args = node.args
            if fn in ("getattr", "hasattr") and len(args) >= 2 and \
                    isinstance(args[1], ast.Constant) and args[1].value == "remote":
                found.append((node.lineno, f"{fn}(..., 'remote')"))
            elif fn == "is_remote":
                found.append((node.lineno, "is_remote(...)"))
            elif fn == "isinstance" and len(args) == 2 and any(
                    _name(n) in HOST_CLASSES for n in ast.walk(args[1])):
                found.append((node.lineno, "isinstance(..., <a host class>)"))
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for o in operands:
                if "remote" in _name(o).lower() and any(
                        isinstance(c, ast.Constant) and c.value is None for c in operands):
                    found.append((node.lineno, f"{_name(o)} is (not) None"))
                if _name(o) == "kind" and isinstance(o, ast.Attribute) and \
                        "host" in _name(o.value).lower():
                    found.append((node.lineno, "host.kind compared"))
    return found


def test_no_remote_branches_outside_the_host_implementations():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = str(path.relative_to(SRC))
        if rel in HOST_IMPLEMENTATIONS:
            continue
        for line, what in host_branches(ast.parse(path.read_text())):
            if rel == GUEST_REGISTRY and what.startswith("isinstance"):
                continue  # the remote guest's own check that its host has a session
            if rel == "fleet/identity.py" and what == "is_remote(...)":
                continue  # pins a qemu+ssh:// URI before a read-only open; no lab involved
            bad.append(f"{rel}:{line}: {what}")
    assert bad == [], ("ask the lab's host (lab.host.<op>, vbench.host.hosts), not which kind "
                       "it is: " + "; ".join(bad))


@pytest.mark.parametrize("text, found", [
    ("if lab.remote is not None:\n    pass\n", True),
    ("rh = getattr(target.lab, 'remote', None)\n", True),
    ("x = a if remote is None else b\n", True),
    ("if uris.is_remote(connect):\n    pass\n", True),
    ("if lb.host.kind == 'remote':\n    pass\n", True),
    ("ok = isinstance(h, hosts.OtherHost)\n", True),
    ("res = lab.host.run(argv, timeout=5)\n", False),
    ("if dev.kind == 'disk':\n    pass\n", False),
])
def test_the_branch_finder_sees_them(text, found):
    assert bool(host_branches(ast.parse(text))) is found


# ---- which host a lab has ----------------------------------------------------------------------

def test_a_lab_carries_its_host_kind():
    here = lab.Lab("qemu:///system", "vbench", lab.LabState())
    users = lab.Lab("qemu:///system", None, lab.LabState())
    assert type(here.host) is hosts.LocalLab and here.host.kind == "lab"
    assert here.host.netns == "vbench" and here.host.uri == "qemu:///system"
    assert type(users.host) is hosts.OwnLibvirtd and users.host.kind == "libvirtd"
    assert users.host.netns is None
    session = SimpleNamespace(libvirt_uri="qemu+ssh://root@hv1/system?command=/w",
                              target=SimpleNamespace(host="hv1"))
    far = hosts.for_uri("ignored", None, None, session)  # type: ignore[arg-type]
    assert type(far) is hosts.OtherHost and far.kind == "remote" and far.uri == session.libvirt_uri
    assert far.via is session and here.host.via is None and users.host.via is None


def test_kind_for_a_connect_uri():
    assert hosts.kind_for(None) is hosts.LocalLab
    assert hosts.kind_for("qemu:///system") is hosts.OwnLibvirtd
    assert hosts.kind_for("qemu+ssh://root@hv1/system") is hosts.OtherHost


def test_each_kind_has_its_guest_class():
    from vbench.guest import domain

    for kind, cls in ((hosts.LocalLab, domain.Guest), (hosts.OwnLibvirtd, domain.Guest),
                      (hosts.OtherHost, domain.RemoteGuest)):
        assert domain.guest_class(SimpleNamespace(host=SimpleNamespace(kind=kind.kind))) is cls
    with pytest.raises(GuestError, match="no guest class for a 'nested' host"):
        domain.guest_class(SimpleNamespace(host=SimpleNamespace(kind="nested")))


def test_only_another_host_refuses_what_it_cannot_run_yet():
    from vbench.scenario.schema import load_scenario

    root = Path(__file__).resolve().parents[2]
    scn = load_scenario(str(root / "scenarios" / "rng.yaml"))
    with pytest.raises(LabError, match="not supported on a remote host yet"):
        hosts.OtherHost.refuse_unsupported(scn)
    hosts.LocalLab.refuse_unsupported(scn)  # rng needs no host device
    hosts.OwnLibvirtd.refuse_unsupported(scn)


# ---- the local implementation, with fakes at the process seam ----------------------------------

@pytest.fixture
def ran(monkeypatch):
    calls: list[list[str]] = []

    def run(argv, timeout=None, check=True, **kw):
        calls.append(list(argv))
        return CommandResult(" ".join(argv), 0, "out", "", 0.0)

    monkeypatch.setattr(procs, "run", run)
    return calls


def test_local_commands_run_in_the_lab_namespace_or_as_they_are(ran):
    lab.Lab("qemu:///system", "vbench", lab.LabState()).host.run(["ping", "-c", "1", "x"], 5)
    lab.Lab("qemu:///system", None, lab.LabState()).host.run(["ping", "-c", "1", "x"], 5)
    assert ran == [["ip", "netns", "exec", "vbench", "ping", "-c", "1", "x"],
                   ["ping", "-c", "1", "x"]]


def test_a_local_peer_is_a_host_peer_in_the_namespace():
    from vbench.host.peer import HostPeer

    p = hosts.LocalLab("qemu:///system", "vbench").peer(["iperf3", "-s"], 5201)
    assert isinstance(p, HostPeer) and p.ns == "vbench" and p.port == 5201
    assert p.argv == ["ip", "netns", "exec", "vbench", "iperf3", "-s"]  # not started here


def test_local_confined_command_is_sandboxed_to_its_file(ran, monkeypatch, tmp_path):
    from vbench.host import sandbox

    monkeypatch.setattr(sandbox, "confine",
                        lambda argv, w: ["bwrap", "--bind", str(w), "--", *argv])
    f = tmp_path / "scratch.raw"
    res = hosts.OwnLibvirtd("qemu:///system").run_confined(["fio", "x"], f, ["timeout", "9"], 30)
    assert res.ok and ran == [["timeout", "9", "bwrap", "--bind", str(f), "--", "fio", "x"]]
    monkeypatch.setattr(procs, "run", lambda argv, timeout=None, check=True: CommandResult(
        " ".join(argv), 1, "", "fio: bad option", 0.1))
    with pytest.raises(RemoteCommandError, match="bad option"):
        hosts.LocalLab("qemu:///system", "vbench").run_confined(["fio", "x"], f, [], 30)


def test_local_baseline_scratch_is_claimed_and_removed(monkeypatch, tmp_path):
    from vbench.devices import disk

    monkeypatch.setenv("VBENCH_HOME", str(tmp_path))
    monkeypatch.setattr(disk, "make_scratch", lambda f, size, mode: f.write_bytes(b"\0" * 8))
    host = hosts.LocalLab("qemu:///system", "vbench")
    f = host.baseline_scratch("20261205-000000-x", 0.25, "full")
    assert f == host.guest_dir("vbench-host-20261205-000000-x") / "scratch.raw"
    assert f.read_bytes() == b"\0" * 8 and (f.parent / "owner.json").exists()  # gc knows whose
    host.remove_dir(f.parent)
    assert not f.parent.exists()

    def full(f, size, mode):
        f.write_bytes(b"\0")
        raise OSError("No space left on device")

    monkeypatch.setattr(disk, "make_scratch", full)
    with pytest.raises(OSError):
        host.baseline_scratch("20261205-000000-y", 0.25, "full")
    assert not host.guest_dir("vbench-host-20261205-000000-y").exists()  # nothing half-made kept


def test_local_file_tail_and_image(tmp_path):
    host = hosts.OwnLibvirtd("qemu:///system")
    p = tmp_path / "console.log"
    p.write_bytes(bytes(range(100)))
    assert host.read_tail(p, 10) == bytes(range(90, 100))
    assert host.read_tail(p, 1000) == bytes(range(100))
    assert host.read_tail(tmp_path / "absent", 10) == b""
    img = object()
    assert host.place_image(img, print) is img  # libvirt here reads the cached image in place


def test_local_qemu_pid_from_the_pidfile_else_by_name(monkeypatch):
    from vbench.host import libvirtd

    monkeypatch.setattr(procs, "read_pidfile", lambda p: None)
    monkeypatch.setattr(libvirtd, "qemu_pid_by_name",
                        lambda name: 42 if name == "vbench-g" else None)
    assert hosts.OwnLibvirtd("qemu:///system").qemu_pid("vbench-g") == 42
    monkeypatch.setattr(procs, "read_pidfile", lambda p: 7 if p.name == "vbench-g.pid" else None)
    assert hosts.LocalLab("qemu:///system", "vbench").qemu_pid("vbench-g") == 7


def test_a_forced_accelerator_needs_no_libvirt(monkeypatch):
    monkeypatch.delenv("VBENCH_ACCEL", raising=False)
    for host in (hosts.LocalLab("test:///nowhere", "vbench"), hosts.OwnLibvirtd("test:///nowhere")):
        acc = host.accelerator(None, override="tcg")
        assert acc.name == "tcg" and "--accel=tcg" in acc.reason


def test_local_facts_name_this_machine_and_its_libvirt(ran, monkeypatch):
    import platform

    from vbench.host import libvirtd

    def unreachable(uri):
        raise LabError(f"cannot connect to {uri}")

    monkeypatch.setattr(libvirtd, "open_connection", unreachable)
    facts = hosts.OwnLibvirtd("qemu:///system").facts()
    assert facts["host"] == platform.node() and facts["cpus"] == os.cpu_count()
    assert facts["libvirt_uri"] == "qemu:///system" and facts["libvirt_version"] == "unknown"
    assert facts["test_network"] == "unknown"  # never guessed
    assert ["qemu-system-x86_64", "--version"] in ran
