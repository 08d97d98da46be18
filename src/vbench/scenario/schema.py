"""Typed, validated scenarios: which variants (device profiles) run which workloads, how often.

A scenario names the device under test (``device: disk|nic|rng|balloon``: the kinds registered in
``vbench.devices``, from which the device types here are built); every variant sets only that
device, everything else comes from ``defaults`` and is identical across variants. Bad input is
reported as one line with the field path, e.g. ``variants[1].disk.bus: must be one of virtio, scsi,
sata, ide, nvme (got 'usb')``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, create_model, field_validator, model_validator

from vbench import devices
from vbench.devices import Device, Strict
from vbench.devices.balloon import (BalloonSpec)  # noqa: F401  (the device specs, as before, from here)
from vbench.devices.disk import DiskSpec  # noqa: F401
from vbench.devices.nic import NicSpec  # noqa: F401
from vbench.devices.rng import RngSpec  # noqa: F401
from vbench.core.errors import ScenarioError
from vbench.scenario.fielderrors import field_path, error_text, format_validation_error
from vbench.workloads import fioopts
from vbench.core.untrusted import UntrustedInputError, load_yaml, read_text
from vbench.workloads.fio import RESERVED_OPTIONS as RESERVED_FIO_OPTIONS

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$"
Name = Annotated[str, Field(pattern=NAME_RE)]

DEVICES = devices.freeze()
_Strict = Strict


# ---- device profiles: built from the device registry (vbench.devices) --------------------------

class _Devices(_Strict):
    """Base of the models whose fields are the registered device kinds (built below)."""

    if TYPE_CHECKING:  # type checkers see the fields as attributes of any name
        def __getattr__(self, kind: str) -> Any: ...


class _ProfileBase(_Devices):
    """A complete set of devices for one guest. An optional device (disk, nic) None means: no
    such test device; the others always exist and default to their spec's defaults."""

    def present(self) -> list[tuple[Device, Any]]:
        """(device, spec) of every device this guest has, in registry order; a kind another
        present device replaces (``Device.replaces``: mem's own memballoon) is left out."""
        have = [(d, getattr(self, k)) for k, d in DEVICES.items() if getattr(self, k) is not None]
        gone = {d.replaces for d, _ in have if d.replaces}
        return [(d, s) for d, s in have if d.kind not in gone]

    def model_of(self, kind: str) -> str:
        dev = getattr(self, kind)
        return "absent" if dev is None else getattr(dev, DEVICES[kind].model_field)

    def is_paravirtual(self, kind: str) -> bool:
        dev = getattr(self, kind)
        return dev is not None and DEVICES[kind].is_paravirtual(dev)


if TYPE_CHECKING:
    DeviceKind = str
    DeviceProfile = _ProfileBase
    DeviceOverrides = _Devices
else:
    DeviceKind = Literal[tuple(DEVICES)]  # "disk", "nic", "rng", "balloon"
    DeviceProfile = create_model(
        "DeviceProfile", __base__=_ProfileBase, __module__=__name__, __doc__=_ProfileBase.__doc__,
        **{k: (d.spec | None, None) if d.optional else (d.spec, d.spec())
           for k, d in DEVICES.items()})
    DeviceOverrides = create_model(
        "DeviceOverrides", __base__=_Devices, __module__=__name__,
        __doc__="What a variant (or ``defaults``) sets; unset fields come from the defaults.",
        **{k: (d.spec | None, None) for k, d in DEVICES.items()})

PRESETS: dict[str, dict] = {}
for _kind, _dev in DEVICES.items():
    for _preset, _model in _dev.presets.items():
        PRESETS.setdefault(_preset, {})[_kind] = {_dev.model_field: _model}
_SHORT_KEYS = {k: d.model_field for k, d in DEVICES.items()}


def parse_profile(text: str) -> DeviceProfile:
    """A profile from the command line: a preset name or ``disk=sata,nic=e1000,rng=none,...``."""
    if text in PRESETS:
        return _validate(DeviceProfile, PRESETS[text], where=f"profile {text!r}")
    spec: dict[str, Any] = {}
    example = ",".join(f"{k}={v[_SHORT_KEYS[k]]}" for k, v in PRESETS.get("emulated", {}).items())
    usage = f"profile {text!r}: expected a preset ({', '.join(PRESETS)}) or items like {example}"
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep or key not in _SHORT_KEYS:
            raise ScenarioError(usage)
        if key in spec:
            raise ScenarioError(f"profile {text!r}: {key} is given twice")
        spec[key] = {_SHORT_KEYS[key]: value}
    if not spec:
        raise ScenarioError(usage)
    return _validate(DeviceProfile, spec, where=f"profile {text!r}")


