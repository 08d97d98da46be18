"""The results database on a real PostgreSQL (Debian's server, started here on a UNIX socket).

No VM: publish the stored runs, publish twice, interrupt publishes (an error between inserts, a
publisher killed with SIGKILL mid-transaction), migrations, and read back through the same readers
(`load_samples`, `compare`) as the run directories, with equal row counts and numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from vbench.results import postgres as dbstore, rundir as store
from vbench.core.errors import StoreError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/
from pgcluster import PgCluster, process_running, server_bin  # noqa: E402

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RUNS = sorted((ROOT / "tests" / "data" / "runs").iterdir())


@pytest.fixture(scope="module")
def pg():
    if server_bin() is None:
        pytest.skip("PostgreSQL server not installed (scripts/setup.sh installs it)")
    cluster = PgCluster.start()
    yield cluster
    pid = cluster.pid
    cluster.stop()
    assert not process_running(pid), "the test's PostgreSQL survived its teardown"
    assert not cluster.base.exists()


_count = iter(range(10_000))


@pytest.fixture
def url(pg):
    """A fresh database per test."""
    return pg.create_database(f"t{next(_count)}_{os.getpid()}")


def _counts(url: str) -> dict[str, int]:
    conn = dbstore.connect(url)
    try:
        return dbstore.counts(conn)
    finally:
        conn.close()


def _expected_counts(paths: list[Path]) -> dict[str, int]:
    return {"runs": len(paths),
            "variants": sum(len(store.read_json(p / "run.json")["variants"]) for p in paths),
            "samples": sum(len(list(store.iter_sample_rows(p))) for p in paths)}


def _sorted(df):
    return df.sort_values(["run_id", "variant", "workload", "repetition", "metric"]
                          ).reset_index(drop=True)


def test_publish_and_read_back_equal_numbers(url):
    done = dbstore.publish(url, RUNS)
    assert [p.action for p in done] == ["inserted", "inserted"]
    assert _counts(url) == _expected_counts(RUNS)
    refs = [p.name for p in RUNS]
    with dbstore.checkout(url, refs) as (root, paths):
        assert [p.name for p in paths] == refs
        for orig, back in zip(RUNS, paths):
            assert store.read_json(back / "run.json") == store.read_json(orig / "run.json")
            a, b = store.load_samples(orig), store.load_samples(back)
            assert len(a) == len(b) == len(list(store.iter_sample_rows(orig)))
            assert _sorted(a).equals(_sorted(b))
        from vbench.stats import compare

        direct = compare.compare(store.load_samples(RUNS[0]), store.load_samples(RUNS[1]))
        via_db = compare.compare(store.load_samples(paths[0]), store.load_samples(paths[1]))
        assert via_db.to_text() == direct.to_text()
    assert not root.exists(), "the exported copy must be removed after reading"


def test_same_run_twice_is_one_run(url):
    dbstore.publish(url, RUNS[:1])
    again = dbstore.publish(url, RUNS[:1])
    assert again[0].action == "unchanged"
    assert _counts(url) == _expected_counts(RUNS[:1])


def test_changed_run_replaces_its_old_version(url, tmp_path):
    run = tmp_path / RUNS[0].name
    shutil.copytree(RUNS[0], run)
    dbstore.publish(url, [run])
    meta = store.read_json(run / "run.json")
    store.write_json(run / "run.json", {**{k: v for k, v in meta.items() if k != "schema_version"},
                                        "status": "incomplete"})
    lines = (run / "samples.csv").read_text().splitlines()
    (run / "samples.csv").write_text("\n".join(lines[:-10]) + "\n")
    with pytest.raises(StoreError, match="--replace"):  # issue 21: only when asked for
        dbstore.publish(url, [run])
    again = dbstore.publish(url, [run], replace=True)
    assert again[0].action == "replaced"
    assert _counts(url) == _expected_counts([run])
    with dbstore.checkout(url, [run.name]) as (_, [back]):
        assert store.read_json(back / "run.json")["status"] == "incomplete"
        assert len(store.load_samples(back)) == len(lines) - 11


@pytest.mark.parametrize("stage", ["run", "variants", "samples"])
def test_failure_between_inserts_leaves_nothing(url, monkeypatch, stage):
    def boom(at):
        if at == stage:
            raise RuntimeError(f"injected failure after the {at} insert")

    monkeypatch.setattr(dbstore, "_checkpoint", boom)
    with pytest.raises(RuntimeError, match="injected"):
        dbstore.publish(url, RUNS[:1])
    assert _counts(url) == {"runs": 0, "variants": 0, "samples": 0}


def test_failed_replace_keeps_the_old_version(url, tmp_path, monkeypatch):
    dbstore.publish(url, RUNS[:1])
    run = tmp_path / RUNS[0].name
    shutil.copytree(RUNS[0], run)
    (run / "samples.csv").write_text("\n".join((run / "samples.csv").read_text().splitlines()[:5]))
    monkeypatch.setattr(dbstore, "_checkpoint", lambda at: (_ for _ in ()).throw(
        RuntimeError("injected")) if at == "samples" else None)
    with pytest.raises(RuntimeError):
        dbstore.publish(url, [run], replace=True)
    assert _counts(url) == _expected_counts(RUNS[:1])


def test_a_hostile_run_directory_cannot_replace_a_published_run(url, tmp_path):
    """Issue 21, finding 7: the name (run_id, host) comes from the run's own run.json; replacing
    needs --replace, and a run named by its content hash is exactly that content."""
    base = dbstore.publish(url, RUNS[:1])[0]
    evil = tmp_path / "elsewhere"
    shutil.copytree(RUNS[0], evil)
    lines = (evil / "samples.csv").read_text().splitlines()
    (evil / "samples.csv").write_text("\n".join(lines[:3]) + "\n")
    with pytest.raises(StoreError) as exc:
        dbstore.publish(url, [evil])
    assert "already published with other content" in str(exc.value)
    assert _counts(url) == _expected_counts(RUNS[:1])
    with dbstore.checkout(url, [f"sha256:{base.content_hash[:16]}"]) as (_, [back]):
        assert len(store.load_samples(back)) == len(store.load_samples(RUNS[0]))
    with pytest.raises(StoreError, match="no run"):
        with dbstore.checkout(url, ["sha256:" + "0" * 16]):
            pass


_KILLER = """
import os, signal, sys
from pathlib import Path
from vbench.results import postgres as dbstore
def die(at):
    if at == sys.argv[3]:
        print("killing myself after", at, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
dbstore._checkpoint = die
dbstore.publish(sys.argv[1], [Path(sys.argv[2])])
"""


@pytest.mark.parametrize("stage", ["variants", "samples"])
def test_publisher_killed_mid_transaction_leaves_nothing(url, stage):
    cp = subprocess.run([sys.executable, "-c", _KILLER, url, str(RUNS[0]), stage],
                        capture_output=True, text=True, timeout=120,
                        env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert cp.returncode == -signal.SIGKILL, cp.stderr
    assert f"after {stage}" in cp.stdout
    assert _counts(url) == {"runs": 0, "variants": 0, "samples": 0}
    # and the store still works: the run publishes whole afterwards
    assert dbstore.publish(url, RUNS[:1])[0].action == "inserted"
    assert _counts(url) == _expected_counts(RUNS[:1])


def test_concurrent_publishers_make_one_run(url):
    errors, results = [], []

    def one():
        try:
            results.extend(dbstore.publish(url, RUNS))
        except Exception as exc:  # pragma: no cover - the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert sorted(r.action for r in results).count("inserted") == len(RUNS)
    assert _counts(url) == _expected_counts(RUNS)


def test_migrations_are_versioned_and_checked(pg, url):
    conn = dbstore.connect(url)
    try:
        assert dbstore.schema_version(conn) == 0
        with pytest.raises(StoreError, match="no vbench runs yet"):
            dbstore.counts(conn)
        assert dbstore.migrate(conn) == list(range(1, dbstore.latest_version() + 1))
        assert dbstore.migrate(conn) == []
        assert dbstore.schema_version(conn) == dbstore.latest_version()
        # a migration file changed after it was applied is refused
        changed = [dbstore.Migration(m.version, m.name, m.sql + "\n-- edited\n")
                   for m in dbstore.migrations()]
        with pytest.raises(StoreError, match="must never change"):
            dbstore.migrate(conn, changed)
        # a store migrated by a newer vbench is refused by writers and readers
        conn.execute("INSERT INTO vbench.schema_migrations (version, name, checksum) "
                     "VALUES (%s, 'future', 'x')", (dbstore.latest_version() + 1,))
        with pytest.raises(StoreError, match="newer than this vbench"):
            dbstore.migrate(conn)
        with pytest.raises(StoreError, match="newer than this vbench"):
            dbstore.counts(conn)
    finally:
        conn.close()
    # nothing outside the schema "vbench" was created
    tables = pg.sql("SELECT table_schema, table_name FROM information_schema.tables WHERE "
                    "table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
                    db=url.split("///")[1].split("?")[0])
    assert {s for s, _ in tables} == {"vbench"}
    assert {t for _, t in tables} >= {"schema_migrations", "runs", "variants", "samples",
                                      "sample_facts"}


def test_unknown_run_and_bad_url_are_one_line(url):
    dbstore.publish(url, RUNS[:1])
    with pytest.raises(StoreError, match="not in the results database"):
        with dbstore.checkout(url, ["nope"]):
            pass
    bad = url.replace("user=vbench", "user=nobody_here").replace("postgresql:///",
                                                                 "postgresql://x:secret@/")
    with pytest.raises(StoreError) as exc:
        dbstore.connect(bad)
    assert "secret" not in str(exc.value) and "\n" not in str(exc.value)


def test_sql_clients_read_samples(pg, url):
    """What Grafana would run: medians per variant straight from SQL match pandas'."""
    dbstore.publish(url, RUNS[:1])
    db = url.split("///")[1].split("?")[0]
    rows = pg.sql("SELECT variant, percentile_cont(0.5) WITHIN GROUP (ORDER BY value) "
                  "FROM vbench.sample_facts WHERE workload = 'randread-4k-qd32' AND metric = 'iops' "
                  "GROUP BY variant ORDER BY variant", db=db)
    df = store.load_samples(RUNS[0])
    df = df[(df.workload == "randread-4k-qd32") & (df.metric == "iops")]
    want = df.groupby("variant")["value"].median().sort_index()
    assert [r[0] for r in rows] == list(want.index)
    assert [r[1] for r in rows] == pytest.approx(list(want.values), rel=1e-12)
    env = pg.sql("SELECT environment->>'accelerator', record->'scenario'->>'name' FROM vbench.runs",
                 db=db)
    meta = json.loads((RUNS[0] / "run.json").read_text())
    assert env == [(meta["environment"]["accelerator"], meta["scenario"]["name"])]


def test_roles_publisher_without_create_and_read_only_reader(pg, url):
    """Once migrated, publishing needs no CREATE on the database, and reading needs only SELECT."""
    dbstore.publish(url, RUNS[:1])  # migrates as the owner
    db = url.split("///")[1].split("?")[0]
    for stmt in ("CREATE ROLE publisher LOGIN", "CREATE ROLE reader LOGIN"):
        try:
            pg.sql(stmt)
        except Exception:
            pass  # roles are cluster-wide: another test may have made them
    pg.sql("GRANT USAGE ON SCHEMA vbench TO publisher, reader; "
           "GRANT SELECT, INSERT, DELETE, UPDATE ON ALL TABLES IN SCHEMA vbench TO publisher; "
           "GRANT USAGE ON ALL SEQUENCES IN SCHEMA vbench TO publisher; "
           "GRANT SELECT ON ALL TABLES IN SCHEMA vbench TO reader", db=db)
    as_publisher = url.replace("user=vbench", "user=publisher")
    as_reader = url.replace("user=vbench", "user=reader")
    assert [p.action for p in dbstore.publish(as_publisher, RUNS)] == ["unchanged", "inserted"]
    with dbstore.checkout(as_reader, [RUNS[1].name]) as (_, [back]):
        assert len(store.load_samples(back)) == len(store.load_samples(RUNS[1]))
    with pytest.raises(StoreError, match="permission denied"):
        dbstore.publish(as_reader, RUNS[:1])


# ---- the commands, as a user runs them -------------------------------------------------------------

def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vbench", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})})


def test_publish_command_is_idempotent(url):
    cp = _cli("publish", str(RUNS[0].parent), "--store", url)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.count(": published;") == len(RUNS)
    cp = _cli("publish", *map(str, RUNS), env={"VBENCH_STORE": url})
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.count("already there, unchanged") == len(RUNS)
    assert _counts(url) == _expected_counts(RUNS)


def test_publish_command_errors_are_one_line(url):
    cp = _cli("publish", str(RUNS[0]), env={"VBENCH_STORE": ""})
    assert cp.returncode == 2 and len(cp.stderr.strip().splitlines()) == 1
    bad = url.replace("postgresql:///", "postgresql://someone:hunter2@/").replace("vbench", "nobody")
    cp = _cli("publish", str(RUNS[0]), "--store", bad)
    assert cp.returncode == 10 and len(cp.stderr.strip().splitlines()) == 1
    assert "hunter2" not in cp.stderr


def _strip_paths(html: str) -> str:
    import re

    html = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "TIME", html)  # "generated" (minutes)
    return re.sub(r"/tmp/vbench-store-[^/\"'<\s]+/results", "RESULTS",
                  html.replace(str(RUNS[0].parent), "RESULTS"))


