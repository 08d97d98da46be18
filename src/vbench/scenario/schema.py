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
from pydantic import (Field, ValidationError, WithJsonSchema, create_model, field_validator,
                      model_validator)

from vbench import devices
from vbench.devices import Device, Strict
from vbench.core.errors import ScenarioError
from vbench import workloads
from vbench.workloads.base import WorkloadKind
from vbench.workloads.fio import FioDefaults, runtime_of
from vbench.core.untrusted import UntrustedInputError, load_yaml, read_text
from vbench.scenario.fielderrors import (Problems, error_text, field_path, validation_problems)
from vbench.workloads import fiojob
from vbench.core.metrics import METRICS
from vbench.core.policy import HOST_VARIANT

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
    boot_stall_s: int = Field(60, ge=5, le=3600,
                              description="a boot whose console has not grown for this long "
                                          "before userspace started is hung: stop waiting")
    boot_retries: int = Field(1, ge=0, le=5,
                              description="boots that hang or die are retried this many times "
                                          "with a fresh overlay (each retry is recorded)")
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

class _WorkloadBase(_Strict):
    """One workload of a scenario: a name and exactly one tool section (the registered kinds of
    :mod:`vbench.workloads`)."""

    model_config = {**_Strict.model_config, "json_schema_extra": fiojob.schema_extra}

    name: Name

    if TYPE_CHECKING:  # type checkers see the tool sections as attributes of any name
        def __getattr__(self, tool: str) -> Any: ...

    _jobfile_read = field_validator("fio", mode="before", check_fields=False)(fiojob.refuse_unexpanded)

    @model_validator(mode="after")
    def _exactly_one(self) -> "_WorkloadBase":
        set_ = [k for k in TOOLS if getattr(self, k)]
        if len(set_) != 1:
            raise ValueError(f"a workload needs exactly one of {', '.join(TOOLS)} "
                             f"(got {', '.join(set_) or 'none'})")
        return self

    @property
    def tool(self) -> str:
        return next(k for k in TOOLS if getattr(self, k))

    @property
    def kind(self) -> WorkloadKind:
        return WORKLOADS[self.tool]

    @property
    def spec(self) -> Any:
        return getattr(self, self.tool)


WORKLOADS = workloads.freeze()
TOOLS = tuple(WORKLOADS)

if TYPE_CHECKING:
    Workload = _WorkloadBase
else:
    Workload = create_model(
        "Workload", __base__=_WorkloadBase, __module__=__name__, __doc__=_WorkloadBase.__doc__,
        **{t: (k.spec | None, None) for t, k in WORKLOADS.items()})


# ---- variants and scenario -------------------------------------------------------------------

class Variant(DeviceOverrides):
    name: Name


def percent(v: Any) -> Any:
    """"5%" -> 0.05; anything else unchanged (the field's bounds then check it)."""
    if isinstance(v, str) and v.strip().endswith("%"):
        try:
            return float(v.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"expected a fraction like 0.05 or a percentage like 5% (got {v!r})")
    return v


