"""Results in PostgreSQL: publish run directories into a database, read them back as directories.

The results directory stays the embedded default; a database is for a fleet's runs in one place
that Grafana or any SQL client can query. ``vbench publish RUN --store postgresql://...`` writes a
run's record (run.json, which holds the environment and the variants), its variants and its
samples; ``history``, ``compare`` and ``report`` take ``--store URL`` and read from it.

- **Schema and migrations.** Everything lives in the PostgreSQL schema ``vbench``; nothing outside
  it is created or changed. The ordered SQL files in ``vbench/sql/NNNN_name.sql`` are the
  migrations; ``vbench.schema_migrations`` records each one applied, with a checksum of its text.
  :func:`migrate` applies the missing ones in one transaction under an advisory lock (two
  publishers may start at once), refuses a store migrated by a newer vbench, and refuses an applied
  migration whose file has since changed. Readers never migrate: a read-only role is enough.
- **Idempotent.** A run is identified by (run_id, host) and its content by a sha256 over run.json
  and its sample rows. Publishing the same content again changes nothing; publishing changed
  content (a resumed run that is now complete) replaces the old version in the same transaction.
- **Atomic.** A publish is one transaction: the run row, its variants and its samples are all
  committed or none is (an interrupted publish leaves nothing partial).
- **Reading.** :func:`checkout` exports runs from the database into the canonical on-disk layout
  (run.json exactly as the run wrote it, samples.csv) in a temporary directory, so every reader of
  run directories works unchanged on a fleet's runs.

psycopg (v3) is imported only when a store is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

from vbench.results import record, rundir as store
from vbench.core.errors import StoreError
from vbench.core.metrics import SAMPLE_COLUMNS
from vbench.results.record import RunRecord

SQL_DIR = Path(__file__).with_name("sql")
_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_MIGRATION_LOCK = 0x76626E63  # pg_advisory_xact_lock key of migrations ("vbnc")
_SAMPLE_DB_COLUMNS = ("run", "ordinal") + SAMPLE_COLUMNS
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.@-]+")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class Published:
    """What one publish did: ``inserted``, ``unchanged`` (same content already there) or
    ``replaced`` (the run was there with other content)."""

    run_id: str
    host: str
    action: str
    samples: int
    variants: int
    content_hash: str


def migrations(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The migrations shipped with this vbench, in order; numbering gaps or duplicates are a bug."""
    out = []
    for f in sorted(sql_dir.glob("*.sql")):
        m = _MIGRATION_FILE.match(f.name)
        if not m:
            raise StoreError(f"{f}: migration files are named NNNN_name.sql")
        out.append(Migration(int(m.group(1)), m.group(2), f.read_text()))
    if [m.version for m in out] != list(range(1, len(out) + 1)):
        raise StoreError(f"{sql_dir}: migrations must be numbered 1, 2, 3 ... without gaps")
    return out


def latest_version() -> int:
    return len(migrations())


# ---- connections ----------------------------------------------------------------------------------

def redact(url: str) -> str:
    """The URL without its password, for messages (``postgresql://u:***@host/db``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _psycopg():
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - psycopg is a dependency
        raise StoreError("the results database needs psycopg: pip install 'psycopg[binary]'") from exc
    return psycopg


def connect(url: str):
    """Open a connection to the store; any failure is one StoreError line without the password."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise StoreError(f"--store {redact(url)!r}: expected a postgresql://... URL")
    psycopg = _psycopg()
    try:
        # autocommit: every `conn.transaction()` below is a real transaction, never a savepoint
        return psycopg.connect(url, connect_timeout=10, application_name="vbench", autocommit=True)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"cannot connect to the results database {redact(url)}: {first}") from None


@contextlib.contextmanager
def _db_errors(url: str, doing: str) -> Iterator[None]:
    psycopg = _psycopg()
    try:
        yield
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"results database {redact(url)}: {doing} failed: {first}") from None


# ---- migrations -----------------------------------------------------------------------------------

