"""The nested lab (vbench.nested): `vbench run --nested` on the short disk scenario, under KVM one
level down (a hypervisor guest under TCG with an emulated EPYC+svm CPU). One L1 boot for the module
(about 75 s on a quiet machine, the inner lab's probe included about 3 minutes); the run itself
is the same smoke-disk as the flat test. Skipped where the hypervisor image is not built: building
it takes about 4 minutes (`vbench image build hypervisor`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import ROOT, tagged_domains, vbench

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def nested_run(lab_ready, tmp_path_factory):
    from vbench import images

    if images.find("hypervisor") is None:
        pytest.skip("the hypervisor guest image is not built (vbench image build hypervisor)")
    before = set(tagged_domains())
    results = tmp_path_factory.mktemp("results")
    reports = tmp_path_factory.mktemp("reports")
    cp = vbench("run", str(ROOT / "scenarios/smoke-disk.yaml"), "--nested", "--results",
                str(results), "--reports", str(reports), timeout=2400)
    run_dir = Path(cp.stdout.strip().splitlines()[-1].split("run: ", 1)[1])
    return run_dir, cp.stdout, reports, before


def test_inner_guests_ran_under_kvm_and_both_levels_are_recorded(nested_run):
    run_dir, out, _, _ = nested_run
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and meta["failures"] == []
    env = meta["environment"]
    assert env["accelerator"] == "kvm" and env["kvm_module"] in ("kvm_amd", "kvm_intel")
    for name in ("virtio-blk", "sata"):
        v = meta["variants"][name]
        assert v["domain_xml"].startswith("<domain type='kvm'>")
        assert v["guest_virt"] == "kvm"  # the guest's own view, not only what was asked for
        assert v["drivers"]["disk"]["ok"]
    n = env["nested"]
    assert n["outer_accelerator"] in ("tcg", "kvm") and n["outer_host"]["qemu_version"]
    assert n["inner_domain_types"] == ["kvm"] and n["inner_guest_virt"]["sata"] == "kvm"
    assert "L1 | " in out  # the inner run's progress lines came through


def test_report_says_nested(nested_run):
    run_dir, _, reports, _ = nested_run
    html = (reports / run_dir.name / "index.html").read_text()
    assert "nested in" in html


def test_no_domain_left_at_either_level(nested_run):
    *_, before = nested_run
    assert set(tagged_domains()) - before == set()
