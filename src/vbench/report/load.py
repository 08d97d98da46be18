"""Reading stored runs for a report: the typed run record (:mod:`vbench.results.record`) and the samples.

Every fact a page shows about a run (environment, variants, the stored driver verification,
failures) comes from the run record as :func:`vbench.results.rundir.load_record` reads it, so the pages
never re-decide what the run recorded. The driver verdict in particular is the ``ok`` that
verification stored; a report never compares expected and found names itself (it once did, with
an exact comparison, and called ``virtio_rng.0`` a mismatch for ``virtio_rng``).

A record that does not validate as a whole is still shown: every top-level field that validates
on its own is kept, the others are named in the page's notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from pydantic import ValidationError

from vbench.core.errors import StoreError, UserError
from vbench.results.record import DriverCheck, Failure, HostProof, RunRecord, Variant
from vbench.results.rundir import load_meta, load_record, load_samples


@dataclass(frozen=True)
class Driver:
    """One stored driver check of one variant: ``ok`` is the verdict verification stored."""

    variant: str
    device: str
    under_test: bool
    check: DriverCheck


@dataclass(frozen=True)
class Proof:
    """One stored host-side proof of one variant (e.g. ``vhost``), as verification decided it."""

    variant: str
    name: str
    proof: HostProof


@dataclass
class RunInfo:
    path: Path
    label: str
    record: RunRecord
    problems: list[str] = field(default_factory=list)
    sample_accelerators: list[str] = field(default_factory=list)

    @property
    def accelerator(self) -> str:
        """The accelerator the run recorded (or, for runs without it, the samples' label)."""
        acc = self.record.accelerator
        if not acc and len(self.sample_accelerators) == 1:
            acc = self.sample_accelerators[0]
        return acc

    @property
    def variants(self) -> dict[str, Variant]:
        return self.record.variants

    @property
    def failures(self) -> list[Failure]:
        return self.record.failures

    def drivers(self) -> list[Driver]:
        return [Driver(variant=name, device=dev, under_test=dev == v.device, check=check)
                for name, v in self.variants.items() for dev, check in v.drivers.items()]

    def proofs(self) -> list[Proof]:
        return [Proof(variant=name, name=key, proof=p)
                for name, v in self.variants.items() for key, p in v.host_proofs.items()]


def lenient(obj: dict) -> tuple[RunRecord, list[str]]:
    """The record from the top-level fields of ``obj`` that validate, and the names of the rest."""
    kept, dropped = {}, []
    for key, value in obj.items():
        try:
            RunRecord.model_validate({key: value})
            kept[key] = value
        except ValidationError:
            dropped.append(str(key))
    return RunRecord.model_validate(kept), dropped


def read_record(path: Path) -> tuple[RunRecord, list[str]]:
    """The run's typed record and any problems reading it (raises StoreError if unreadable)."""
    try:
        return load_record(path), []
    except StoreError:
        rec, dropped = lenient(load_meta(path))
        return rec, [f"run.json fields that do not validate and are not shown: {', '.join(dropped)}"]


def load_runs(run_paths: Iterable[Path], warnings: list[str], labels: Sequence[str] | None = None):
    """Run records and samples; each run's ``run_id`` column is set to a unique label (the run
    directory's name, or ``labels[i]``, e.g. a fleet's host names)."""
    import pandas as pd

    runs: list[RunInfo] = []
    frames = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(run_paths):
        path = Path(raw)
        if not path.is_dir():
            raise UserError(f"{path} is not a run directory; pass paths like results/<run id>")
        try:
            rec, problems = read_record(path)
        except StoreError as exc:
            raise StoreError(f"cannot report on {path}: {exc}") from exc  # exit 10, as compare
        label = labels[i] if labels else path.name
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            label = f"{label} ({seen[label]})"
        info = RunInfo(path=path, label=label, record=rec, problems=problems)
        df = load_samples(path, warn=warnings.append)
        if len(df):
            df["run_id"] = label
            info.sample_accelerators = sorted({str(a) for a in df["accelerator"].dropna().unique()
                                               if str(a)}) if "accelerator" in df else []
            frames.append(df)
        else:
            info.problems.append("no samples stored")
        runs.append(info)
    if not runs:
        raise UserError("no runs given; pass one or more run directories (results/<run id>)")
    df = pd.concat(frames, ignore_index=True) if frames else load_samples(runs[0].path)
    return runs, df
