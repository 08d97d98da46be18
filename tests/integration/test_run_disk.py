"""`vbench run` on the short disk scenario: real guests, real fio, results that can be trusted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vbench.host import networks
from vbench.results import record

from .conftest import ROOT, vbench

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def disk_run(lab_ready, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    reports = tmp_path_factory.mktemp("reports")
    cp = vbench("run", str(ROOT / "scenarios/smoke-disk.yaml"), "--results", str(results),
                "--reports", str(reports), timeout=1200)
    run_dir = Path(cp.stdout.strip().splitlines()[-1].split("run: ", 1)[1])
    return run_dir, cp.stdout, reports


def test_run_stores_facts_needed_to_trust_it(disk_run):
    run_dir, out, _ = disk_run
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["schema_version"] == record.SCHEMA_VERSION
    assert meta["status"] == "complete" and meta["failures"] == []
    env = meta["environment"]
    assert env["accelerator"] in ("kvm", "tcg") and env["accelerator_reason"]
    assert env["qemu_version"].startswith("QEMU emulator version")
    assert env["libvirt_version"].count(".") == 2
    assert env["host_kernel"] and env["fio_version_host"].startswith("fio-")
    assert env["test_network"] in (networks.firewall_fact("open"), networks.firewall_fact("isolated"))
    for name, bus, driver in (("virtio-blk", "virtio", "virtio_blk"), ("sata", "sata", "ahci")):
        v = meta["variants"][name]
        assert v["drivers"]["disk"]["found"] == driver and v["drivers"]["disk"]["ok"]
        assert f"bus='{bus}'" in v["domain_xml"]
        assert v["guest_kernel"].startswith("6.") and v["fio_version"].startswith("fio-")
        assert v["guest_clocksource"] in ("kvm-clock", "tsc", "hpet", "acpi_pm"), v
    assert meta["variants"]["host"]["baseline"] is True
    assert meta["workloads"]["randread-4k-qd32"]["options"]["options"]["direct"] == 1


def test_samples_load_back_with_one_call(disk_run):
    from vbench.results.rundir import load_samples

    run_dir, _, _ = disk_run
    df = load_samples(run_dir)
    iops = df[(df.metric == "iops") & (df.workload == "randread-4k-qd32")]
    # 2 repetitions x (2 variants + host baseline)
    assert sorted(iops.groupby("variant").size().to_dict().items()) == [
        ("host", 2), ("sata", 2), ("virtio-blk", 2)]
    assert (iops.value > 0).all()
    assert set(df.accelerator) == {json.loads((run_dir / "run.json").read_text())[
        "environment"]["accelerator"]}
    guest = df[df.variant != "host"]
    assert {"clat_p99", "guest_cpu_sys", "host_cpu_per_io"} <= set(guest.metric)
    assert set(guest[guest.variant == "virtio-blk"].paravirtual) == {True}
    assert set(guest[guest.variant == "sata"].paravirtual) == {False}
    # raw tool outputs are kept beside the samples
    assert (run_dir / "raw" / "sata" / "randread-4k-qd32-r0.txt").read_text().lstrip().startswith("{")


def test_run_prints_summary_and_report(disk_run):
    run_dir, out, reports = disk_run
    assert "randread-4k-qd32" in out and "virtio-blk" in out and "elapsed" in out
    assert out.strip().splitlines()[-1] == f"run: {run_dir}"
    report = reports / run_dir.name / "index.html"
    assert report.exists() and "<img" in report.read_text()


def test_disk_run_left_nothing_running(disk_run):
    from .conftest import guest_dirs, tagged_domains

    assert tagged_domains() == []
    assert guest_dirs() == []