# ---- guests ----------------------------------------------------------------------------------

class GuestSpec(_Strict):
    image: str = Field("default", pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$",
                       description="'default' (built by vbench) or a recipe name in guests/")
    vcpus: int = Field(2, ge=1, le=64)
    memory_mib: int = Field(1024, ge=256, le=262144)
    machine: str = Field("pc", pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    boot_timeout_s: int = Field(240, ge=10, le=3600)
    image_file: str | None = Field(None, min_length=1, max_length=4096,
                                   description="a qcow2/raw image of your own that boots with its "
                                               "own bootloader (see vbench.guest.userimage for the rules)")
    firmware: Literal["bios", "uefi"] = Field("bios", description="how image_file boots")

    @model_validator(mode="after")
    def _own_image(self) -> "GuestSpec":
        if self.image_file is not None:
            if self.image != "default":
                raise ValueError("give either image (a recipe) or image_file (your own image), "
                                 "not both")
            if any(c in self.image_file for c in "\0\n\r"):
                raise ValueError("image_file: not a file path")
        elif self.firmware != "bios":
            raise ValueError("firmware: uefi needs image_file (vbench's own image boots directly)")
        return self


# ---- workloads -------------------------------------------------------------------------------

def check_fio_options(v: dict) -> dict:
    """fio options a user may add: only the allow-list of :mod:`vbench.workloads.fioopts`."""
    if any(key in RESERVED_FIO_OPTIONS for key in v):
        key = next(key for key in v if key in RESERVED_FIO_OPTIONS)
        raise ValueError(f"fio option {key!r} is set by vbench and cannot be set here "
                         f"(use the workload's runtime/ramp_time fields)")
    return fioopts.check_options(v)


class FioSpec(_Strict):
    rw: Literal["read", "write", "randread", "randwrite", "rw", "randrw"]
    bs: str = Field("4k", pattern=r"^[0-9]+[kKmM]?$")
    iodepth: int = Field(1, ge=1, le=1024)
    numjobs: int = Field(1, ge=1, le=64)
    runtime: int | None = Field(None, ge=1, le=3600)
    ramp_time: int | None = Field(None, ge=0, le=600)
    options: dict[str, str | int | bool] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _option_names(cls, v: dict) -> dict:
        return check_fio_options(v)

    @model_validator(mode="after")
    def _bounded(self) -> "FioSpec":
        fioopts.check_options({"bs": self.bs})  # the pattern alone lets '99999999999m' through
        return self


Direction = Literal["h2g", "g2h"]


def _both_directions() -> list[Direction]:
    return ["h2g", "g2h"]


class Iperf3Spec(_Strict):
    protocol: Literal["tcp", "udp"] = "tcp"
    directions: list[Direction] = Field(default_factory=_both_directions, min_length=1)
    parallel: int = Field(1, ge=1, le=32)
    duration: int = Field(10, ge=1, le=600)
    omit: int = Field(2, ge=0, le=60)
    bitrate: str | None = Field(None, pattern=r"^[0-9]+[KMG]?$")
    length: int | None = Field(None, ge=16, le=65507)


class PingSpec(_Strict):
    directions: list[Direction] = Field(default_factory=_both_directions, min_length=1)
    count: int = Field(200, ge=5, le=100000)
    interval: float = Field(0.01, ge=0.002, le=1.0)
    size: int = Field(56, ge=16, le=1472)


class EntropySpec(_Strict):
    read_bytes: int = Field(1048576, ge=4096, le=64 * 1048576)
    timeout_s: int = Field(20, ge=1, le=600)


class BalloonWorkSpec(_Strict):
    target_mib: int = Field(512, ge=64)
    touch_mib: int = Field(600, ge=0, description="memory the guest fills and frees before inflating")
    timeout_s: int = Field(60, ge=1, le=600)


class FsMetaSpec(_Strict):
    """Create, stat and delete ``files`` small files in the shared folder (device fs)."""

    files: int = Field(500, ge=10, le=100000)
    filesize: str = Field("4k", pattern=r"^[0-9]+[kK]?$")
    timeout_s: int = Field(300, ge=10, le=3600)


class BytestreamSpec(_Strict):
    """Throughput both ways and round-trip time over the byte channel (device console)."""

    g2h_bytes: int = Field(1048576, ge=1024, le=1 << 30)
    h2g_bytes: int = Field(65536, ge=1024, le=1 << 30)
    pings: int = Field(100, ge=5, le=100000)
    timeout_s: int = Field(120, ge=5, le=3600)


class Workload(_Strict):
    name: Name
    fio: FioSpec | None = None
    iperf3: Iperf3Spec | None = None
    ping: PingSpec | None = None
    entropy: EntropySpec | None = None
    balloon: BalloonWorkSpec | None = None
    fsmeta: FsMetaSpec | None = None
    bytestream: BytestreamSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Workload":
        set_ = [k for k in TOOLS if getattr(self, k)]
        if len(set_) != 1:
            raise ValueError(f"a workload needs exactly one of {', '.join(TOOLS)} "
                             f"(got {', '.join(set_) or 'none'})")
        return self

    @property
    def tool(self) -> str:
        return next(k for k in TOOLS if getattr(self, k))


TOOLS = ("fio", "iperf3", "ping", "entropy", "balloon", "fsmeta", "bytestream")


class FioDefaults(_Strict):
    runtime: int = Field(5, ge=1, le=3600)
    ramp_time: int = Field(2, ge=0, le=600)
    options: dict[str, str | int | bool] = Field(
        default_factory=lambda: dict[str, str | int | bool](ioengine="libaio", direct=1))

    @field_validator("options")
    @classmethod
    def _option_names(cls, v: dict) -> dict:
        return check_fio_options(v)


# ---- variants and scenario -------------------------------------------------------------------

class Variant(DeviceOverrides):
    name: Name


class GateSpec(_Strict):
    """What `vbench compare` gates on (the rest is reported): ``metrics`` of every workload that
    has them, on ``variants`` (default: all but the host baseline) of ``workloads`` (default:
    all); ``threshold``: the relative change that matters for these metrics (default: compare's)."""

    metrics: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.]{1,48}$")]] = Field(
        default_factory=lambda: ["iops", "clat_p99"], min_length=1, max_length=32)
    variants: list[Name] | None = Field(None, min_length=1)
    workloads: list[Name] | None = Field(None, min_length=1)
    threshold: float | None = Field(None, gt=0, lt=1)