class GateSpec(_Strict):
    """What `vbench compare` gates on (the rest is reported): ``metrics`` (default: the device
    kind's, :data:`vbench.core.policy.DEFAULT_GATE_METRICS`, whatever else is set here) of every
    workload that has them, on ``variants`` (default: all but the host baseline) of
    ``workloads`` (default: all); ``threshold``: the relative change that matters for these
    metrics, a fraction in (0, 1) or a percentage like 10% (default: compare's)."""

    metrics: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.]{1,48}$")]] | None = Field(
        None, min_length=1, max_length=32)
    variants: list[Name] | None = Field(None, min_length=1)
    workloads: list[Name] | None = Field(None, min_length=1)
    threshold: Annotated[float | None, WithJsonSchema({  # what the "before" validator accepts
        "anyOf": [{"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                  {"type": "string", "pattern": r"^\s*[0-9]*\.?[0-9]+\s*%\s*$"}, {"type": "null"}],
        "title": "Threshold"})] = Field(None, gt=0, lt=1)
    allow_inconclusive: bool = Field(False, description="inconclusive gated rows are reported "
                                     "but do not fail the gate (as --allow-inconclusive): it "
                                     "fails on regressions and missing rows")

    @field_validator("metrics")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        unknown = [m for m in v or () if m not in METRICS]
        if unknown:
            raise ValueError(f"no such metric {', '.join(unknown)} (known: see "
                             f"vbench.core.metrics.METRICS, e.g. iops, clat_p99, throughput)")
        return v

    @field_validator("threshold", mode="before")
    @classmethod
    def _percent(cls, v: Any) -> Any:
        return percent(v)


class Repetitions(_Strict):
    """Adaptive repetitions: ``min`` interleaved rounds, then more until every gated ratio's 95 %
    interval is within +-``target_ci`` (a fraction, or "5%"), at most ``max`` (vbench.run.adaptive)."""

    min: int = Field(3, ge=1, le=1000)
    max: int = Field(10, ge=1, le=1000)
    target_ci: Annotated[float, WithJsonSchema({  # what the "before" validator below accepts
        "anyOf": [{"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                  {"type": "string", "pattern": r"^\s*[0-9]*\.?[0-9]+\s*%\s*$"}],
        "title": "Target Ci"})] = Field(gt=0, lt=1)

    @field_validator("target_ci", mode="before")
    @classmethod
    def _percent(cls, v: Any) -> Any:
        return percent(v)

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
    smoke: bool = Field(False, description="a code-path check, not a measurement: allows fewer "
                        "than 3 repetitions (a comparison needs at least 3)")
    order: Literal["interleaved", "sequential"] = "interleaved"
    host_baseline: bool = Field(False, description="also run the fio jobs on the host (disk only)")
    fresh_boot: bool = Field(False, description="boot a fresh guest for every repetition (for "
                             "boot-time facts such as crng init); otherwise one boot per variant")
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
        if problems := self.problems():
            raise Problems(problems)
        return self

    def problems(self) -> list[str]:
        """Every problem of the fields taken together, one line each with its field path."""
        out: list[str] = []
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names) or HOST_VARIANT in names:
            out.append(f"variants: variant names must be unique and not {HOST_VARIANT!r} (reserved for "
                       "the baseline)")
        wnames = [w.name for w in self.workloads]
        if len(set(wnames)) != len(wnames):
            out.append("workloads: workload names must be unique")
        for i, v in enumerate(self.variants):
            for kind in DEVICES:
                if kind != self.device and getattr(v, kind) is not None:
                    out.append(f"variants[{i}].{kind}: only the device under test "
                               f"({self.device}) may differ between variants; put it in defaults")
            if getattr(v, self.device) is None and getattr(self.defaults, self.device) is None:
                out.append(f"variants[{i}]: sets no {self.device} (the device under test)")
        if self.reference is not None and self.reference not in names:
            out.append(f"reference: no variant named {self.reference!r} "
                       f"(variants: {', '.join(names)})")
        for i, w in enumerate(self.workloads):
            out += [f"workloads[{i}].{w.tool}.{why}"
                    for why in w.kind.problems(getattr(w, w.tool), self)]
        if self.gate is not None:
            out += _gate_problems(self.gate, names + [HOST_VARIANT] * self.host_baseline, wnames)
        if out:
            return out  # the profiles below assume sound variants
        for i, v in enumerate(self.variants):
            try:
                prof = self.profile(v)
            except ValueError as exc:
                out.append(f"variants[{i}].{self.device}: {exc}")
                continue
            for dev, spec in prof.present():
                why = dev.guest_rule(spec, self.guest.machine)
                if why:
                    out.append(f"variants[{i}].{dev.kind}: {why}")
        if self.host_baseline and not DEVICES[self.device].host_baseline:
            kinds = " or ".join(k for k, d in DEVICES.items() if d.host_baseline)
            out.append(f"host_baseline: only {kinds} scenarios have a host baseline")
        return out

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
        return runtime_of(w.fio, self.fio_defaults)

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


def _gate_problems(gate: GateSpec, variants: list[str], workloads: list[str]) -> list[str]:
    out = []
    for field, names, known in (("variants", gate.variants, variants),
                                ("workloads", gate.workloads, workloads)):
        unknown = sorted(set(names or ()) - set(known))
        if unknown:
            out.append(f"gate.{field}: no such {field[:-1]} {', '.join(unknown)} "
                       f"(the scenario has {', '.join(known)})")
    return out


# ---- loading ---------------------------------------------------------------------------------

def _validate(model, data, where: str):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError.of(validation_problems(exc, where)) from None


def load_scenario_text(text: str, where: str = "scenario", base_dir: Path | None = None) -> Scenario:
    """A scenario from its YAML text; fio job files it names are read from ``base_dir``."""
    return _validate(Scenario, scenario_data(text, where, base_dir), where)


def scenario_data(text: str, where: str = "scenario", base_dir: Path | None = None) -> Any:
    """The parsed, not yet validated scenario mapping (job files expanded when ``base_dir``)."""
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
    return data if base_dir is None else fiojob.expanded(data, base_dir, where)


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
    return load_scenario_text(text, where=str(path), base_dir=path.parent)
