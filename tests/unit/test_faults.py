"""The test-only fault injection enters a run at one seam (faults.install); no production module
reads VBENCH_FAULTS. These check the seam with a fake guest; tests/integration/test_faults.py
injects the faults into real guests."""

from __future__ import annotations

import re
from pathlib import Path

from vbench.run import faults

SRC = Path(__file__).resolve().parents[2] / "src" / "vbench"


class FakeShell:
    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, command: str, timeout: float = 60, check: bool = True) -> str:
        self.commands.append(command)
        return "ran"

    def is_alive(self) -> bool:
        return True


class FakeGuest:
    def __init__(self) -> None:
        self.shell = FakeShell()


def test_without_vbench_faults_nothing_is_installed(monkeypatch):
    monkeypatch.delenv("VBENCH_FAULTS", raising=False)
    overrides: dict[str, dict] = {"a": {"emulator": "/q"}}
    assert faults.install(["a", "b"], overrides) is None
    assert overrides == {"a": {"emulator": "/q"}}


def test_install_boots_no_lease_variants_with_the_link_down(monkeypatch):
    monkeypatch.setenv("VBENCH_FAULTS", "no-lease@b@*,panic@a@1")
    overrides: dict[str, dict] = {"a": {"emulator": "/q"}}
    assert faults.install(["a", "b"], overrides) is faults.before_unit
    assert overrides == {"a": {"emulator": "/q"}, "b": {"mgmt_link_down": True}}


def test_stop_workload_prefixes_the_units_next_command_once(monkeypatch):
    monkeypatch.setenv("VBENCH_FAULTS", "stop-workload@hung@1")
    g = FakeGuest()
    real = g.shell
    assert faults.before_unit(g, "hung", 0) is None and g.shell is real  # another repetition
    hook = faults.before_unit(g, "hung", 1)
    assert g.shell is not real and g.shell.is_alive()
    assert g.shell.run("fio --name=w", timeout=5) == "ran"
    g.shell.run("cat /proc/meminfo")
    assert real.commands == [faults.STOPPER + "fio --name=w", "cat /proc/meminfo"]
    hook.cancel()
    assert g.shell is real


def test_cancel_keeps_a_connection_made_after_a_reconnect(monkeypatch):
    monkeypatch.setenv("VBENCH_FAULTS", "panic@p@*")
    g = FakeGuest()
    hook = faults.before_unit(g, "p", 0)
    new = FakeShell()
    g.shell = new  # recovery reconnected during the unit
    hook.cancel()
    assert g.shell is new


def test_no_production_module_reads_the_faults():
    users = sorted(p.name for p in SRC.rglob("*.py")
                   if re.search(r"\bfaults\b", p.read_text()) and p.name != "faults.py")
    assert users == ["runner.py", "session.py"]  # install() in the runner; session documents its hook


def test_boot_hangs_go_to_the_first_attempt_or_to_every_attempt(monkeypatch):
    monkeypatch.setenv("VBENCH_FAULTS", "boot-hang@once@*,boot-hang-always@stuck@*")
    overrides: dict[str, dict] = {}
    assert faults.install(["once", "stuck", "fine"], overrides) is faults.before_unit
    hang = {"extra_cmdline": faults.HANG_CMDLINE}
    assert overrides["once"] == {"by_attempt": [hang]}  # the retry boots normally
    assert overrides["stuck"]["by_attempt"] == [hang] * faults.MAX_ATTEMPTS
    assert "fine" not in overrides
    from vbench.scenario.schema import GuestSpec

    assert GuestSpec.model_fields["boot_retries"].metadata[-1].le < faults.MAX_ATTEMPTS


def test_destroy_from_outside_goes_through_the_uri_gate_and_never_raises(monkeypatch):
    from vbench.core.errors import LabError
    from vbench.host import libvirtd

    calls: list = []

    class Dom:
        def destroy(self):
            calls.append("destroy")

    class Conn:
        def lookupByName(self, name):
            calls.append(("lookup", name))
            return Dom()

        def close(self):
            calls.append("close")

    def opened(uri):
        calls.append(("open", uri))
        return Conn()

    monkeypatch.setattr(libvirtd, "open_connection", opened)
    faults._destroy_from_outside("qemu:///system", "vbench-x")
    assert calls == [("open", "qemu:///system"), ("lookup", "vbench-x"), "destroy", "close"]

    def refused(uri):
        raise LabError(f"{uri} is not allowed")

    monkeypatch.setattr(libvirtd, "open_connection", refused)
    faults._destroy_from_outside("qemu+ext:///x", "vbench-x")  # said nothing, raised nothing
