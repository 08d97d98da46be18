"""The results store: atomic writes, schema-versioned JSON, run directories and loading back.

Tests run as root, so a chmod'ed directory does not stop a write; failures are simulated with a
parent path that is a regular file, a target that is a directory, or a failing ``os.replace``.
"""

from __future__ import annotations

import json
import os

import pytest

from vbench.results import rundir as store
from vbench.core.errors import StoreError, UserError
from vbench.core.metrics import SAMPLE_COLUMNS


def leftovers(d) -> list[str]:
    return sorted(p.name for p in d.rglob("*") if p.name.endswith(".tmp"))


def assert_one_line(msg: str) -> None:
    assert msg and "\n" not in msg and "Traceback" not in msg


# ---- atomic_write ------------------------------------------------------------------------------

def test_atomic_write_text_and_bytes(tmp_path):
    store.atomic_write(tmp_path / "a" / "b.txt", "hello\n")
    store.atomic_write(tmp_path / "c.bin", b"\x00\xff")
    assert (tmp_path / "a" / "b.txt").read_text() == "hello\n"
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\xff"
    assert leftovers(tmp_path) == []


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "f.txt"
    store.atomic_write(p, "x" * 10000)
    store.atomic_write(p, "short")
    assert p.read_text() == "short"


def test_atomic_write_parent_is_a_file(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError) as exc:
        store.atomic_write(blocker / "run" / "run.json", "{}")
    msg = str(exc.value)
    assert_one_line(msg)
    assert str(blocker / "run" / "run.json") in msg
    assert isinstance(exc.value, UserError) and exc.value.exit_status == 10
    assert blocker.read_text() == "not a directory"
    assert leftovers(tmp_path) == []


def test_atomic_write_target_is_a_directory(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(StoreError) as exc:
        store.atomic_write(tmp_path / "d", "data")
    assert_one_line(str(exc.value))
    assert leftovers(tmp_path) == []  # the temporary file made before the failing rename is gone


def test_atomic_write_failure_keeps_old_content_and_no_temp(tmp_path, monkeypatch):
    p = tmp_path / "run.json"
    p.write_text("old")

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.os, "replace", full)
    with pytest.raises(StoreError) as exc:
        store.atomic_write(p, "new")
    msg = str(exc.value)
    assert_one_line(msg)
    assert "No space left on device" in msg and "free space" in msg
    assert p.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_atomic_write_interrupted_leaves_no_temp(tmp_path, monkeypatch):
    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(store.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.atomic_write(tmp_path / "x.json", "data")
    assert list(tmp_path.iterdir()) == []


# ---- write_json / read_json ---------------------------------------------------------------------

def test_json_round_trip_carries_schema_version(tmp_path):
    p = tmp_path / "m.json"
    store.write_json(p, {"a": 1, "b": [1.5, "x"], "c": None})
    raw = json.loads(p.read_text())
    assert raw["schema_version"] == store.SCHEMA_VERSION
    assert store.read_json(p) == {"schema_version": store.SCHEMA_VERSION, "a": 1, "b": [1.5, "x"],
                                  "c": None}


@pytest.mark.parametrize("content, needle", [
    ('{"name": "someone else"}', "not a vbench file"),
    ('[1, 2, 3]', "not a vbench file"),
    ('{"schema_version": 999, "a": 1}', "schema version 999"),
    ('{"schema_version": "1"}', "schema version '1'"),
    ('{"schema_version": 1, "a": ', "not readable JSON"),
    ('', "not readable JSON"),
    (b'\xff\xfe\x00\x81', "not readable JSON"),
], ids=["foreign", "list", "newer-version", "string-version", "truncated", "empty", "binary"])
def test_read_json_refuses(tmp_path, content, needle):
    p = tmp_path / "run.json"
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)
    with pytest.raises(StoreError) as exc:
        store.read_json(p)
    msg = str(exc.value)
    assert_one_line(msg)
    assert needle in msg and str(p) in msg


