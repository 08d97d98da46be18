"""Metadata workload on a shared folder: create, stat and delete many small files.

fio's own file engines do the work (``filecreate``, ``filestat``, ``filedelete``: one operation per
file, timed by fio like any I/O), one job per phase on the same file names, so each phase's rate
(files/s) and per-file latency come from fio's JSON like any other fio job; the guest needs
nothing but fio. The phases run in one command, each output after a ``### <phase>`` line.
"""

from __future__ import annotations

import re
import shlex

from typing import Any

from pydantic import Field

from vbench.core.errors import ProbeError, RemoteCommandError
from vbench.core import procs
from vbench.devices.base import Strict
from vbench.workloads.base import RunningUnit, WorkloadKind
from vbench.core.metrics import Sample
from vbench.workloads.fio import parse_fio_json

PHASES = ("create", "stat", "delete")
_MARK = re.compile(r"^### (create|stat|delete)\s*$", re.M)
_RENAME = {"iops": "rate", "clat_p50": "lat_p50", "clat_p99": "lat_p99"}


def fsmeta_command(directory: str, files: int, filesize: str, timeout_s: int) -> str:
    """One shell command: a fresh directory, then the three fio phases, each after its marker."""
    if not re.fullmatch(r"/[A-Za-z0-9_./-]+", directory) or not re.fullmatch(r"[0-9]+[kKmM]?",
                                                                              filesize):
        raise ProbeError(f"fsmeta: invalid directory {directory!r} or file size {filesize!r}")
    d = shlex.quote(directory)
    lines = [f"rm -rf {d} && mkdir -p {d} || exit 1"]
    for phase in PHASES:
        argv = [*procs.killed_after(timeout_s), "fio", "--output-format=json",
                "--name=vbench-meta", f"--directory={directory}", f"--ioengine=file{phase}",
                f"--nrfiles={files}", f"--filesize={filesize}", "--openfiles=1"]
        lines.append(f"echo '### {phase}'; {shlex.join(argv)} || exit $?")
    lines.append(f"rm -rf {d}")
    return "\n".join(lines)


def parse_fsmeta(text: str, workload: str) -> list[Sample]:
    """``<phase>_rate`` (files/s), ``<phase>_lat_p50`` and ``<phase>_lat_p99`` (us) per phase."""
    parts = _MARK.split(text)
    # split() gives [before, phase1, body1, phase2, body2, ...]
    found = dict(zip(parts[1::2], parts[2::2]))
    missing = [p for p in PHASES if p not in found]
    if missing:
        raise ProbeError(f"fsmeta: no output for phase(s) {', '.join(missing)}: "
                         f"{text.strip()[-200:]!r}")
    out = []
    for phase in PHASES:
        for s in parse_fio_json(found[phase], workload):
            if s.metric in _RENAME:
                out.append(Sample(workload, f"{phase}_{_RENAME[s.metric]}", s.value,
                                  "files/s" if s.metric == "iops" else s.unit))
    return out


# ---- scenario spec and declaration ----------------------------------------------------------

class FsMetaSpec(Strict):
    """Create, stat and delete ``files`` small files in the shared folder (device fs)."""

    files: int = Field(500, ge=10, le=100000)
    filesize: str = Field("4k", pattern=r"^[0-9]+[kK]?$")
    timeout_s: int = Field(300, ge=10, le=3600)


class FsMeta(WorkloadKind):
    tool = "fsmeta"
    spec = FsMetaSpec
    metrics = tuple(f"{phase}_{m}" for phase in PHASES for m in ("rate", "lat_p50", "lat_p99"))
    headline = "create_rate"
    guest_tools = ("fio",)

    def estimate_s(self, spec: Any, scn: Any) -> float:
        # 500 files on virtio-fs under TCG: about 3 s a phase (tests/data/fsmeta-500-virtiofs-tcg.txt)
        return 5.0 + spec.files * len(PHASES) * 0.006

    def share_bytes(self, w: Any, scn: Any) -> int:
        """Its files at once, and 1 KiB each of the file system's own."""
        spec = w.fsmeta
        text = spec.filesize.lower()
        size = int(text.rstrip("k")) * (1024 if "k" in text else 1)
        return spec.files * (size + 1024)

    def run(self, scn: Any, w: Any, unit: RunningUnit) -> tuple[list[Sample], str]:
        """The three phases in the guest's mounted shared folder under test."""
        spec = w.fsmeta
        g = unit.guest("fsmeta")
        where = unit.facts.get("fs_dir")
        if not where:
            raise ProbeError(f"fsmeta workloads need a mounted shared folder (device fs) in "
                             f"{g.name}")
        cmd = fsmeta_command(f"{where}/vbench-meta", spec.files, spec.filesize, spec.timeout_s)
        res = g.run(cmd, timeout=3 * spec.timeout_s + 30)
        if not res.ok:
            g.check_alive()
            raise RemoteCommandError(res)
        return parse_fsmeta(res.stdout, w.name), res.stdout


WORKLOAD = FsMeta()