class Repetitions(_Strict):
    """Adaptive repetitions: ``min`` interleaved rounds, then more until every gated ratio's 95 %
    interval is within +-``target_ci`` (a fraction, or "5%"), at most ``max`` (vbench.run.adaptive)."""

    min: int = Field(3, ge=1, le=1000)
    max: int = Field(10, ge=1, le=1000)
    target_ci: float = Field(gt=0, lt=1)

    @field_validator("target_ci", mode="before")
    @classmethod
    def _percent(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().endswith("%"):
            try:
                return float(v.strip()[:-1]) / 100
            except ValueError:
                raise ValueError(f"expected a fraction like 0.05 or a percentage like 5% (got {v!r})")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> "Repetitions":
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class Scenario(_Strict):
    name: Name
    description: str = ""
    device: DeviceKind
    repetitions: Annotated[int, Field(ge=1, le=1000)] | Repetitions = Field(
        3, description="a number, or {min, max, target_ci} for adaptive repetitions")
    order: Literal["interleaved", "sequential"] = "interleaved"
    host_baseline: bool = Field(False, description="also run the fio jobs on the host (disk only)")
    fresh_boot: bool = Field(False, description="boot a fresh guest for every repetition (for "
                             "boot-time facts such as crng init); otherwise one boot per variant")
    connect: str | None = Field(None, description="libvirt URI; default: the vbench lab")
    guest: GuestSpec = GuestSpec()
    defaults: DeviceOverrides = DeviceOverrides()
    fio_defaults: FioDefaults = FioDefaults()
    variants: list[Variant] = Field(min_length=1)
    workloads: list[Workload] = Field(min_length=1)
    gate: GateSpec | None = Field(None, description="primary metrics gated by `vbench compare`")
    reference: Name | None = Field(None, description="the variant every other variant is set "
                                   "against in the headline ratios (default: each paravirtual "
                                   "variant against each emulated one)")

    @model_validator(mode="after")
    def _check(self) -> "Scenario":
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names) or "host" in names:
            raise ValueError("variant names must be unique and not 'host' (reserved for the baseline)")
        wnames = [w.name for w in self.workloads]
        if len(set(wnames)) != len(wnames):
            raise ValueError("workload names must be unique")
        for i, v in enumerate(self.variants):
            for kind in DEVICES:
                if kind != self.device and getattr(v, kind) is not None:
                    raise ValueError(f"variants[{i}].{kind}: only the device under test "
                                     f"({self.device}) may differ between variants; put it in defaults")
            if getattr(v, self.device) is None and getattr(self.defaults, self.device) is None:
                raise ValueError(f"variants[{i}]: sets no {self.device} (the device under test)")
        if self.reference is not None and self.reference not in names:
            raise ValueError(f"reference: no variant named {self.reference!r} "
                             f"(variants: {', '.join(names)})")
        if self.gate is not None:
            _check_gate(self.gate, names + ["host"] if self.host_baseline else names, wnames)
        for i, v in enumerate(self.variants):
            try:
                prof = self.profile(v)
            except ValueError as exc:
                raise ValueError(f"variants[{i}].{self.device}: {exc}") from None
            for dev, spec in prof.present():
                why = dev.guest_rule(spec, self.guest.machine)
                if why:
                    raise ValueError(f"variants[{i}].{dev.kind}: {why}")
        if self.host_baseline and not DEVICES[self.device].host_baseline:
            kinds = " or ".join(k for k, d in DEVICES.items() if d.host_baseline)
            raise ValueError(f"host_baseline: only {kinds} scenarios have a host baseline")
        return self

    @field_validator("repetitions", mode="before")
    @classmethod
    def _repetitions(cls, v: Any) -> Any:
        # Report a bad {min, max, target_ci} by its own field, not as "not a valid integer".
        if isinstance(v, dict):
            try:
                return Repetitions.model_validate(v)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = field_path(err.get("loc", ()))
                raise ValueError(f"{where + ': ' if where else ''}{error_text(err)}") from None
        return v

    @property
    def min_repetitions(self) -> int:
        r = self.repetitions
        return r if isinstance(r, int) else r.min

    @property
    def max_repetitions(self) -> int:
        r = self.repetitions
        return r if isinstance(r, int) else r.max

    @property
    def target_ci(self) -> float | None:
        r = self.repetitions
        return None if isinstance(r, int) else r.target_ci

    def profile(self, variant: Variant) -> DeviceProfile:
        """The full device profile of a variant: defaults, then the variant's own device."""
        merged = {k: getattr(self.defaults, k) for k in DEVICES}
        own = getattr(variant, self.device)
        if own is not None:
            merged[self.device] = _over_defaults(merged[self.device], own)
        for kind, dev in DEVICES.items():
            if merged[kind] is None and (not dev.optional or kind == self.device):
                merged[kind] = dev.spec()  # e.g. virtio-rng: guests boot faster with it
        return DeviceProfile(**merged)

    def fio_runtime(self, w: Workload) -> tuple[int, int]:
        assert w.fio is not None
        return (w.fio.runtime or self.fio_defaults.runtime,
                self.fio_defaults.ramp_time if w.fio.ramp_time is None else w.fio.ramp_time)

    def fio_options(self, w: Workload) -> dict[str, str | int | bool]:
        assert w.fio is not None
        opts: dict[str, str | int | bool] = dict(self.fio_defaults.options)
        opts.update(rw=w.fio.rw, bs=w.fio.bs, iodepth=w.fio.iodepth, numjobs=w.fio.numjobs)
        if w.fio.numjobs > 1:
            opts["group_reporting"] = 1
        opts.update(w.fio.options)
        return opts


