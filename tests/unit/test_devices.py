"""The device registry: every device kind is one module of ``vbench.devices`` plus one line.

The end-to-end test writes a throwaway device module into a temporary directory, registers it
(the one line) and shows, in a fresh interpreter, that a scenario using it validates, that its
XML fragment reaches the domain XML, that verify checks it and that kconfig asks for its kernel
option, with no other edit. It runs in a subprocess because ``vbench.scenario.schema`` builds its types
from the registry once, at import.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import pytest

from vbench import devices
from vbench.scenario import schema as scenario
from vbench.guest import verify
from vbench.devices import Device, Fragment, GuestContext, Model, Strict
from tests.unit.driver_cases import presence_cases
from tests.unit.toys import run_toy


# ---- the registry as shipped ---------------------------------------------------------------------

def test_registry_lists_the_kinds_in_order():
    assert list(devices.DEVICES) == ["disk", "nic", "rng", "balloon", "vsock", "fs", "console", "pmem", "mem"]
    assert list(scenario.DeviceProfile.model_fields) == ["disk", "nic", "rng", "balloon", "vsock", "fs", "console", "pmem", "mem"]
    assert list(scenario.DeviceOverrides.model_fields) == ["disk", "nic", "rng", "balloon", "vsock", "fs", "console", "pmem", "mem"]


@pytest.mark.parametrize("kind, model, para", [
    ("disk", "virtio", True), ("disk", "scsi", True), ("disk", "sata", False),
    ("disk", "ide", False), ("nic", "virtio", True), ("nic", "e1000", False),
    ("nic", "e1000e", False), ("nic", "rtl8139", False), ("rng", "virtio", True),
    ("rng", "none", False), ("balloon", "virtio", True), ("balloon", "none", False),
])
def test_paravirtual_comes_from_the_device_model_table(kind, model, para):
    dev = devices.DEVICES[kind]
    prof = scenario.DeviceProfile(**{kind: {dev.model_field: model}})
    assert prof.is_paravirtual(kind) is para
    assert next(m for m in dev.models if m.name == model).paravirtual is para


def test_every_model_names_its_drivers_and_kernel_options():
    for dev in devices.DEVICES.values():
        for m in dev.models:
            assert bool(m.drivers) == bool(m.kconfig) == (m.name != "none"), (dev.kind, m.name)


def test_kernel_option_modules_cover_the_emulated_models():
    mods = devices.option_modules()
    assert mods["CONFIG_SATA_AHCI"] == "ahci" and mods["CONFIG_8139CP"] == "8139cp"
    assert mods["CONFIG_HW_RANDOM_VIRTIO"] == "virtio-rng"


def test_register_after_scenario_import_is_refused():
    with pytest.raises(RuntimeError, match="before vbench.scenario.schema is imported"):
        devices.register(_Toy())
    assert "toy" not in devices.DEVICES
    with pytest.raises(TypeError, match="registered twice"):
        devices.register(devices.DEVICES["rng"])


class _ToySpec(Strict):
    model: Literal["virtio", "none"] = "virtio"


class _Toy(Device):
    kind = "toy"
    spec = _ToySpec
    models = (Model("virtio", True, ("virtio_toy",), {"CONFIG_VIRTIO_TOY": "virtio_toy"}),
              Model("none", False))


def test_declaration_must_list_the_models_of_the_spec_literal():
    class Wrong(_Toy):
        models = (Model("none", False), Model("virtio", True))

    _Toy().validate_declaration()
    with pytest.raises(TypeError, match=r"_ToySpec.model must be Literal\['none', 'virtio'\]"):
        Wrong().validate_declaration()


@pytest.mark.parametrize("model, bound, ok, found", presence_cases(
    "virtio", "virtio-pci virtio_toy ahci", "virtio-pci ahci", "virtio_toy"))
def test_default_check_looks_at_the_bound_drivers(model, bound, ok, found):
    facts = verify.parse_facts(f"kernel=6.1\nbound_drivers={bound} \n")
    c = _Toy().check(_ToySpec(model=model), facts, GuestContext())
    assert (c.device, c.model, c.ok, c.found) == ("toy", model, ok, found)
    assert c.expected == ("virtio_toy" if model == "virtio" else "none")


def test_fragments_add_by_section():
    a = Fragment(disks="d1\n", devices="x\n")
    b = Fragment(disks="d2\n", domain="m\n")
    assert a + b == Fragment(disks="d1\nd2\n", devices="x\n", domain="m\n")


def test_facts_script_has_every_device_part():
    for dev in devices.DEVICES.values():
        assert dev.facts_script in verify.FACTS_SCRIPT
    assert "bound_drivers=" in verify.FACTS_SCRIPT


# ---- a new device is one file plus one registration line -----------------------------------------

TOY_MODULE = '''
"""A throwaway device for the registry test: a made-up virtio device with a top-level element."""
from typing import Literal
from pydantic import Field
from vbench.devices import Device, Fragment, Model, Strict


class ToySpec(Strict):
    model: Literal["virtio", "none"] = "virtio"
    queues: int = Field(1, ge=1, le=8)


class Toy(Device):
    kind = "toy"
    spec = ToySpec
    models = (Model("virtio", True, ("virtio_toy",), {"CONFIG_VIRTIO_TOY": "virtio_toy"}),
              Model("none", False))
    headline_metrics = ("toy_rate",)

    def xml(self, spec, ctx):
        if spec.model == "none":
            return Fragment()
        return Fragment(devices=f"    <toy model='virtio' queues='{spec.queues}'/>\\n",
                        domain="  <memoryBacking>\\n    <access mode='shared'/>\\n  </memoryBacking>\\n",
                        cpu="    <numa/>\\n", cmdline=f" toy.queues={spec.queues}")


DEVICE = Toy()
'''

TOY_SCENARIO = """
name: toy
device: toy
variants:
  - {name: vtoy, toy: {model: virtio, queues: 2}}
  - {name: notoy, toy: {model: none}}
