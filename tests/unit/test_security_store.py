"""Issue 10, findings 5-7: a run directory from someone else cannot make vbench (root) write or
read elsewhere, two units never share a file, outputs are shareable and durable, and names from
stored runs cannot drive the terminal."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from vbench.results import rundir as store
from vbench.core.errors import StoreError
from vbench.run.session import Unit, plan
from vbench.results.rundir import RunDir, atomic_write, unit_key

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers_runs import write_run  # noqa: E402


def row(variant="a", workload="w", rep=0, value="1.0", **kw) -> dict:
    r = {"run_id": "r", "scenario": "s", "variant": variant, "device": "disk", "model": "virtio",
         "paravirtual": True, "workload": workload, "repetition": rep, "metric": "iops",
         "value": value, "unit": "IO/s", "accelerator": "tcg", "host": "h"}
    r.update(kw)
    return r


@pytest.fixture
def rd(tmp_path) -> RunDir:
    d = RunDir.create(tmp_path / "results", "run-1")
    d.write_meta({"run_id": "run-1", "status": "running"})
    return d


# ---- 5: two units, one file --------------------------------------------------------------------

def test_units_that_used_to_collide_get_distinct_files(rd):
    u1, u2 = Unit(0, "a__x", "w"), Unit(0, "a", "x__w")
    assert u1.key != u2.key
    assert rd.part_path(u1.key) != rd.part_path(u2.key)
    rd.add_samples(u1.key, [row("a__x", "w", value="1")])
    assert rd.has_part(u1.key) and not rd.has_part(u2.key)  # resume would run u2, not skip it


def test_unit_keys_are_injective_over_names():
    names = ["a", "a_", "a__x", "x__w", "x", "w", "a.x", "a-x", "r0", "a__r0"]
    keys = {unit_key(v, w, r) for v in names for w in names for r in (0, 1, 10)}
    assert len(keys) == len(names) ** 2 * 3


def test_hostile_keys_stay_inside_and_stay_distinct(rd):
    a, b = rd.part_path("../../x y"), rd.part_path("../../x_y")
    assert a != b and a.parent == b.parent == rd.path / "parts"


# ---- 6: symlinks in a run directory -------------------------------------------------------------

def test_symlinked_raw_variant_dir_is_refused(rd, tmp_path):
    victim_dir = tmp_path / "etc"
    victim_dir.mkdir()
    (rd.path / "raw" / "a").symlink_to(victim_dir)
    with pytest.raises(StoreError, match="symbolic link"):
        rd.write_raw("a", "w-r0.txt", "guest text")
    with pytest.raises(StoreError, match="symbolic link"):
        rd.raw_path("a", "console.log")  # where the guest console is copied
    assert list(victim_dir.iterdir()) == []


def test_symlinked_raw_dir_is_refused(rd, tmp_path):
    victim_dir = tmp_path / "etc"
    victim_dir.mkdir()
    os.rmdir(rd.path / "raw")
    (rd.path / "raw").symlink_to(victim_dir)
    with pytest.raises(StoreError):
        rd.write_raw("b", "w-r0.txt", "guest text")
    assert list(victim_dir.iterdir()) == []


def test_symlinked_parts_dir_is_refused(rd, tmp_path):
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    os.rmdir(rd.path / "parts")
    (rd.path / "parts").symlink_to(victim_dir)
    with pytest.raises(StoreError, match="symbolic link"):
        rd.add_samples(unit_key("a", "w", 0), [row()])
    with pytest.raises(StoreError, match="symbolic link"):
        list(store.iter_sample_rows(rd.path))
    assert list(victim_dir.iterdir()) == []


def test_symlinked_part_file_is_not_overwritten_nor_read(rd, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("secret\n")
    key = unit_key("a", "w", 0)
    rd.part_path(key).symlink_to(victim)
    with pytest.raises(StoreError, match="symbolic link"):
        rd.has_part(key)
    with pytest.raises(StoreError, match="symbolic link"):
        list(store.iter_sample_rows(rd.path))
    assert victim.read_text() == "secret\n"


def test_atomic_write_replaces_a_symlink_instead_of_following_it(tmp_path):
    """The console copy and every other write end in a rename: a planted link is replaced."""
    victim = tmp_path / "victim"
    victim.write_text("original")
    link = tmp_path / "console.log"
    link.symlink_to(victim)
    atomic_write(link, b"guest console text")
    assert victim.read_text() == "original"
    assert not link.is_symlink() and link.read_bytes() == b"guest console text"


def test_symlinked_run_json_is_refused_on_resume(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema_version": 1, "run_id": "x"}))
    (d / "run.json").symlink_to(other)
    with pytest.raises(StoreError, match="symbolic link"):
        RunDir.open(d)


def test_resume_path_with_dotdot_is_resolved(rd):
    opened = RunDir.open(rd.path / "raw" / "..")
    assert opened.path == rd.path.resolve() and opened.run_id == "run-1"


def test_huge_or_special_stored_files_are_refused(rd):
    (rd.path / "parts" / "x.csv").unlink(missing_ok=True)
    os.mkfifo(rd.path / "parts" / "x.csv")
    with pytest.raises(StoreError, match="not a regular file"):
        list(store.iter_sample_rows(rd.path))


# ---- 7: report names, modes, fsync ---------------------------------------------------------------

def test_report_dir_name_comes_from_the_resolved_run(rd):
    from vbench.commands.report import default_report_dir

    out = default_report_dir([rd.path / "raw" / ".."], Path("reports"))
    assert out == Path("reports") / "run-1"


def test_output_files_are_0644(rd):
    rd.add_samples(unit_key("a", "w", 0), [row()])
    rd.write_raw("a", "w-r0.txt", "x")
    rd.consolidate()
    for p in [rd.path / "run.json", rd.path / "samples.csv", rd.part_path(unit_key("a", "w", 0)),
              rd.raw_path("a", "w-r0.txt")]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


def test_lab_record_stays_0600(tmp_path, monkeypatch):
    from vbench.host import lab

    monkeypatch.setenv("VBENCH_HOME", str(tmp_path))
    lab.LabState().save()
    assert stat.S_IMODE((tmp_path / "lab" / "state.json").stat().st_mode) == 0o600


def test_directory_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    atomic_write(tmp_path / "f.json", "{}")
    assert synced == [False, True]  # the file, then its directory


def test_kvm_state_is_on_disk_before_dev_kvm_changes(tmp_path, monkeypatch):
    from vbench.host import lab

    monkeypatch.setenv("VBENCH_HOME", str(tmp_path))
    if not Path("/dev/kvm").exists():
        pytest.skip("no /dev/kvm on this host")
    st = Path("/dev/kvm").stat()

    class FakeGroup:
        gr_gid = st.st_gid + 4242  # pretend /dev/kvm is not root:kvm 0660 yet

    monkeypatch.setattr(lab.grp, "getgrnam", lambda name: FakeGroup)

    def crash(*a, **k):
        raise RuntimeError("vbench killed here")

    monkeypatch.setattr(lab.os, "chown", crash)
    with pytest.raises(RuntimeError):
        lab._fix_kvm_permissions(lab.LabState())
    saved = json.loads((tmp_path / "lab" / "state.json").read_text())
    assert saved["kvm_original"] == {"uid": st.st_uid, "gid": st.st_gid,
                                     "mode": stat.S_IMODE(st.st_mode)}


# ---- 7: names from stored runs on the terminal ----------------------------------------------------

ESC = "\x1b[2J\x1b[31mvirtio\x1b[0m"


def test_names_from_a_stored_run_are_escaped_on_load(tmp_path):
    run = write_run(tmp_path, "hostile", variants={
        ESC: ("disk", "virtio", True, 11500.0), "sata": ("disk", "sata", False, 4600.0)},
        reps=3)
    df = store.load_samples(run)
    for col in ("variant", "workload", "metric", "model"):
        assert not df[col].str.contains("\x1b").any()
    assert "\\x1b[2J" in set(df["variant"]).pop() or any("\\x1b" in v for v in df["variant"])
    assert all("\x1b" not in r["variant"] for r in store.iter_sample_rows(run))
    meta = store.load_meta(run)
    assert "\x1b" not in json.dumps(list(meta.get("variants", {})), ensure_ascii=False)


def test_compare_table_cannot_be_rewritten_by_escapes(tmp_path, capsys):
    from vbench.commands import main

    variants = {ESC: ("disk", "virtio", True, 11500.0), "sata": ("disk", "sata", False, 4600.0)}
    a = write_run(tmp_path, "a", variants=variants, reps=3, seed=1)
    b = write_run(tmp_path, "b", variants=variants, reps=3, seed=2)
    main(["compare", str(a), str(b)])
    out = capsys.readouterr()
    assert "\x1b" not in out.out and "\x1b" not in out.err
