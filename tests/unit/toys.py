"""The harness of the "a new kind is one file and one registration line" tests (a toy workload,
a toy device): the toy module is written to a temporary directory, registered the one way an
in-tree module is, and a run goes through the real run loop in a fresh interpreter (the
registries close when ``vbench.scenario.schema`` is imported, so not in this one).

``body`` runs after the registration with ``scn`` (the scenario), ``store`` (the run directory
reader), ``Booted``, ``Target``, ``executors``, ``FakeGuest`` and ``FakeGuests`` (tests/unit/
test_session.py) and ``run(guests)`` (the real session over a guest factory: its sample rows);
it sets ``out``, which comes back here as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[2] / "src"

PRELUDE = r'''
import json, sys
import {module}
import vbench.{package} as registry

registry.register({module}.{attr})  # the one registration line ({package}.MODULES in-tree)

sys.path.insert(0, sys.argv[2])
from test_session import FakeGuest, FakeGuests, make_session
from vbench.results import rundir as store
from vbench.run import executors
from vbench.run.executors import Target
from vbench.run.session import Booted
from vbench.scenario.schema import load_scenario_text

scn = load_scenario_text(sys.argv[1])


def run(guests):
    s = make_session(sys.argv[3], scn, guests=guests, execute=executors.execute)
    s.run()
    return list(store.iter_sample_rows(s.rd.path))


'''


def run_toy(tmp_path: Path, module: str, text: str, body: str, scenario: str) -> Any:
    """Register toy ``module`` (source ``text``: a workload ending ``WORKLOAD = ...`` or a device
    ending ``DEVICE = ...``), run ``body`` on ``scenario``; its ``out``."""
    (tmp_path / f"{module}.py").write_text(text)
    package, attr = ("workloads", "WORKLOAD") if "\nWORKLOAD = " in text else ("devices", "DEVICE")
    driver = (PRELUDE.format(module=module, package=package, attr=attr) + body
              + "\nprint(json.dumps(out))\n")
    env = {"PYTHONPATH": f"{SRC}:{tmp_path}", "PATH": "/usr/bin:/bin"}
    cp = subprocess.run([sys.executable, "-c", driver, scenario, str(Path(__file__).parent),
                         str(tmp_path / "results")], capture_output=True, text=True, timeout=120,
                        env=env, cwd=tmp_path)
    assert cp.returncode == 0, cp.stderr[-3000:]
    return json.loads(cp.stdout.strip().splitlines()[-1])
