"""The results database's pure parts: content hash, migrations list, URL redaction, references,
row conversion. The database itself is exercised in tests/integration/test_dbstore.py."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from vbench.results import postgres as dbstore, rundir as store
from vbench.core.errors import StoreError
from vbench.core.metrics import SAMPLE_COLUMNS

RUN = sorted((Path(__file__).resolve().parents[1] / "data" / "runs").iterdir())[0]


def _run():
    raw, _, rows = dbstore.read_run(RUN)
    return raw, rows


def test_content_hash_ignores_layout_and_row_order_but_not_content():
    record, rows = _run()
    h = dbstore.content_hash(record, rows)
    reordered = dict(reversed(list(record.items())))
    assert dbstore.content_hash(reordered, list(reversed(rows))) == h
    changed = [dict(r) for r in rows]
    changed[7]["value"] = str(float(changed[7]["value"]) * 1.001)
    assert dbstore.content_hash(record, changed) != h
    assert dbstore.content_hash({**record, "status": "incomplete"}, rows) != h
    assert dbstore.content_hash(record, rows[:-1]) != h


def test_shipped_migrations_are_numbered_and_stay_in_their_schema():
    ms = dbstore.migrations()
    assert [m.version for m in ms] == list(range(1, len(ms) + 1))
    for m in ms:
        # every object a migration creates is in the schema "vbench"
        for line in m.sql.splitlines():
            if line.lstrip().upper().startswith("CREATE "):
                assert "vbench." in line, line


def test_migration_files_with_gaps_or_bad_names_are_refused(tmp_path):
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0003_c.sql").write_text("SELECT 1;")
    with pytest.raises(StoreError, match="without gaps"):
        dbstore.migrations(tmp_path)
    (tmp_path / "0003_c.sql").unlink()
    (tmp_path / "2-bad.sql").write_text("SELECT 1;")
    with pytest.raises(StoreError, match="NNNN_name.sql"):
        dbstore.migrations(tmp_path)


def test_redact_hides_the_password_only():
    assert dbstore.redact("postgresql://u:s3cret@db.example:5432/vb") == \
        "postgresql://u:***@db.example:5432/vb"
    assert dbstore.redact("postgresql:///vb?host=/tmp/x") == "postgresql:///vb?host=/tmp/x"


def test_only_postgresql_urls_are_accepted():
    with pytest.raises(StoreError, match="postgresql://"):
        dbstore.connect("mysql://u:pw@h/db")


def test_run_references():
    assert dbstore._split_ref("20261126-113024-smoke-disk") == ("20261126-113024-smoke-disk", None)
    assert dbstore._split_ref("results/20261126-113024-smoke-disk/") == \
        ("20261126-113024-smoke-disk", None)
    assert dbstore._split_ref("r1@host-a") == ("r1", "host-a")


def test_sample_rows_survive_the_database_types():
    """CSV text -> database column types -> CSV text gives the same numbers and labels."""
    _, rows = _run()
    for i, r in enumerate(rows):
        t = dbstore._sample_tuple(42, i, r)
        assert t[:2] == (42, i)
        back = dbstore._csv_row(t[2:])
        for c in SAMPLE_COLUMNS:
            if c == "value":
                assert float(back[c]) == float(r[c])
            else:
                assert back[c] == r[c], c
    bad = dict(rows[0], value="n/a", repetition="", paravirtual="maybe")
    t = dbstore._sample_tuple(1, 0, bad)
    cols = dict(zip(SAMPLE_COLUMNS, t[2:]))
    assert cols["value"] is None and cols["repetition"] is None and cols["paravirtual"] is None


def test_variant_rows_carry_the_verdict():
    _, rec, _ = dbstore.read_run(RUN)
    rows = {r[0]: r for r in dbstore._variant_rows(rec)}
    assert set(rows) == set(rec.variants)
    v = rows["virtio-blk"]
    assert v[1:5] == ("disk", "virtio", True, False)
    assert v[7] is True  # every driver verified
    rec.variants["virtio-blk"].drivers["disk"].ok = False
    assert {r[0]: r for r in dbstore._variant_rows(rec)}["virtio-blk"][7] is False


def test_export_layout_is_what_the_readers_read(tmp_path):
    """The CSV the export writes parses back with the store's own reader."""
    _, rows = _run()
    text = store.rows_to_csv(dbstore._csv_row(dbstore._sample_tuple(1, i, r)[2:])
                             for i, r in enumerate(rows))
    (tmp_path / "s.csv").write_text(text)
    with open(tmp_path / "s.csv", newline="") as fh:
        back = list(csv.DictReader(fh))
    assert len(back) == len(rows)
    assert [b["metric"] for b in back] == [r["metric"] for r in rows]
