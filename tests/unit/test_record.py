"""The typed run record: stored runs load through the upgrade path, writes are validated, newer
versions are refused in one line, and the pooling metadata check names what differs."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from vbench.results import record, rundir as store
from vbench.core.errors import StoreError
from vbench.results.record import DriverCheck, Environment, RunRecord, Variant

RUNS = Path(__file__).resolve().parent.parent / "data" / "runs"
STORED = sorted(p for p in RUNS.iterdir() if (p / "run.json").exists())


def v1(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


@pytest.mark.parametrize("run", STORED, ids=[p.name for p in STORED])
def test_stored_v1_runs_load_through_the_upgrade(run):
    assert v1(run)["schema_version"] == 1
    rec = store.load_record(run)
    assert rec.schema_version == record.SCHEMA_VERSION == 2
    assert rec.status == "complete" and rec.environment.accelerator == "tcg"
    assert set(rec.variants) == {"virtio-blk", "sata", "host"}
    rng = rec.variants["virtio-blk"].drivers["rng"]
    # The verdict verify.py made is what the record says (virtio_rng.0 *is* virtio_rng).
    assert rng.found == "virtio_rng.0" and rng.ok is True
    assert rec.variants["sata"].drivers["disk"].found == "ahci"
    assert rec.variants["virtio-blk"].verified is True and rec.variants["host"].verified is None
    assert rec.variants["host"].baseline and rec.timing[0].wall_s > 0
    assert rec.guest_kernels() == ["6.1.0-56-amd64"]


@pytest.mark.parametrize("run", STORED, ids=[p.name for p in STORED])
def test_load_meta_keeps_the_dict_view(run):
    meta = store.load_meta(run)
    raw = v1(run)
    assert meta["schema_version"] == 2
    assert meta["environment"] == raw["environment"]
    assert meta["variants"]["host"] == raw["variants"]["host"] | {"drivers": {}}
    assert meta["variants"]["sata"]["drivers"]["disk"]["ok"] is True


def test_v1_without_stored_verdict_gets_verify_s_verdict():
    raw = v1(STORED[0])
    for v in raw["variants"].values():
        for d in v.get("drivers", {}).values():
            d.pop("ok")
    raw["variants"]["sata"]["drivers"]["disk"]["found"] = "virtio_blk"  # a real mismatch
    raw["variants"]["sata"]["drivers"]["balloon"]["found"] = "absent"
    rec = record.from_dict(raw)
    assert rec.variants["virtio-blk"].drivers["rng"].ok is True      # virtio_rng.0
    assert rec.variants["virtio-blk"].drivers["disk"].ok is True
    assert rec.variants["sata"].drivers["disk"].ok is False
    assert rec.variants["sata"].drivers["balloon"].ok is True        # expected none, absent
    assert rec.variants["sata"].verified is False


def test_upgrade_does_not_touch_its_input():
    raw = v1(STORED[0])
    before = copy.deepcopy(raw)
    record.upgrade(raw)
    assert raw == before


def test_run_written_by_today_s_runner_round_trips(tmp_path):
    """What the runner writes (write_record) reads back equal, as version 2."""
    rec = store.load_record(STORED[0])
    rd = store.RunDir.create(tmp_path, "r1")
    rec.run_id = "r1"
    rd.write_record(rec)
    assert json.loads((rd.path / "run.json").read_text())["schema_version"] == 2
    back = rd.read_record()
    assert back == rec
    assert store.load_meta(rd.path)["variants"]["sata"]["drivers"]["disk"]["found"] == "ahci"


@pytest.mark.parametrize("version", [3, 99])
def test_newer_version_refused_in_one_line(tmp_path, version):
    d = tmp_path / "run"
    shutil.copytree(STORED[0], d)
    raw = v1(d)
    raw["schema_version"] = version
    (d / "run.json").write_text(json.dumps(raw))
    with pytest.raises(StoreError) as exc:
        store.load_record(d)
    msg = str(exc.value)
    assert "\n" not in msg and f"schema version {version}" in msg and "newer" in msg
    assert "upgrade vbench" in msg


@pytest.mark.parametrize("version", [0, -1, "2", None, True])
def test_nonsense_version_refused(version):
    with pytest.raises(StoreError):
        record.from_dict({"schema_version": version, "run_id": "x"})


def test_malformed_record_is_one_store_error_line():
    raw = v1(STORED[0])
    raw["variants"]["sata"]["paravirtual"] = "perhaps"
    with pytest.raises(StoreError) as exc:
        record.from_dict(raw, "x/run.json")
    assert "\n" not in str(exc.value) and "variants.sata.paravirtual" in str(exc.value)


def test_write_is_strict(tmp_path):
    rd = store.RunDir.create(tmp_path, "r1")
    rec = RunRecord(run_id="r1", status="running")
    with pytest.raises(Exception):
        rec.variants = {"a": {"device": "disk"}}  # type: ignore[assignment]  # validated assignment
    rec.status = "half-done"
    with pytest.raises(StoreError, match="status 'half-done'"):
        rd.write_record(rec)
    rec.status, rec.run_id = "complete", ""
    with pytest.raises(StoreError, match="run_id"):
        rd.write_record(rec)


def _rec(**env) -> RunRecord:
    base = dict(host="h1", accelerator="kvm", cpu_model="EPYC", cpus=2, host_kernel="6.1",
                qemu_version="7.2", libvirt_version="9.0.0", guest_image_key="abc")
    base.update(env)
    rec = RunRecord(run_id="r", status="complete", environment=Environment(**base))
    rec.variants["v"] = Variant(device="disk", model="virtio", paravirtual=True,
                                guest_kernel="6.1.0-56-amd64",
                                drivers={"disk": DriverCheck(expected="virtio_blk",
                                                             found="virtio_blk", ok=True)})
    return rec


def test_metadata_differences_name_what_differs():
    a, b = _rec(), _rec(host_kernel="6.18", qemu_version="8.0")
    assert record.metadata_differences(a, a) == {}
    diffs = record.metadata_differences(a, b)
    assert diffs == {"host_kernel": ("6.1", "6.18"), "qemu_version": ("7.2", "8.0")}
    assert record.describe_differences(diffs) == "host_kernel: 6.1 vs 6.18; qemu_version: 7.2 vs 8.0"
    c = _rec()
    c.variants["v"].guest_kernel = "6.12"
    assert set(record.metadata_differences(a, c)) == {"guest_kernel"}


def test_unknown_metadata_is_not_a_difference():
    a, b = _rec(), _rec(libvirt_version=None)
    assert record.metadata_differences(a, b) == {}
    assert record.checked_metadata(b)["libvirt_version"] is None
    assert set(record.checked_metadata(a)) == set(record.CHECKED_METADATA)


def test_runs_with_and_without_the_test_networks_firewall_are_not_pooled():
    from vbench.host.networks import firewall_fact

    a, b = _rec(test_network=firewall_fact("open")), _rec(test_network=firewall_fact("isolated"))
    assert set(record.metadata_differences(a, b)) == {"test_network"}
    assert record.metadata_differences(a, _rec()) == {}  # runs before it was recorded: unknown


def test_stored_pair_is_poolable():
    a, b = (store.load_record(p) for p in STORED)
    assert record.metadata_differences(a, b) == {}


def test_a_failed_host_proof_makes_the_variant_unverified():
    """A variant whose vhost proof did not hold is not verified, even with its drivers bound."""
    v = record.Variant(device="nic", model="virtio", paravirtual=True,
                       drivers={"nic": record.DriverCheck(ok=True, found="virtio_net")})
    assert v.verified is True
    v.host_proofs = {"vhost": record.HostProof(asked="vhost: true", used=False, evidence="none",
                                               ok=False)}
    assert v.verified is False
    back = record.Variant.model_validate(v.model_dump())
    assert back.host_proofs["vhost"].evidence == "none" and back.verified is False


def test_runs_whose_probes_measured_differently_are_not_pooled_and_older_runs_were_method_1():
    from vbench.results.record import WorkloadInfo
    from vbench.run import runner
    from vbench.scenario.schema import load_scenario_text

    scn = load_scenario_text((Path(__file__).resolve().parents[2] / "scenarios" / "net.yaml")
                             .read_text())
    new = runner._initial_record("n", scn, "net.yaml", "", Environment(host="h"), 3)
    assert new.workloads["rtt"].method == 2 and new.workloads["tcp-1"].method == 2
    old = RunRecord.model_validate(json.loads(json.dumps(new.to_dict())))
    for w in old.workloads.values():  # as a run.json written before methods were recorded
        w.method = None
    assert record.checked_metadata(old)["probe_methods"] == "iperf3 1, ping 1"
    assert record.metadata_differences(old, new) == {
        "probe_methods": ("iperf3 1, ping 1", "iperf3 2, ping 2")}
    disk_old, disk_new = _rec(), _rec()
    disk_old.workloads["r"] = WorkloadInfo(tool="fio")
    disk_new.workloads["r"] = WorkloadInfo(tool="fio", method=1)
    assert record.metadata_differences(disk_old, disk_new) == {}  # fio did not change
