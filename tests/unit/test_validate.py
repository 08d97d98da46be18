"""`vbench validate` and the checks `run` shares with it (vbench.commands.preflight): every shipped
scenario passes, a hostile corpus fails with exit 3 and one line per problem, each with its path;
nothing boots (VBENCH_HOME is empty and no lab is up)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vbench.commands import preflight
from vbench.scenario.budget import HostFigures
from vbench.core.errors import ScenarioError, UserError
from vbench.fleet.hosts import parse_hosts

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))
BIG_HOST = HostFigures(free_disk_gib=1000, mem_available_mib=1 << 20, cpus=64)

GOOD = """\
name: t
device: disk
variants:
  - {name: a, disk: {bus: virtio}}
  - {name: b, disk: {bus: sata}}
workloads:
  - {name: w, fio: {rw: randread}}
"""

# (file text, the field paths every problem line must name, in order)
HOSTILE = {
    "three field errors": (GOOD.replace("bus: sata", "bus: usb").replace("randread", "rread")
                           + "colour: blue\n",
                           ["variants[1].disk.bus", "workloads[0].fio.rw", "colour"]),
    "model problems": (GOOD.replace("name: b", "name: a") + "reference: nope\n",
                       ["variants:", "reference:"]),
    "repetitions 1": (GOOD + "repetitions: 1\n", ["repetitions:"]),
    "adaptive min 2": (GOOD + "repetitions: {min: 2, max: 5, target_ci: 5%}\n",
                       ["repetitions.min:"]),
    "hostile fio option": (GOOD.replace("{rw: randread}", "{rw: randread, options: "
                                        "{filename: /etc/passwd}}"),
                           ["workloads[0].fio.options"]),
    "balloon sizes": ("name: b\ndevice: balloon\nguest: {memory_mib: 512}\nvariants:\n"
                      "  - {name: v, balloon: {model: virtio}}\nworkloads:\n"
                      "  - {name: w, balloon: {target_mib: 600, touch_mib: 600}}\n",
                      ["workloads[0].balloon.target_mib", "workloads[0].balloon.touch_mib"]),
    "over the time budget": (GOOD.replace("{rw: randread}", "{rw: randread, runtime: 3600}")
                             + "repetitions: 30\n", ["repetitions:"]),
    "not a mapping": ("- 1\n- 2\n", ["host 1: each host is a mapping", "host 2:"]),
    "yaml alias": ("a: &x [1]\nb: *x\n", ["aliases"]),
    "empty": ("", ["empty"]),
    "hosts file": ("hosts:\n  - {name: a, colour: red}\n  - {name: 'b c'}\n  - {name: a}\n",
                   ["host 1: unknown field 'colour'", "host 2:", "appears twice"]),
}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_scenario_validates(path):
    # BIG_HOST stands in for the figures; device nodes are checked apart (net-vhost needs
    # /dev/vhost-net, vsock /dev/vhost-vsock): their one-line refusals are tested below and in
    # test_plan and test_domain_xml_knobs.
    scn, problems = preflight.check_scenario_text(path.read_text(), str(path), host=BIG_HOST,
                                                  devices_too=False)
    assert problems == []
    # on a host with every device node (vsock.yaml: /dev/vhost-vsock) nothing else is in the way
    assert preflight.host_device_problems(scn, str(path), exists=lambda p: True) == []


VSOCK_YAML = ROOT / "scenarios" / "vsock.yaml"
NO_VHOST_VSOCK = f"{VSOCK_YAML}: this host lacks vsock: /dev/vhost-vsock (vsock virtio)"


def test_only_vsock_yaml_needs_vhost_vsock_and_it_says_so_in_one_line():
    needing = {}
    for path in SHIPPED:
        scn, _ = preflight.check_scenario_text(path.read_text(), str(path), host=None)
        if got := preflight.host_device_problems(scn, str(path),
                                                 exists=lambda p: p != "/dev/vhost-vsock"):
            needing[path.name] = got
    assert needing == {"vsock.yaml": [NO_VHOST_VSOCK]}  # the vsock variant, not the TCP one


def test_run_refuses_vsock_yaml_before_anything_boots_on_a_host_without_vhost_vsock():
    from vbench.core.errors import LabError
    from vbench.host.hosts import require_host_devices
    from vbench.scenario.schema import load_scenario_text

    scn = load_scenario_text(VSOCK_YAML.read_text())
    with pytest.raises(LabError) as exc:
        require_host_devices(scn, exists=lambda p: p != "/dev/vhost-vsock")
    assert "\n" not in str(exc.value)
    assert "vsock: /dev/vhost-vsock (vsock virtio)" in str(exc.value)
    assert "tcp-virtio-net" not in str(exc.value)
    require_host_devices(scn, exists=lambda p: True)


@pytest.mark.skipif(os.path.exists("/dev/vhost-vsock"), reason="this host has /dev/vhost-vsock")
def test_cli_validate_refuses_vsock_yaml_in_one_line_here(tmp_path):
    cp = _cli(tmp_path, "validate", "scenarios/vsock.yaml")
    assert cp.returncode == 3 and cp.stdout == ""
    assert cp.stderr == ("vbench: error: scenarios/vsock.yaml: this host lacks vsock: "
                         "/dev/vhost-vsock (vsock virtio)\n")


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_file_lists_every_problem_with_its_path(tmp_path, name):
    text, needles = HOSTILE[name]
    f = tmp_path / "f.yaml"
    f.write_text(text)
    checked = preflight.check_file(f)
    assert len(checked.problems) >= len(needles), checked.problems
    for needle in needles:
        assert any(needle in p for p in checked.problems), (needle, checked.problems)
    for p in checked.problems:
        assert p.startswith(f"{f}: ") and "\n" not in p and "more problem" not in p


def test_smoke_true_allows_fewer_repetitions():
    _scn, problems = preflight.check_scenario_text(GOOD + "repetitions: 1\nsmoke: true\n", "s",
                                                   host=BIG_HOST)
    assert problems == []


def test_a_directory_is_one_clear_line(tmp_path):
    assert preflight.check_file(tmp_path).problems == [f"{tmp_path}: is a directory, not a file"]
    with pytest.raises(ScenarioError, match="is a directory, not a file$"):
        preflight.require_scenario(tmp_path)


def test_this_host_too_small_is_refused_with_the_host_figure():
    small = HostFigures(free_disk_gib=0.1, mem_available_mib=100, cpus=1)
    _scn, problems = preflight.check_scenario_text(GOOD.replace("name: t", "name: t\nguest: "
                                                                "{vcpus: 4}"), "s", host=small)
    assert [p.split(":")[1].strip() for p in problems] == ["guest.vcpus", "guest.memory_mib",
                                                            "disk.size_gib"]


def test_run_refuses_with_the_same_lines(tmp_path):
    f = tmp_path / "f.yaml"
    f.write_text(HOSTILE["three field errors"][0])
    with pytest.raises(ScenarioError) as exc:
        preflight.require_scenario(f)
    assert exc.value.problems == preflight.check_file(f).problems


def test_hosts_file_problems_are_all_listed():
    with pytest.raises(UserError) as exc:
        parse_hosts([{"name": "a", "env": {"X": "1", "VBENCH_ACCEL": "xen"}}])
    assert len(exc.value.problems) == 2


def _cli(tmp_path, *args):
    env = {**os.environ, "VBENCH_HOME": str(tmp_path / "home"),
           "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "vbench", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_validate_exit_statuses(tmp_path):
    ok = _cli(tmp_path, "validate", "scenarios/smoke-disk.yaml", "scenarios/disk.yaml")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count(": ok (") == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(HOSTILE["three field errors"][0])
    cp = _cli(tmp_path, "validate", str(bad), "scenarios/disk.yaml", str(tmp_path))
    assert cp.returncode == 3
    lines = cp.stderr.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("vbench: error: ") for line in lines), lines
