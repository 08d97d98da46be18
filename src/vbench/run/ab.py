"""A/B in one session: the same scenario with two *sides*, interleaved in one run, compared side
against side (the method Firecracker gates on: host drift hits both sides alike and cancels).

A side differs from the other by something other than the device under test:

* ``emulator=/path/to/qemu-system-x86_64`` -- the QEMU binary (``<emulator>`` in the domain XML);
* ``kernel=/path/to/vmlinuz`` (and ``initrd=``) -- the guest kernel (``<kernel>``/``<initrd>``);
* ``uri=qemu:///system`` -- another libvirt (the lab's own when not given);
* ``rate_iops=N`` -- caps every fio job of that side at N IOPS: a deliberately slowed side, to
  check that the gate catches a slower side (the integration test uses it).

Every variant is expanded into one variant per side (``virtio-blk.a``, ``virtio-blk.b``); the
interleaved plan rotates over all of them, so the two sides of a variant are measured in turn.
The verdict table is :func:`vbench.stats.compare.compare` of side A (base) against side B (new) per
variant, exactly as ``vbench compare`` of two runs would give it.

Side values are validated before anything boots (an emulator must be an existing executable file,
a kernel an existing file, a URI a plain libvirt URI); anything else is one line, exit 2. No value
ever reaches a shell: they go into the domain XML (escaped) or to libvirt's API.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vbench.core.errors import UserError
from vbench.host.uris import check_uri

SIDES = ("a", "b")
KEYS = ("emulator", "kernel", "initrd", "uri", "rate_iops")


@dataclass(frozen=True)
class Side:
    name: str
    emulator: str | None = None
    kernel: str | None = None
    initrd: str | None = None
    uri: str | None = None
    rate_iops: int | None = None
    text: str = field(default="", compare=False)

    def describe(self) -> str:
        return ", ".join(f"{k}={getattr(self, k)}" for k in KEYS if getattr(self, k)) or "as is"

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in KEYS if getattr(self, k) is not None}


def _file(key: str, value: str, side: str, executable: bool) -> str:
    p = Path(value)
    if not p.is_absolute():
        raise UserError(f"--{side} {key}={value}: give an absolute path")
    if not p.is_file():
        raise UserError(f"--{side} {key}={value}: no such file")
    if executable and not os.access(p, os.X_OK):
        raise UserError(f"--{side} {key}={value}: not an executable file")
    if not executable and not os.access(p, os.R_OK):
        raise UserError(f"--{side} {key}={value}: not readable")
    return str(p)


def parse_side(items: list[str] | str, name: str) -> Side:
    """``["emulator=/usr/bin/qemu-system-x86_64", "kernel=/boot/vmlinuz"]`` (or one string with
    commas) -> a validated :class:`Side`; one clear line (UserError) for anything else."""
    if isinstance(items, str):
        items = [items]
    parts = [p for item in items for p in item.split(",") if p.strip()]
    values: dict[str, Any] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in KEYS or not value:
            raise UserError(f"--{name} {part!r}: expected KEY=VALUE with KEY one of "
                            f"{', '.join(KEYS)} (e.g. emulator=/usr/bin/qemu-system-x86_64)")
        if key in values:
            raise UserError(f"--{name}: {key} is given twice")
        if key == "emulator":
            values[key] = _file(key, value, name, executable=True)
        elif key in ("kernel", "initrd"):
            values[key] = _file(key, value, name, executable=False)
        elif key == "uri":
            values[key] = check_uri(value, f"--{name} uri=")  # the one allow-list
        else:
            if not value.isdigit() or not 1 <= int(value) <= 100_000_000:
                raise UserError(f"--{name} rate_iops={value}: expected a whole number of IOPS")
            values[key] = int(value)
    return Side(name, text=",".join(parts), **values)


def check_sides(a: Side, b: Side) -> None:
    if a.to_dict() == b.to_dict():
        raise UserError("--a and --b are the same: the two sides must differ (an A/A check uses "
                        "two copies of one binary, e.g. emulator=/usr/bin/qemu-system-x86_64 "
                        "against emulator=/tmp/qemu-copy)")


# ---- expanding a scenario into sides ---------------------------------------------------------

def side_variant(variant: str, side: str) -> str:
    return f"{variant}.{side}"


def split_variant(name: str) -> tuple[str, str | None]:
    """``"virtio-blk.b"`` -> ("virtio-blk", "b"); a name without a side suffix -> (name, None)."""
    base, dot, side = name.rpartition(".")
    return (base, side) if dot and side in SIDES else (name, None)


def expand(scn, sides: tuple[Side, Side] | None = None):
    """The scenario with every variant once per side, interleaved; no host baseline (the host
    does not change between sides). The gate keeps its metrics and workloads; its variants, when
    named, name both sides."""
    from vbench.scenario.schema import Scenario

    data = scn.model_dump(mode="python", exclude_none=True)
    variants = []
    for v in data["variants"]:
        for s in SIDES:
            name = side_variant(v["name"], s)
            if len(name) > 48:
                raise UserError(f"variant name {v['name']!r} is too long for an A/B run "
                                f"(at most 46 characters)")
            variants.append({**v, "name": name})
    data["variants"] = variants
    data["host_baseline"] = False
    gate = data.get("gate")
    if gate and gate.get("variants"):
        gate["variants"] = [side_variant(v, s) for v in gate["variants"] for s in SIDES]
    data["name"] = (scn.name + "-ab")[:48]
    return Scenario.model_validate(data)


def side_frames(df):
    """A run's samples of an A/B run as (side A, side B) frames with the side suffix removed and
    the run id marked by side, ready for :func:`vbench.stats.compare.compare`."""
    import pandas as pd

    parts = df["variant"].map(split_variant)
    base = parts.map(lambda p: p[0])
    side = parts.map(lambda p: p[1])
    out = []
    for s in SIDES:
        d = df[side == s].copy()
        d["variant"] = base[side == s]
        d["run_id"] = d["run_id"].astype(str) + f":{s.upper()}"
        out.append(d.reset_index(drop=True))
    if any(len(d) == 0 for d in out):
        raise UserError("this run has no samples of both sides (is it an A/B run?)")
    return out[0], out[1] if isinstance(out[1], pd.DataFrame) else out[1]


def pair_groups(scn):
    """The adaptive-repetition groups of an A/B run: (side A, side B) samples per gated row."""
    import numpy as np

    from vbench.run.adaptive import single_groups

    def groups(rows: list[dict]) -> list:
        single = single_groups(scn, rows)
        pairs = []
        for (w, m, v), xs in single.items():
            base, s = split_variant(v)
            if s != "a":
                continue
            ys = single.get((w, m, side_variant(base, "b")))
            pairs.append((np.asarray(xs), np.asarray(ys if ys is not None else [])))
        return pairs

    return groups


def with_rate_cap(execute, sides: dict[str, Side]):
    """The executor seam for a side with ``rate_iops``: its fio jobs get ``rate_iops`` added."""

    def run(scn, w, target):
        _base, s = split_variant(target.variant)
        side = sides.get(s or "")
        if side is not None and side.rate_iops and w.fio is not None:
            opts = {**w.fio.options, "rate_iops": side.rate_iops}
            w = w.model_copy(update={"fio": w.fio.model_copy(update={"options": opts})})
        return execute(scn, w, target)

    return run


def guest_overrides(side: Side) -> dict[str, Any]:
    """What a side changes in its guests (virt.Guest fields)."""
    out: dict[str, Any] = {}
    if side.emulator:
        out["emulator"] = side.emulator
    if side.kernel:
        out["kernel"] = Path(side.kernel)
    if side.initrd:
        out["initrd"] = Path(side.initrd)
    return out


def session_parts(scn, sides: tuple[Side, Side], default_lab, say):
    """(guest overrides per variant, executor, adaptive groups) for an A/B run of ``scn``."""
    from vbench.host import hosts, lab as labmod
    from vbench.run.executors import execute

    labs = {}
    for side in sides:
        if side.uri:
            hosts.kind_for(side.uri).refuse_unsupported(scn, ab=True)
            labs[side.name] = labmod.up(connect=side.uri, progress=say)
    overrides = {}
    for v in scn.variants:
        _base, s = split_variant(v.name)
        side = next(x for x in sides if x.name == s)
        ov = guest_overrides(side)
        if side.name in labs:
            ov["lab"] = labs[side.name]
        overrides[v.name] = ov
    return overrides, with_rate_cap(execute, {s.name: s for s in sides}), pair_groups(scn)