def test_read_json_missing(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        store.read_json(tmp_path / "nope.json")


# ---- RunDir round trip ---------------------------------------------------------------------------

def row(variant="virtio-blk", rep=0, metric="iops", value="11500.25", workload="randread-4k-qd32",
        run_id="run-1", **kw) -> dict:
    r = {"run_id": run_id, "scenario": "disk", "variant": variant, "device": "disk",
         "model": {"virtio-blk": "virtio", "sata": "sata"}.get(variant, "x"),
         "paravirtual": variant == "virtio-blk", "workload": workload, "repetition": rep,
         "metric": metric, "value": value, "unit": "IO/s", "accelerator": "tcg", "host": "h1"}
    r.update(kw)
    return r


def new_run(root, run_id="run-1", scenario="disk", started="2026-11-26T10:15:00+0000"):
    rd = store.RunDir.create(root, run_id)
    rd.write_meta({"run_id": run_id, "scenario": {"name": scenario}, "started": started,
                   "status": "running"})
    return rd


def test_create_makes_layout(tmp_path):
    rd = new_run(tmp_path)
    assert rd.run_id == "run-1"
    assert (rd.path / "parts").is_dir() and (rd.path / "raw").is_dir()
    assert rd.read_meta()["scenario"] == {"name": "disk"}
    assert store.RunDir.open(rd.path).path == rd.path


def test_existing_run_id_refused(tmp_path):
    rd = new_run(tmp_path)
    with pytest.raises(StoreError) as exc:
        store.RunDir.create(tmp_path, "run-1")
    assert "already exists" in str(exc.value)
    assert_one_line(str(exc.value))
    assert rd.read_meta()["status"] == "running"  # the first run is untouched


def test_open_refuses_foreign_directory(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "run.json").write_text('{"hello": 1}')
    with pytest.raises(StoreError):
        store.RunDir.open(tmp_path / "x")


def test_round_trip_exact_values(tmp_path):
    rd = new_run(tmp_path)
    rows_a = [row(rep=0, value=repr(11500.25)), row(rep=0, metric="clat_p99", value=repr(0.1 + 0.2))]
    rows_b = [row(variant="sata", rep=0, value=repr(4306.173457))]
    rd.add_samples("virtio-blk__randread-4k-qd32__r0", rows_a)
    rd.add_samples("sata__randread-4k-qd32__r0", rows_b)
    assert rd.has_part("sata__randread-4k-qd32__r0")
    assert not rd.has_part("sata__randread-4k-qd32__r1")
    assert rd.consolidate() == 3
    assert (rd.path / "samples.csv").read_text().splitlines()[0] == ",".join(SAMPLE_COLUMNS)

    df = store.load_samples(rd.path)
    assert list(df.columns) == list(SAMPLE_COLUMNS)
    assert len(df) == 3
    got = {(r.variant, r.metric): r.value for r in df.itertuples()}
    assert got == {("virtio-blk", "iops"): 11500.25, ("virtio-blk", "clat_p99"): 0.1 + 0.2,
                   ("sata", "iops"): 4306.173457}  # exact floats, not rounded
    assert df["repetition"].tolist() == [0, 0, 0]
    assert df.set_index("variant")["paravirtual"].to_dict() == {"virtio-blk": True, "sata": False}
    assert df["paravirtual"].map(type).eq(bool).all()


def test_part_keys_are_sanitised(tmp_path):
    rd = new_run(tmp_path)
    rd.add_samples("../../evil key", [row()])
    assert rd.part_path("../../evil key").parent == rd.path / "parts"
    assert list((rd.path / "parts").iterdir()) == [rd.part_path("../../evil key")]


def test_raw_outputs_stay_inside_the_run(tmp_path):
    rd = new_run(tmp_path)
    p = rd.write_raw("../sata", "../../x.json", '{"jobs": []}')
    assert rd.path / "raw" in p.parents
    assert p.read_text() == '{"jobs": []}'


def test_unconsolidated_parts_are_loaded_and_deduplicated(tmp_path):
    rd = new_run(tmp_path)
    rd.add_samples("a", [row(rep=0, value="1.5")])
    rd.consolidate()  # samples.csv has rep 0 and the part of rep 0 is still there
    rd.add_samples("b", [row(rep=1, value="2.5")])  # not consolidated yet (interrupted run)
    rows = list(store.iter_sample_rows(rd.path))
    assert sorted((r["repetition"], r["value"]) for r in rows) == [("0", "1.5"), ("1", "2.5")]
    df = store.load_samples(rd.path)
    assert sorted(df["value"].tolist()) == [1.5, 2.5]


def test_many_parts_load_like_one_table_per_file(tmp_path):
    """Parts with the same header are parsed as one table: the same rows, values and order as
    reading them one by one, including a part whose text needs quotes and one without a final
    newline; a bad part among them is still named."""
    rd = new_run(tmp_path)
    for rep in range(30):
        rd.add_samples(f"r{rep:02d}", [row(rep=rep, value=str(rep + 0.5)),
                                       row(rep=rep, metric="bw", value=str(rep * 2))])
    rd.add_samples("r15b", [row(rep=99, workload='odd, "quoted"\nname', value="7")])
    part = rd.part_path("r20")
    part.write_bytes(part.read_bytes().rstrip(b"\n"))
    df = store.load_samples(rd.path)
    expected = list(store.iter_sample_rows(rd.path))
    assert len(df) == len(expected) == 61
    assert [(r.repetition, r.metric, r.value, r.workload) for r in df.itertuples()] == \
        [(int(r["repetition"]), r["metric"], float(r["value"]), r["workload"]) for r in expected]
    assert 'odd, "quoted"\\x0aname' in set(df["workload"])  # escaped for terminals

    rd.part_path("r25").write_bytes((",".join(SAMPLE_COLUMNS) + "\n").encode() + b"\xff\xfe,x\n")
    with pytest.raises(StoreError, match="r25"):
        store.load_samples(rd.path)


def test_duplicates_keep_the_first_value(tmp_path):
    rd = new_run(tmp_path)
    rd.add_samples("a", [row(rep=0, value="1.0")])
    rd.add_samples("b", [row(rep=0, value="9.0")])  # same unit and metric: a duplicate
    assert [r["value"] for r in store.iter_sample_rows(rd.path)] == ["1.0"]


def test_load_samples_of_several_runs_and_a_root(tmp_path):
    a = new_run(tmp_path, "run-a", started="2026-11-26T10:00:00+0000")
    b = new_run(tmp_path, "run-b", started="2026-11-26T09:00:00+0000")
    a.add_samples("x", [row(run_id="run-a", value="1")])
    b.add_samples("x", [row(run_id="run-b", value="2")])
    assert sorted(store.load_samples(a.path, b.path)["run_id"]) == ["run-a", "run-b"]
    assert sorted(store.load_samples(tmp_path)["value"]) == [1.0, 2.0]


def test_load_samples_empty_run_has_columns(tmp_path):
    rd = new_run(tmp_path)
    df = store.load_samples(rd.path)
    assert len(df) == 0 and list(df.columns) == list(SAMPLE_COLUMNS)


def test_load_samples_not_a_run(tmp_path):
    with pytest.raises(StoreError, match="not a vbench run directory"):
        store.load_samples(tmp_path / "nothing-here")


# ---- find_runs and skipping corrupt runs ----------------------------------------------------------

def test_find_runs_orders_by_start_and_filters_scenario(tmp_path):
    new_run(tmp_path, "zzz", started="2026-11-26T08:00:00+0000")
    new_run(tmp_path, "aaa", started="2026-11-26T09:00:00+0000")
    new_run(tmp_path, "net-1", scenario="net", started="2026-11-26T07:00:00+0000")
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "stray.txt").write_text("x")
    assert [p.name for p in store.find_runs(tmp_path)] == ["net-1", "zzz", "aaa"]
    assert [p.name for p in store.find_runs(tmp_path, scenario="disk")] == ["zzz", "aaa"]
    assert store.find_runs(tmp_path / "missing") == []


