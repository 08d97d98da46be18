"""The command line as a user runs it (a subprocess), for what needs no lab: help, and the one-line
errors of bad input. VBENCH_HOME points into tmp_path, so no real lab record or image is found,
and every command here fails validation before anything would start a daemon or build an image.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"

GOOD = """\
name: t
device: disk
variants:
  - {name: a, disk: {bus: virtio}}
workloads:
  - {name: w, fio: {rw: randread}}
"""


@pytest.fixture
def vbench(tmp_path):
    env = {**os.environ, "VBENCH_HOME": str(tmp_path / "home"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    env.pop("VBENCH_ACCEL", None)

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vbench", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    return run


def assert_one_error_line(cp: subprocess.CompletedProcess) -> str:
    lines = cp.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{cp.stderr}"
    assert lines[0].startswith("vbench: error: ")
    assert "Traceback" not in cp.stderr + cp.stdout
    return lines[0]


def test_help_lists_commands(vbench):
    cp = vbench("--help")
    assert cp.returncode == 0 and cp.stderr == ""
    out = cp.stdout
    commands = ["lab", "image", "guests", "guest", "run"]
    if importlib.util.find_spec("vbench.reportcli") is not None:
        commands += ["report", "compare", "history"]
    for c in commands:
        assert f"\n    {c} " in out, f"command {c!r} missing from --help:\n{out}"


def test_run_unknown_bus_exits_3_with_one_line(vbench, tmp_path):
    scn = tmp_path / "bad.yaml"
    scn.write_text(GOOD.replace("bus: virtio", "bus: usb"))
    cp = vbench("run", str(scn))
    assert cp.returncode == 3
    line = assert_one_error_line(cp)
    assert line == (f"vbench: error: {scn}: variants[0].disk.bus: must be one of virtio, scsi, "
                    f"sata, ide, nvme (got 'usb')")
    assert cp.stdout == ""
    assert not (tmp_path / "results").exists()  # nothing was created
    assert not (tmp_path / "home").exists()


def test_run_missing_file_exits_3_with_one_line(vbench, tmp_path):
    cp = vbench("run", str(tmp_path / "nope.yaml"))
    assert cp.returncode == 3
    line = assert_one_error_line(cp)
    assert "nope.yaml" in line and "no such scenario file" in line


def test_guests_verify_bogus_profile_exits_3(vbench):
    cp = vbench("guests", "verify", "bogus-profile")
    assert cp.returncode == 3
    line = assert_one_error_line(cp)
    assert "'bogus-profile'" in line and "virtio, emulated" in line


def test_lab_status_without_a_lab_does_not_crash(vbench):
    cp = vbench("lab", "status", timeout=120)
    assert "Traceback" not in cp.stdout + cp.stderr
    assert "internal error" not in cp.stderr
    if cp.returncode == 0:
        assert "namespace" in cp.stdout and "absent" in cp.stdout
        assert "not running" in cp.stdout  # no daemon of *this* (empty) lab record
    else:
        assert_one_error_line(cp)


# ---- in-process (cli.main), for the cases that need no separate interpreter ----------------------

@pytest.fixture
def main(tmp_path, monkeypatch):
    """cli.main in this process; anything that would reach the lab fails the test instead."""
    import signal

    from vbench import cli
    from vbench.guest import boot as guests
    from vbench.run import runner

    monkeypatch.setenv("VBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)

    def forbidden(*a, **kw):
        raise AssertionError("this command must fail validation before touching the lab")

    monkeypatch.setattr(runner, "run_scenario", forbidden)
    monkeypatch.setattr(guests.lab, "current", forbidden)
    old = signal.getsignal(signal.SIGTERM)  # main() installs its own SIGTERM handler
    yield cli.main
    signal.signal(signal.SIGTERM, old)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vbench: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_version(main, capsys):
    from vbench import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"vbench {__version__}"


def test_no_command_is_a_usage_error(main, capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2 and "usage:" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["lab", "--help"], ["run", "--help"],
                                  ["guests", "verify", "--help"], ["guest", "check", "--help"]])
def test_sub_help(main, capsys, args):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0 and "usage: vbench" in capsys.readouterr().out


def test_run_bad_yaml_exits_3(main, capsys, tmp_path):
    scn = tmp_path / "bad.yaml"
    scn.write_text("name: t\ndevice: [disk\n")
    assert main(["run", str(scn)]) == 3
    assert "not valid YAML at line" in one_error_line(capsys)


def test_run_without_scenario_is_a_user_error(main, capsys):
    assert main(["run"]) == 2
    assert "name a scenario file" in one_error_line(capsys)


def test_run_bad_repetitions_refused_before_the_lab(main, capsys, tmp_path):
    scn = tmp_path / "ok.yaml"
    scn.write_text(GOOD)
    assert main(["run", str(scn), "--repetitions", "0"]) == 2
    assert "--repetitions must be at least 1" in one_error_line(capsys)


def test_guests_verify_checks_every_profile_before_booting(main, capsys):
    assert main(["guests", "verify", "virtio", "disk=usb"]) == 3
    assert "disk.bus: must be one of virtio, scsi, sata, ide, nvme (got 'usb')" in one_error_line(capsys)


def test_guest_check_with_crafted_config(main, capsys):
    assert main(["guest", "check", "--config",
                 str(ROOT / "tests/data/crafted-kconfig-config.txt")]) == 0
    out = capsys.readouterr().out
    assert "CONFIG_SCSI_VIRTIO" in out and "missing" in out


def test_guest_check_scenario_that_cannot_run(main, capsys, tmp_path):
    scn = tmp_path / "scsi.yaml"
    scn.write_text(GOOD.replace("bus: virtio", "bus: scsi"))
    assert main(["guest", "check", "--config", str(ROOT / "tests/data/crafted-kconfig-config.txt"),
                 "--scenario", str(scn)]) == 12
    assert "scenario cannot run: a needs CONFIG_SCSI_VIRTIO" in capsys.readouterr().out


def test_unexpected_exception_is_one_line_without_debug(main, capsys, monkeypatch):
    from vbench.guest import kconfig
    from vbench.core.errors import ExitStatus

    def bug(text):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(kconfig, "parse_config", bug)
    x = Path("x")
    x.write_text("CONFIG_VIRTIO=y\n")
    assert main(["guest", "check", "--config", "x"]) == ExitStatus.INTERNAL_ERROR == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: ZeroDivisionError: oops" in err
    assert "--debug" in err and "Traceback" not in err
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "guest", "check", "--config", "x"])


def test_run_resume_reads_the_stored_record(main, tmp_path, monkeypatch, capsys):
    """`vbench run --resume RUN` takes scenario and repetitions from the stored (v1) record."""
    import shutil

    from vbench.run import runner

    run = tmp_path / "results" / "20261126-113024-smoke-disk"
    shutil.copytree(Path(__file__).resolve().parents[1] / "data" / "runs" / run.name, run)
    seen = {}

    def fake_run(scn, text, scenario_file, results_root, connect, accel, say, repetitions=None,
                 resume=None):
        seen.update(name=scn.name, file=scenario_file, root=results_root, resume=resume)
        return resume

    monkeypatch.setattr(runner, "run_scenario", fake_run)
    assert main(["run", "--resume", str(run), "--no-report"]) == 0
    assert seen == {"name": "smoke-disk", "file": "scenarios/smoke-disk.yaml",
                    "root": run.parent, "resume": run}
    out = capsys.readouterr().out
    assert "randread-4k-qd32" in out and f"run: {run}" in out
    # the summary's medians are followed by the headline ratios and their verdicts
    medians, ratios = out.split("Paravirtual vs emulated (headline metrics):")
    assert "median" in medians and "virtio-blk vs sata" not in medians
    assert "virtio-blk vs sata" in ratios and "better" in ratios and "paravirtual better in" in ratios
