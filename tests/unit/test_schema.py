"""The JSON schemas and the scenario reference under docs/ are what the models generate (so they
cannot drift), the reference is complete, and the hosts schema matches the hosts-file reader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vbench.scenario import jsonschema as schemas
from vbench.fleet.hosts import ENV_ALLOWED, HOST_FIELDS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
REGEN = "regenerate with: PYTHONPATH=src python -m vbench.scenario.jsonschema docs"


@pytest.mark.parametrize("name, text", [
    ("scenario.schema.json", lambda: schemas.dump(schemas.scenario_schema())),
    ("hosts.schema.json", lambda: schemas.dump(schemas.hosts_schema())),
    ("SCENARIOS.md", schemas.scenario_reference),
])
def test_committed_docs_are_current(name, text):
    assert (DOCS / name).read_text() == text(), f"docs/{name} is out of date; {REGEN}"


def test_reference_lists_every_field_with_type_default_unit_example_and_meaning():
    schema = schemas.scenario_schema()
    ref = schemas.scenario_reference()
    for model, sub in [("Scenario", schema)] + list(schema["$defs"].items()):
        assert f"## {model}\n" in ref
        section = ref.split(f"## {model}\n")[1].split("\n## ")[0]
        for field, prop in sub.get("properties", {}).items():
            row = next((r for r in section.splitlines() if r.startswith(f"| `{field}` |")), None)
            assert row is not None, f"{model}.{field} missing from the reference"
            cells = [c.strip() for c in row.strip("|").split(" | ")]
            assert len(cells) == 6 and cells[1] and cells[5], (model, field, row)
            numeric = prop.get("type") in ("integer", "number") or any(
                p.get("type") in ("integer", "number") for p in prop.get("anyOf", []))
            if numeric:
                assert field in schemas.UNITS, f"{model}.{field}: a number without a unit"
            else:
                assert field in schemas.UNITS or field in schemas.UNITLESS, f"{model}.{field}"


def test_hosts_schema_has_the_readers_fields():
    defs = schemas.hosts_schema()["$defs"]
    assert set(defs["_Host"]["properties"]) == HOST_FIELDS
    assert set(defs["_HostEnv"]["properties"]) == set(ENV_ALLOWED)


def test_shipped_scenarios_validate_against_the_schema():
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = schemas.scenario_schema()
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_cli_prints_the_committed_schema(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "VBENCH_HOME": str(tmp_path)}
    for kind in ("scenario", "hosts"):
        cp = subprocess.run([sys.executable, "-m", "vbench", "schema", kind], env=env,
                            capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0 and json.loads(cp.stdout)
        assert cp.stdout == (DOCS / f"{kind}.schema.json").read_text()