workloads:
  - {name: p, ping: {count: 10}}
"""

DRIVER = r'''
from pathlib import Path
from vbench import report
from vbench.guest import domain as virt, kconfig, verify
from vbench.core.errors import ScenarioError
from vbench.scenario.schema import GuestSpec, load_scenario_text, parse_profile

out = {"models": [scn.profile(v).model_of("toy") for v in scn.variants],
       "paravirtual": [scn.profile(v).is_paravirtual("toy") for v in scn.variants]}
g = Path("/var/lib/vbench/guests/vbench-toy")
files = virt.DomainFiles(g / "o.qcow2", None, g / "c.log", g / "vmlinuz", g / "initrd.img")
out["xml"] = [virt.domain_xml("vbench-toy", scn.profile(v), GuestSpec(), "qemu", files, "quiet",
                              "mgmt", "test", {}) for v in scn.variants]
facts = verify.parse_facts("kernel=6.1\nrng_current=virtio_rng.0\nbound_drivers=virtio_toy virtio-pci \n")
out["checks"] = [[c.device, c.model, c.expected, c.found, c.ok]
                 for v in scn.variants for c in verify.check(scn.profile(v), facts, "52:54:00:00:00:01")]
out["needed"] = kconfig.needed_options(scn)
out["headline"] = list(report.HEADLINE_METRICS)
out["short_key"] = parse_profile("toy=none").toy.model
try:
    load_scenario_text(sys.argv[1].replace("model: none", "model: usb"))
except ScenarioError as exc:
    out["error"] = str(exc)
'''


def test_a_new_device_is_one_file_and_one_registration_line(tmp_path):
    out = run_toy(tmp_path, "toy_device", TOY_MODULE, DRIVER, TOY_SCENARIO)

    assert out["models"] == ["virtio", "none"] and out["paravirtual"] == [True, False]
    with_toy, without = out["xml"]
    assert "<memballoon model='none'/>\n    <toy model='virtio' queues='2'/>\n    <serial" in with_toy
    assert "</currentMemory>\n  <memoryBacking>\n    <access mode='shared'/>" in with_toy
    assert "  <cpu>\n    <numa/>\n  </cpu>\n" in with_toy  # TCG: no host-passthrough
    assert "<cmdline>quiet toy.queues=2</cmdline>" in with_toy
    assert "<toy" not in without and "memoryBacking" not in without and "<cpu" not in without
    # verify checks the new device beside the others (rng and balloon are always there).
    rng = ["rng", "virtio", "virtio_rng", "virtio_rng.0", True]
    balloon = ["balloon", "none", "none", "none", True]
    assert out["checks"] == [rng, balloon, ["toy", "virtio", "virtio_toy", "virtio_toy", True],
                             rng, balloon, ["toy", "none", "none", "virtio_toy", False]]
    assert "CONFIG_VIRTIO_TOY" in out["needed"]["vtoy"]
    assert "CONFIG_VIRTIO_TOY" not in out["needed"]["notoy"]
    assert out["headline"][-1] == "toy_rate"
    assert out["short_key"] == "none"
    assert out["error"] == "scenario: variants[1].toy.model: must be one of virtio, none (got 'usb')"


@pytest.mark.parametrize("passthrough, inner, xml", [
    (True, "", "  <cpu mode='host-passthrough'/>\n"),
    (False, "", ""),
    (True, "    <numa/>\n", "  <cpu mode='host-passthrough'>\n    <numa/>\n  </cpu>\n"),
    (False, "    <numa/>\n", "  <cpu>\n    <numa/>\n  </cpu>\n"),
])
def test_cpu_element_holds_the_devices_cpu_parts(passthrough, inner, xml):
    from vbench.guest import xml as domainxml

    assert domainxml._cpu_xml(passthrough, inner) == xml


def test_readme_device_table_names_every_shipped_device_scenario():
    import yaml

    top = Path(__file__).resolve().parents[2]
    readme = (top / "README.md").read_text()
    table = readme[readme.index("| device | virtio |"):]
    table = table[:table.index("\n\n")]
    rows = table.splitlines()[2:]
    listed = {p for r in rows for p in re.findall(r"`scenarios/([a-z0-9-]+)\.yaml`", r)}
    kinds = set()
    for path in sorted((top / "scenarios").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if doc["name"].startswith(("smoke-", "nightly-")):
            continue  # quick checks and the nightly job, documented in their own sections
        assert path.stem in listed, f"README device table has no row for scenarios/{path.name}"
        kinds.add(doc["device"])
    # every registered kind has a scenario; vsock's row says what it needs on the host
    assert set(devices.DEVICES) - kinds == set()
    assert any("vsock.yaml" in r and "/dev/vhost-vsock" in r for r in rows)
