"""Issue 10, finding 3: a scenario's totals are checked against the host before anything boots."""

from __future__ import annotations

import pytest

from vbench.scenario import budget
from vbench.scenario.budget import HostFigures
from vbench.core.errors import ScenarioError
from vbench.scenario.schema import load_scenario_text

BIG_HOST = HostFigures(free_disk_gib=500, mem_available_mib=64_000, cpus=16, where="/var/lib/vbench")


def scn(variants: int = 2, extra: str = "", workloads: str = "  - {name: w, fio: {rw: randread}}\n",
        guest: str = "{vcpus: 2, memory_mib: 1024}", device: str = "disk", disk: str = "{size_gib: 2}"):
    dev = f"disk: {disk}" if device == "disk" else f"{device}: {{model: virtio}}"
    vs = "".join(f"  - {{name: v{i}, {dev}}}\n" for i in range(variants))
    return load_scenario_text(f"name: s\ndevice: {device}\nguest: {guest}\n"
                              f"{extra}variants:\n{vs}workloads:\n{workloads}")


def refusal(s, reps=3, host=BIG_HOST, max_hours=24.0) -> str:
    with pytest.raises(ScenarioError) as exc:
        budget.check(s, reps, max_hours=max_hours, host=host)
    msg = str(exc.value)
    assert "\n" not in msg and exc.value.exit_status == 3
    return msg


def test_shipped_size_scenario_fits_a_big_host():
    budget.check(scn(), 3, host=BIG_HOST)


def test_scratch_total_against_free_disk():
    msg = refusal(scn(variants=8, disk="{size_gib: 64}"), host=BIG_HOST)
    assert "disk.size_gib" in msg and "516.0 GiB" in msg and "500.0 GiB free" in msg


def test_host_baseline_scratch_counts_too():
    s = scn(variants=1, disk="{size_gib: 40}", extra="host_baseline: true\n")
    assert budget.scratch_gib(s) == pytest.approx(80.5)
    refusal(s, host=HostFigures(60, 64_000, 16))


def test_guest_memory_total_against_available_memory():
    msg = refusal(scn(variants=16, guest="{vcpus: 2, memory_mib: 8192}"))
    assert "guest.memory_mib" in msg and "64000 MiB available" in msg


def test_fresh_boot_counts_one_guest_at_a_time():
    budget.check(scn(variants=16, guest="{vcpus: 2, memory_mib: 8192}", extra="fresh_boot: true\n"),
                 3, host=BIG_HOST)


def test_vcpus_against_host_cpus():
    msg = refusal(scn(guest="{vcpus: 64, memory_mib: 1024}"))
    assert "guest.vcpus" in msg and "16 CPUs" in msg


def test_list_lengths_capped():
    assert "variants" in refusal(scn(variants=budget.MAX_VARIANTS + 1, disk="{size_gib: 0.25}"))
    many = "".join(f"  - {{name: w{i}, fio: {{rw: read, runtime: 1, ramp_time: 0}}}}\n"
                   for i in range(budget.MAX_WORKLOADS + 1))
    assert "workloads" in refusal(scn(workloads=many))


def test_estimated_time_against_max_hours():
    long = "  - {name: w, fio: {rw: randread, runtime: 3600, ramp_time: 600}}\n"
    msg = refusal(scn(variants=16, disk="{size_gib: 0.25}", workloads=long + long.replace(
        "name: w", "name: w2")), reps=1000, max_hours=10**9)
    assert "32000 units" in msg
    msg = refusal(scn(workloads=long), reps=20)
    assert "--max-hours 24" in msg and "repetitions" in msg
    budget.check(scn(workloads=long), 20, max_hours=100, host=BIG_HOST)


@pytest.mark.parametrize("work, field", [
    ("{target_mib: 2048, touch_mib: 0}", "balloon.target_mib"),
    ("{target_mib: 512, touch_mib: 100000}", "balloon.touch_mib"),
])
def test_balloon_sizes_within_guest_memory(work, field):
    s = scn(device="balloon", workloads=f"  - {{name: b, balloon: {work}}}\n")
    assert field in refusal(s)


def test_host_figures_are_real_numbers():
    h = budget.host_figures()
    assert h.free_disk_gib > 0 and h.mem_available_mib > 0 and h.cpus >= 1


def test_run_refuses_before_the_lab_is_touched(tmp_path, monkeypatch):
    """`vbench run` checks the budget before lab.up (nothing boots)."""
    from vbench.host import lab
    from vbench.commands import main

    def boom(*a, **k):
        raise AssertionError("lab.up must not be reached")

    monkeypatch.setattr(lab, "up", boom)
    p = tmp_path / "s.yaml"
    p.write_text("name: s\ndevice: disk\nrepetitions: 1000\nvariants:\n  - {name: a, disk: {bus: virtio}}\n"
                 "workloads:\n  - {name: w, fio: {rw: randread, runtime: 3600, ramp_time: 600}}\n")
    assert main(["run", str(p), "--no-report"]) == 3


@pytest.mark.parametrize("path, field", [
    ("scenarios/disk.yaml", "disk.size_gib"),
    ("scenarios/pmem.yaml", "pmem.size_mib"),      # two 1 GiB pmem files outweigh the overlays
    ("scenarios/net.yaml", "variants"),            # only overlays: fewer variants, or more space
])
def test_too_little_space_names_the_field_that_asks_for_most(path, field):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / path).read_text()
    msg = refusal(load_scenario_text(text), host=HostFigures(0.01, 64_000, 16))
    assert msg.startswith(f"scenario {field}: "), msg


def test_shared_folder_writes_name_the_workloads():
    s = load_scenario_text("name: s\ndevice: fs\nvariants:\n  - {name: a, fs: {model: virtiofs}}\n"
                           "  - {name: b, fs: {model: 9p}}\nworkloads:\n"
                           "  - {name: w, fio: {rw: write, options: {size: 4g}}}\n")
    assert budget.space_field(s) == "workloads"


@pytest.mark.parametrize("cpus, width", [(None, 1), (0, 1), (-5, 1), (1, 1), (2, 2), (3, 3),
                                         (64, 4), (10**12, 4)])
def test_guests_boot_one_per_host_cpu_at_most_four(cpus, width):
    # On resume the CPU count is read back from the run directory's run.json (untrusted): a
    # negative or absurd figure still gives between one and four boot threads.
    assert budget.boot_width(cpus) == width