def schema_version(conn) -> int:
    """The store's schema version: 0 when vbench's schema is not there yet."""
    row = conn.execute("SELECT to_regclass('vbench.schema_migrations') IS NOT NULL").fetchone()
    if not row[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM vbench.schema_migrations").fetchone()
    return int(row[0])


def migrate(conn, known: list[Migration] | None = None) -> list[int]:
    """Bring the store's schema to this vbench's version (one transaction); returns what was applied."""
    known = migrations() if known is None else known
    applied_now: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        if schema_version(conn) == 0:
            # only then: a publishing role without CREATE on the database works once migrated
            conn.execute("CREATE SCHEMA IF NOT EXISTS vbench")
            conn.execute("""CREATE TABLE IF NOT EXISTS vbench.schema_migrations (
                                version    integer     PRIMARY KEY,
                                name       text        NOT NULL,
                                checksum   text        NOT NULL,
                                applied_at timestamptz NOT NULL DEFAULT now())""")
        applied = dict(conn.execute("SELECT version, checksum FROM vbench.schema_migrations"))
        newer = sorted(v for v in applied if v > len(known))
        if newer:
            raise StoreError(f"the results database has schema version {max(newer)}, newer than this "
                             f"vbench knows ({len(known)}); upgrade vbench to use it")
        for m in known:
            if m.version in applied:
                if applied[m.version] != m.checksum:
                    raise StoreError(f"migration {m.version} ({m.name}) differs from the one applied "
                                     f"to this database; a shipped migration must never change")
                continue
            conn.execute(m.sql)
            conn.execute("INSERT INTO vbench.schema_migrations (version, name, checksum) "
                         "VALUES (%s, %s, %s)", (m.version, m.name, m.checksum))
            applied_now.append(m.version)
    return applied_now


def _require_schema(conn) -> None:
    """Readers never migrate: say what to do when the store is empty, older or newer."""
    have, want = schema_version(conn), latest_version()
    if have == 0:
        raise StoreError("the results database has no vbench runs yet (no schema vbench); "
                         "publish one with `vbench publish RUN --store URL`")
    if have > want:
        raise StoreError(f"the results database has schema version {have}, newer than this vbench "
                         f"reads ({want}); upgrade vbench")
    if have < want:
        raise StoreError(f"the results database has schema version {have}, older than this "
                         f"vbench's {want}; `vbench publish` with this vbench migrates it")


# ---- publishing -----------------------------------------------------------------------------------

def content_hash(record: dict, rows: list[dict]) -> str:
    """sha256 over the record and the sample rows, independent of JSON layout and row order."""
    h = hashlib.sha256()
    h.update(json.dumps(record, sort_keys=True, separators=(",", ":"), default=str).encode())
    for line in sorted(json.dumps([str(r.get(c, "")) for c in SAMPLE_COLUMNS]) for r in rows):
        h.update(b"\n" + line.encode())
    return h.hexdigest()


def _parse_time(text: str) -> datetime | None:
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        try:
            return datetime.strptime(text, fmt)
        except (TypeError, ValueError):
            continue
    return None


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value == value else None  # NaN is "no number", as load_samples drops it


def _integer(text: Any) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _boolean(text: Any) -> bool | None:
    low = str(text).strip().lower()
    return True if low == "true" else False if low == "false" else None


def _variant_rows(rec: RunRecord) -> list[tuple]:
    return [(name, v.device, v.model, v.paravirtual, v.baseline, v.guest_kernel or None,
             v.boot_seconds, v.verified, v.domain_xml or None) for name, v in rec.variants.items()]


def _checkpoint(stage: str) -> None:
    """Called between the inserts of a publish; the tests make it fail to prove atomicity."""


def read_run(run_path: Path) -> tuple[dict, RunRecord, list[dict]]:
    """A run directory as published: run.json as written, its typed record, every sample row.

    The typed record (upgraded from older schema versions, validated) supplies the columns;
    run.json itself is stored unchanged, so a reader later upgrades it exactly as it would the
    file, and an exported run is the run the host wrote.
    """
    run_path = Path(run_path)
    raw = store.read_json(run_path / store.RUN_FILE)
    rec = record.from_dict(raw, str(run_path / store.RUN_FILE))
    rows = list(store.iter_sample_rows(run_path))
    return raw, rec, rows


def publish_run(conn, run_path: Path) -> Published:
    """Write one run directory into the store in one transaction (the schema must be migrated)."""
    run_path = Path(run_path)
    raw, rec, rows = read_run(run_path)
    run_id = rec.run_id or run_path.name
    host = rec.environment.host or ""
    digest = content_hash(raw, rows)
    variants = _variant_rows(rec)
    pj = _psycopg().types.json
    with conn.transaction():
        # Two publishers of the same run serialize here instead of failing on the unique key.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"vbench-run {run_id} {host}",))
        found = conn.execute("SELECT id, content_hash FROM vbench.runs WHERE run_id = %s AND "
                             "host = %s FOR UPDATE", (run_id, host)).fetchone()
        if found and found[1] == digest:
            return Published(run_id, host, "unchanged", len(rows), len(variants), digest)
        if found:
            conn.execute("DELETE FROM vbench.runs WHERE id = %s", (found[0],))
        run_pk = conn.execute(
            """INSERT INTO vbench.runs (run_id, host, content_hash, scenario, status, started,
                   started_at, finished, accelerator, record_version, record, environment,
                   sample_count)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
            (run_id, host, digest, rec.scenario.name, rec.status, rec.started,
             _parse_time(rec.started), rec.finished, rec.accelerator or None,
             int(raw["schema_version"]), pj.Json(raw),
             pj.Jsonb(rec.environment.model_dump(mode="json", exclude_unset=True)),
             len(rows))).fetchone()[0]
        _checkpoint("run")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO vbench.variants (run, name, device, model, paravirtual, baseline, "
                "guest_kernel, boot_seconds, verified, domain_xml) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(run_pk, *v) for v in variants])
        _checkpoint("variants")
        with conn.cursor() as cur:
            with cur.copy(f"COPY vbench.samples ({', '.join(_SAMPLE_DB_COLUMNS)}) FROM STDIN") as cp:
                for i, r in enumerate(rows):
                    cp.write_row(_sample_tuple(run_pk, i, r))
        _checkpoint("samples")
    return Published(run_id, host, "replaced" if found else "inserted", len(rows), len(variants),
                     digest)


def _sample_tuple(run_pk: int, ordinal: int, r: dict) -> tuple:
    out: list[Any] = [run_pk, ordinal]
    for c in SAMPLE_COLUMNS:
        v = r.get(c)
        if c == "value":
            out.append(_number(v))
        elif c == "repetition":
            out.append(_integer(v))
        elif c == "paravirtual":
            out.append(_boolean(v))
        else:
            out.append("" if v is None else str(v))
    return tuple(out)


def publish(url: str, run_paths: list[Path], progress: Callable[[str], None] | None = None
            ) -> list[Published]:
    """Migrate the store if needed and publish each run (one transaction per run)."""
    conn = connect(url)
    try:
        with _db_errors(url, "migration"):
            applied = migrate(conn)
        if applied and progress:
            progress(f"store: schema migrated to version {applied[-1]}")
        out = []
        for p in run_paths:
            with _db_errors(url, f"publishing {Path(p).name}"):
                out.append(publish_run(conn, Path(p)))
        return out
    finally:
        conn.close()


# ---- reading back ---------------------------------------------------------------------------------

def _split_ref(ref: str) -> tuple[str, str | None]:
    """``RUN`` or ``RUN@HOST`` (a path's last component is taken as the run id)."""
    run, _, host = ref.partition("@")
    run = Path(run.rstrip("/")).name or run
    return run, (host or None)


def _find(conn, ref: str) -> int:
    run_id, host = _split_ref(ref)
    if host is None:
        rows = conn.execute("SELECT id, host FROM vbench.runs WHERE run_id = %s ORDER BY host",
                            (run_id,)).fetchall()
    else:
        rows = conn.execute("SELECT id, host FROM vbench.runs WHERE run_id = %s AND host = %s",
                            (run_id, host)).fetchall()
    if not rows:
        raise StoreError(f"run {ref!r} is not in the results database; `vbench publish` it first")
    if len(rows) > 1:
        hosts = ", ".join(f"{run_id}@{h}" for _, h in rows)
        raise StoreError(f"run {run_id!r} is in the results database from several hosts; name one: "
                         f"{hosts}")
    return int(rows[0][0])


def _export_one(conn, run_pk: int, root: Path) -> Path:
    run_id, host, record = conn.execute("SELECT run_id, host, record FROM vbench.runs WHERE id = %s",
                                        (run_pk,)).fetchone()
    name = _SAFE_NAME.sub("_", run_id).strip(".") or f"run-{run_pk}"
    if (root / name).exists():  # the same run id from another host
        name = _SAFE_NAME.sub("_", f"{run_id}@{host}").strip(".")
    path = root / name
    path.mkdir(parents=True)
    store.atomic_write(path / store.RUN_FILE, json.dumps(record, indent=2) + "\n")
    cur = conn.execute(f"SELECT {', '.join(SAMPLE_COLUMNS)} FROM vbench.samples WHERE run = %s "
                       f"ORDER BY ordinal", (run_pk,))
    store.atomic_write(path / store.SAMPLES_FILE,
                       store.rows_to_csv(_csv_row(row) for row in cur))
    return path


def _csv_row(row: tuple) -> dict:
    out = {}
    for c, v in zip(SAMPLE_COLUMNS, row):
        if v is None:
            out[c] = ""
        elif c == "value":
            out[c] = repr(float(v))
        else:
            out[c] = str(v)
    return out


def export_runs(conn, refs: list[str], root: Path) -> list[Path]:
    """Write the named runs (``RUN`` or ``RUN@HOST``) as run directories under ``root``."""
    _require_schema(conn)
    pks = [_find(conn, r) for r in refs]
    return [_export_one(conn, pk, Path(root)) for pk in pks]


def export_scenario(conn, scenario: str, root: Path) -> list[Path]:
    """Write every run of a scenario (all hosts) as run directories under ``root``."""
    _require_schema(conn)
    pks = [r[0] for r in conn.execute("SELECT id FROM vbench.runs WHERE scenario = %s "
                                      "ORDER BY started_at NULLS FIRST, run_id, host", (scenario,))]
    return [_export_one(conn, pk, Path(root)) for pk in pks]


def scenario_of_file(conn, file: Path) -> str | None:
    """The scenario name recorded for runs made from this YAML file (newest), if any."""
    _require_schema(conn)
    row = conn.execute("SELECT scenario FROM vbench.runs WHERE record->'scenario'->>'file' = %s "
                       "ORDER BY started_at DESC NULLS LAST LIMIT 1", (str(file),)).fetchone()
    return row[0] if row else None


@contextlib.contextmanager
def checkout(url: str, refs: list[str] | None = None, scenario: str | None = None
             ) -> Iterator[tuple[Path, list[Path]]]:
    """Export runs (by reference, or all of a scenario) into a temporary results root.

    Yields ``(root, run_paths)``; the directory is removed afterwards. Reading is read-only: the
    connection never writes.
    """
    conn = connect(url)
    try:
        with tempfile.TemporaryDirectory(prefix="vbench-store-") as tmp:
            root = Path(tmp) / "results"
            root.mkdir()
            with _db_errors(url, "reading runs"):
                conn.read_only = True  # a reader never writes, whatever its role may do
                conn.isolation_level = _psycopg().IsolationLevel.REPEATABLE_READ  # one snapshot
                with conn.transaction():
                    paths = (export_runs(conn, refs, root) if refs is not None
                             else export_scenario(conn, scenario or "", root))
            yield root, paths
    finally:
        conn.close()


def counts(conn) -> dict[str, int]:
    """Rows per table (for checks and the round-trip figures)."""
    _require_schema(conn)
    return {t: int(conn.execute(f"SELECT count(*) FROM vbench.{t}").fetchone()[0])
            for t in ("runs", "variants", "samples")}