def test_find_runs_skips_corrupt_run_and_warns(tmp_path):
    new_run(tmp_path, "good")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.json").write_text('{"schema_version": 1, "trunc')
    warnings: list[str] = []
    assert [p.name for p in store.find_runs(tmp_path, warn=warnings.append)] == ["good"]
    assert len(warnings) == 1 and str(bad) in warnings[0] and "skipping" in warnings[0]
    assert_one_line(warnings[0])
    # Without warn it is skipped silently, never raised.
    assert [p.name for p in store.find_runs(tmp_path)] == ["good"]


def test_load_samples_skips_corrupt_run_meta_and_reports(tmp_path):
    good = new_run(tmp_path, "good")
    good.add_samples("x", [row(run_id="good", value="3.25")])
    bad = new_run(tmp_path, "bad")
    bad.add_samples("x", [row(run_id="bad", value="7")])
    (bad.path / "run.json").write_text('{"schema_version": 42}')
    warnings: list[str] = []
    df = store.load_samples(tmp_path, warn=warnings.append)
    assert df["run_id"].tolist() == ["good"] and df["value"].tolist() == [3.25]
    assert len(warnings) == 1 and "bad" in warnings[0] and "schema version 42" in warnings[0]


def test_load_samples_skips_foreign_sample_table_and_reports(tmp_path):
    good = new_run(tmp_path, "good")
    good.add_samples("x", [row(run_id="good", value="1")])
    bad = new_run(tmp_path, "bad")
    (bad.path / "samples.csv").write_text("a,b\n1,2\n")
    warnings: list[str] = []
    df = store.load_samples(tmp_path, warn=warnings.append)
    assert df["run_id"].tolist() == ["good"]
    assert len(warnings) == 1 and "not a vbench sample table" in warnings[0]
    # Given directly and without warn, the problem is raised, as a StoreError.
    with pytest.raises(StoreError, match="not a vbench sample table"):
        store.load_samples(bad.path)


def test_load_samples_skips_binary_sample_table_and_reports(tmp_path):
    good = new_run(tmp_path, "good")
    good.add_samples("x", [row(run_id="good", value="1")])
    bad = new_run(tmp_path, "bad")
    (bad.path / "samples.csv").write_bytes(b"\xff\xfe\x00\x81 garbage")
    warnings: list[str] = []
    df = store.load_samples(tmp_path, warn=warnings.append)
    assert df["run_id"].tolist() == ["good"] and len(warnings) == 1


def test_load_meta(tmp_path):
    rd = new_run(tmp_path)
    assert store.load_meta(rd.path)["run_id"] == "run-1"
    os.remove(rd.path / "run.json")
    with pytest.raises(StoreError):
        store.load_meta(rd.path)
