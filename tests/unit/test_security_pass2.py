"""Issue 21 (untrusted input, second pass): one test per finding, each failing before its fix."""

from __future__ import annotations

import os

import pytest

from vbench.errors import ScenarioError
from vbench.scenario import load_scenario_text

FS_SCENARIO = """name: s
device: fs
variants:
  - {name: a, fs: {model: virtiofs%s}}
workloads:
  - {name: w, fio: {rw: randread}}
"""


def one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and len(msg) < 400, msg[:500]
    return msg


# ---- finding 1: no scenario field names a program ---------------------------------------------

@pytest.mark.parametrize("path", ["/tmp/evil", "/usr/lib/qemu/../../../tmp/evil",
                                  "/usr/lib/qemu/virtiofsd"])
def test_fs_virtiofsd_field_is_refused(path):
    with pytest.raises(ScenarioError) as exc:
        load_scenario_text(FS_SCENARIO % f", virtiofsd: {path}")
    assert "virtiofsd" in one_line(exc)


def test_virtiofsd_is_found_at_fixed_locations_only(tmp_path, monkeypatch):
    from vbench.devices import fs

    assert set(fs.VIRTIOFSD_PATHS) == {"/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"}
    scn = load_scenario_text(FS_SCENARIO % "")
    spec = scn.profile(scn.variants[0]).fs
    path, _why = fs.DEVICE.host_requirements(spec)[0]
    assert path in fs.VIRTIOFSD_PATHS
    # a candidate that is not a root-owned, not group/other-writable regular file is skipped
    bad = tmp_path / "virtiofsd"
    bad.write_text("#!/bin/sh\n")
    os.chmod(bad, 0o777)
    monkeypatch.setattr(fs, "VIRTIOFSD_PATHS", (str(bad), str(tmp_path / "absent")))
    assert fs.find_virtiofsd() is None
    path, _why = fs.DEVICE.host_requirements(spec)[0]
    assert not os.path.exists(path)  # reported missing: the scenario is refused on this host