def _over_defaults(default: Any, own: Any) -> Any:
    """The variant's device spec over the scenario's ``defaults`` for that device: fields the
    variant does not set come from the defaults (``defaults: {disk: {size_gib: 8}}`` and a variant
    ``disk: {bus: sata}`` is an 8 GiB SATA disk), then the whole is validated again (raises
    ValueError naming what does not fit together)."""
    if default is None or type(default) is not type(own):
        return own
    fields = {**default.model_dump(exclude_unset=True), **own.model_dump(exclude_unset=True)}
    try:
        return type(own).model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"with the defaults: {first['msg']}") from None


def _check_gate(gate: GateSpec, variants: list[str], workloads: list[str]) -> None:
    for field, names, known in (("variants", gate.variants, variants),
                                ("workloads", gate.workloads, workloads)):
        unknown = sorted(set(names or ()) - set(known))
        if unknown:
            raise ValueError(f"gate.{field}: no such {field[:-1]} {', '.join(unknown)} "
                             f"(the scenario has {', '.join(known)})")


# ---- loading ---------------------------------------------------------------------------------

def _validate(model, data, where: str):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(format_validation_error(exc, where)) from None


def load_scenario_text(text: str, where: str = "scenario") -> Scenario:
    try:
        data = load_yaml(text)
    except UntrustedInputError as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ScenarioError(f"{where}: not valid YAML{pos}: {problem}") from None
    if data is None:
        raise ScenarioError(f"{where}: the file is empty; a scenario needs name, device, variants "
                            f"and workloads (see scenarios/disk.yaml)")
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: expected a mapping with name, device, variants, workloads "
                            f"(got {type(data).__name__})")
    return _validate(Scenario, data, where)


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        text = read_text(path)
    except UntrustedInputError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file (see scenarios/ for the shipped ones)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read it: {exc}") from None
    return load_scenario_text(text, where=str(path))
