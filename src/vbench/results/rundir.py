"""Results on disk: one directory per run, every file written atomically and schema-versioned.

Layout of ``<results>/<run_id>/``::

    run.json          run metadata (schema_version, scenario, environment, variants, status, ...)
    samples.csv       the tidy sample table (columns: vbench.core.metrics.SAMPLE_COLUMNS)
    parts/*.csv       samples of single repetitions, written as they finish; merged into
                      samples.csv when the run ends, so an interrupted run loses nothing
    raw/<variant>/... raw tool outputs (fio JSON, iperf3 JSON, probe text)

Load a run back into pandas with one call::

    from vbench.results.rundir import load_samples
    df = load_samples("results/20261126-101500-disk")      # or several paths, or a results root

Nothing here imports pandas at module import time (``vbench --help`` must stay fast).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from vbench.core.files import atomic_write, read_bytes
from vbench.results import record
from vbench.core import untrusted
from vbench.core.errors import StoreError
from vbench.core.metrics import SAMPLE_COLUMNS
from vbench.results.record import SCHEMA_VERSION, RunRecord

RUN_FILE = "run.json"
SAMPLES_FILE = "samples.csv"
MAX_JSON_BYTES = 64 << 20
MAX_CSV_BYTES = 512 << 20
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """Text from a stored run made safe for a terminal: control characters (ANSI escapes, BiDi
    overrides) shown as ``\\xNN`` instead of being interpreted."""
    text = str(text)
    if not _UNPRINTABLE.search(text):
        return text
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                            else f"\\u{ord(m.group()):04x}", text)


def safe_name(name: str) -> str:
    """A file name for ``name``: itself when it is plain (letters, digits, ``_.+-``), else the
    plain characters plus a hash of the original, so that two names never share a file and none
    leaves its directory."""
    if _FILE_NAME.match(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return (re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).lstrip(".")[:64] or "_") + "~" + digest


def unit_key(variant: str, workload: str, repetition: int) -> str:
    """The file key of one unit of work. Names cannot contain '+', so no two units share a key
    (``a__x``+``w`` and ``a``+``x__w`` used to both be ``a__x__w``)."""
    for what, name in (("variant", variant), ("workload", workload)):
        if not isinstance(name, str) or not _NAME.match(name):
            raise StoreError(f"{what} name {name!r} cannot be stored (letters, digits, '_', '.', '-')")
    if isinstance(repetition, bool) or not isinstance(repetition, int) or repetition < 0:
        raise StoreError(f"repetition {repetition!r} cannot be stored")
    return f"{variant}+{workload}+r{repetition}"


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps({"schema_version": SCHEMA_VERSION, **obj}, indent=2,
                                  sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> dict:
    """Read a vbench JSON file, checking that it is one and of a schema version we understand."""
    try:
        text = read_bytes(Path(path), MAX_JSON_BYTES).decode("utf-8")
    except FileNotFoundError as exc:
        raise StoreError(f"{path} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path} is not readable JSON ({str(exc)[:80]}); it is corrupt or not "
                         f"vbench's") from None
    try:
        obj = untrusted.load_json(text)
    except untrusted.UntrustedInputError as exc:
        raise StoreError(f"{path} {exc}; it is corrupt or not vbench's") from None
    if not isinstance(obj, dict) or "schema_version" not in obj:
        raise StoreError(f"{path} is not a vbench file (no schema_version)")
    record.check_version(obj["schema_version"], str(path))  # older: readable; newer: refused
    return obj


def rows_to_csv(rows: Iterable[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SAMPLE_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buf.getvalue()


@dataclass
class RunDir:
    """A run directory being written by the runner."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, root: Path, run_id: str) -> "RunDir":
        path = Path(root) / run_id
        try:
            path.mkdir(parents=True, exist_ok=False)
            (path / "parts").mkdir()
            (path / "raw").mkdir()
        except FileExistsError as exc:
            raise StoreError(f"results directory {path} already exists; pick another run id") from exc
        except OSError as exc:
            raise StoreError(f"cannot create results directory {path}: {exc.strerror or exc}") from exc
        return cls(path.resolve())

    @classmethod
    def open(cls, path: Path) -> "RunDir":
        path = Path(path).resolve()  # `results/X/raw/..` is results/X, named X
        read_json(path / RUN_FILE)  # validates it is a run of ours (and not a symlink)
        return cls(path)

    def write_record(self, rec: RunRecord) -> None:
        """Write run.json from the typed record (validated; the only way the runner writes it)."""
        data = record.validate_for_write(rec)
        data.pop("schema_version")
        write_json(self.path / RUN_FILE, data)

    def read_record(self) -> RunRecord:
        return load_record(self.path)

    def write_meta(self, meta: dict) -> None:
        """Write run.json from a dict in the version-1 layout, unvalidated: for test fixtures and
        benchmarks that need odd or partial records. It is read back through the upgrade path."""
        atomic_write(self.path / RUN_FILE, json.dumps({"schema_version": 1, **meta}, indent=2,
                                                      default=str) + "\n")

    def read_meta(self) -> dict:
        return load_meta(self.path)

    def _subdir(self, *names: str) -> Path:
        """``path/names...``: each a real directory inside the run (created if missing), never a
        symlink, so that writes below it cannot land elsewhere."""
        d = self.path
        for name in names:
            d = d / safe_name(name)
            try:
                st = os.lstat(d)
            except FileNotFoundError:
                try:
                    os.mkdir(d, 0o755)
                except OSError as exc:
                    raise StoreError(f"cannot create {d}: {exc.strerror or exc}") from None
                continue
            if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
                raise StoreError(f"{d} is a symbolic link or not a directory; vbench does not "
                                 f"follow links in run directories")
        if not d.resolve().is_relative_to(self.path.resolve()):
            raise StoreError(f"{d} leads outside the run directory {self.path}")
        return d

    def _file(self, directory: Path, name: str) -> Path:
        f = directory / name  # name comes from safe_name
        if f.is_symlink():
            raise StoreError(f"{f} is a symbolic link; vbench does not follow links in run "
                             f"directories")
        return f

    def part_path(self, key: str) -> Path:
        return self._file(self._subdir("parts"), safe_name(key) + ".csv")

    def add_samples(self, key: str, rows: list[dict]) -> None:
        """Store the samples of one finished unit of work (variant x workload x repetition)."""
        atomic_write(self.part_path(key), rows_to_csv(rows))

    def has_part(self, key: str) -> bool:
        return self.part_path(key).exists()

    def raw_path(self, variant: str, name: str) -> Path:
        return self._file(self._subdir("raw", variant), safe_name(name))

    def write_raw(self, variant: str, name: str, text: str) -> Path:
        path = self.raw_path(variant, name)
        atomic_write(path, text)
        return path

    def consolidate(self) -> int:
        """Merge all parts into samples.csv (atomically); returns the number of rows."""
        rows = list(iter_sample_rows(self.path))
        atomic_write(self.path / SAMPLES_FILE, rows_to_csv(rows))
        return len(rows)