def test_compare_history_report_read_the_store(url, tmp_path):
    assert _cli("publish", *map(str, RUNS), "--store", url).returncode == 0
    a, b = RUNS[0].name, RUNS[1].name
    direct = _cli("compare", str(RUNS[0]), str(RUNS[1]))
    via = _cli("compare", a, b, "--store", url)
    assert (via.returncode, via.stdout) == (direct.returncode, direct.stdout), via.stderr
    assert "compare: base" in via.stdout and len(via.stdout.splitlines()) > 5

    direct = _cli("history", "smoke-disk", "--results", str(RUNS[0].parent),
                  "--out", str(tmp_path / "h-dir"))
    via = _cli("history", "scenarios/smoke-disk.yaml", "--store", url, "--out", str(tmp_path / "h-db"))
    assert direct.returncode == 0 and via.returncode == 0, via.stderr
    assert _strip_paths((tmp_path / "h-db" / "index.html").read_text()) == \
        _strip_paths((tmp_path / "h-dir" / "index.html").read_text())

    direct = _cli("report", str(RUNS[0]), "--out", str(tmp_path / "r-dir"))
    via = _cli("report", a, "--store", url, "--out", str(tmp_path / "r-db"))
    assert direct.returncode == 0 and via.returncode == 0, via.stderr
    assert _strip_paths((tmp_path / "r-db" / "index.html").read_text()) == \
        _strip_paths((tmp_path / "r-dir" / "index.html").read_text())

    missing = _cli("compare", a, "no-such-run", "--store", url)
    assert missing.returncode == 10 and "no-such-run" in missing.stderr