def _read_csv_rows(path: Path) -> list[dict]:
    try:
        with io.StringIO(read_bytes(path, MAX_CSV_BYTES).decode("utf-8"), newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or "metric" not in reader.fieldnames:
                raise StoreError(f"{path} is not a vbench sample table")
            return list(reader)
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise StoreError(f"{path} is unreadable ({type(exc).__name__}); it is corrupt or not "
                         f"vbench's") from None


def _part_files(run_path: Path) -> list[Path]:
    parts = run_path / "parts"
    if parts.is_symlink():
        raise StoreError(f"{parts} is a symbolic link; vbench does not follow links in run "
                         f"directories")
    return sorted(parts.glob("*.csv")) if parts.is_dir() else []


def iter_sample_rows(run_path: Path) -> Iterable[dict]:
    """All sample rows of a run: samples.csv plus any parts not yet merged (deduplicated)."""
    run_path = Path(run_path)
    seen: set[tuple] = set()
    files = []
    if (run_path / SAMPLES_FILE).exists():
        files.append(run_path / SAMPLES_FILE)
    files.extend(_part_files(run_path))
    for f in files:
        for row in _read_csv_rows(f):
            key = tuple(row.get(c) for c in SAMPLE_COLUMNS if c != "value")
            if key in seen:
                continue
            seen.add(key)
            yield {k: printable(v) if isinstance(v, str) else v for k, v in row.items()}


def find_runs(root: Path, scenario: str | None = None, warn=None) -> list[Path]:
    """Run directories under ``root`` (oldest first), optionally of one scenario.

    Corrupt or foreign directories are skipped and reported through ``warn`` (a callable taking one
    line), never raised: one bad file must not stop a report.
    """
    root = Path(root)
    out: list[Path] = []
    if not root.is_dir():
        return out
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if not (d / RUN_FILE).exists():
            continue
        try:
            meta = read_json(d / RUN_FILE)
        except StoreError as exc:
            if warn:
                warn(f"skipping {d}: {exc}")
            continue
        if scenario is None or meta.get("scenario", {}).get("name") == scenario:
            out.append(d)
    out.sort(key=lambda p: (read_json(p / RUN_FILE).get("started", ""), p.name))
    return out


def load_samples(*paths: str | os.PathLike, warn=None):
    """Load the samples of one or more runs into one tidy pandas DataFrame.

    Each path is a run directory or a results root (all runs under it). Corrupt or foreign files
    are skipped and reported through ``warn``. Columns: ``vbench.core.metrics.SAMPLE_COLUMNS``.
    """
    import pandas as pd

    run_dirs: list[Path] = []
    for p in paths:
        p = Path(p)
        if (p / RUN_FILE).exists():
            run_dirs.append(p)
        elif p.is_dir():
            run_dirs.extend(find_runs(p, warn=warn))
        else:
            raise StoreError(f"{p} is not a vbench run directory or results root")
    frames = []
    for d in run_dirs:
        try:
            read_json(d / RUN_FILE)
            frame = _read_run_frame(d)
        except StoreError as exc:
            if warn is None:
                raise
            warn(f"skipping {d}: {exc}")
            continue
        if len(frame):
            frames.append(frame)
    if not frames:
        return _typed(pd.DataFrame(columns=list(SAMPLE_COLUMNS)))
    return _typed(pd.concat(frames, ignore_index=True))


def _read_run_frame(run_path: Path):
    """samples.csv plus unmerged parts of one run, deduplicated like iter_sample_rows."""
    import pandas as pd

    files = ([run_path / SAMPLES_FILE] if (run_path / SAMPLES_FILE).exists() else [])
    files += _part_files(run_path)
    frames = [frame.reindex(columns=list(SAMPLE_COLUMNS), fill_value="")
              for frame in _parse_csvs(pd, [(f, read_bytes(f, MAX_CSV_BYTES)) for f in files])]
    if not frames:
        return pd.DataFrame(columns=list(SAMPLE_COLUMNS))
    df = pd.concat(frames, ignore_index=True)
    key = [c for c in SAMPLE_COLUMNS if c != "value"]
    return df.drop_duplicates(subset=key, keep="first")


def _parse_one(pd, path: Path, data: bytes):
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, ValueError, OSError) as exc:
        raise StoreError(f"{path} is unreadable ({type(exc).__name__}); it is corrupt or not "
                         f"vbench's") from None
    if "metric" not in frame.columns or "value" not in frame.columns:
        raise StoreError(f"{path} is not a vbench sample table")
    return frame


def _parse_csvs(pd, blobs: list[tuple[Path, bytes]]) -> list:
    """Sample tables from ``(path, bytes)``, in order. Consecutive files with the same header
    line and no quote character (a run's parts, one per repetition: a thousand in a big run) are
    parsed as one table: without quotes a line is a row, so that is the same rows in the same
    order, and ten times faster than a parser per file. A batch that does not parse is parsed
    file by file, so that the error names the bad file."""
    frames = []
    i = 0
    while i < len(blobs):
        header = blobs[i][1].split(b"\n", 1)[0] + b"\n"
        j = i + 1
        if b'"' not in blobs[i][1]:
            while j < len(blobs) and blobs[j][1].startswith(header) and b'"' not in blobs[j][1]:
                j += 1
        batch = blobs[i:j]
        if len(batch) == 1:
            frames.append(_parse_one(pd, *batch[0]))
            i = j
            continue
        joined = b"".join((data if k == 0 else data[len(header):])
                          + (b"" if data.endswith(b"\n") else b"\n")
                          for k, (_p, data) in enumerate(batch))
        try:
            frames.append(_parse_one(pd, batch[0][0], joined))
        except StoreError:
            frames.extend(_parse_one(pd, p, d) for p, d in batch)
        i = j
    return frames


def _typed(df):
    import pandas as pd

    # Per distinct value, not per row: a text column of 100k samples has a dozen distinct values.
    for col in _TEXT_COLUMNS:
        if col in df.columns:
            distinct = pd.unique(df[col])
            if any(_UNPRINTABLE.search(str(v)) for v in distinct):
                df[col] = df[col].map({v: printable(v) for v in distinct})

    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    df["repetition"] = pd.to_numeric(df["repetition"], errors="coerce").astype("Int64")
    df["paravirtual"] = df["paravirtual"].map(
        {v: v if isinstance(v, bool) else str(v).strip().lower() == "true"
         for v in pd.unique(df["paravirtual"])}).astype(bool)
    return df.dropna(subset=["value"]).reset_index(drop=True)


def load_record(run_path: str | os.PathLike) -> RunRecord:
    """The typed record of a run directory, upgraded from any older schema version."""
    path = Path(run_path) / RUN_FILE
    return record.from_dict(read_json(path), str(path))


_TEXT_COLUMNS = ("run_id", "scenario", "variant", "device", "model", "workload", "metric", "unit",
                 "accelerator", "host")
_NAME_FIELDS = frozenset({"run_id", "name", "variant", "workload", "status", "device", "model",
                          "host", "accelerator", "started", "finished", "error_type"})


def _printable_names(obj: Any) -> Any:
    """Keys and name-like fields of a stored run, escaped for terminals (multi-line texts such as
    the scenario text and domain XML are left as they are: they are never printed raw)."""
    if isinstance(obj, dict):
        return {printable(k): (printable(v) if k in _NAME_FIELDS and isinstance(v, str)
                               else _printable_names(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_printable_names(v) for v in obj]
    return obj


def is_run_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a run: its run file is a regular file (never through a link)."""
    p = Path(path) / RUN_FILE
    return p.is_file() and not p.is_symlink()


def load_meta(run_path: str | os.PathLike) -> dict:
    """The run record as a plain dict in the current schema; new code should use
    :func:`load_record`. Permissive: a record whose fields do not validate is still returned (as
    its upgraded dict), so tolerant readers such as the report show what they can."""
    path = Path(run_path) / RUN_FILE
    obj = read_json(path)
    try:
        meta = record.from_dict(obj, str(path)).to_dict(only_set=True)
    except StoreError:
        meta = record.upgrade(obj, str(path))
    return _printable_names(meta)  # names from a stored run are re-checked for terminals
