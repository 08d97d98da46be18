"""The run record: run.json as typed, versioned data, written and read only through this module.

The models and their (de)serialisation live here; ``store`` does the file I/O and calls
:func:`from_dict` / :func:`validate_for_write`. A run record says what was measured and under which facts: the scenario, the environment (host,
QEMU, libvirt, kernels, accelerator), each variant with its domain XML and the drivers the guest
was *verified* to run (the verdict ``verify.py`` made, stored, never re-derived), the failures and
the timing. Like pyperf's ``_bench.py``:

- every record carries ``schema_version``; :func:`upgrade` turns any older version into the
  current one (one function per step in ``UPGRADES``), and a newer version than this vbench knows
  is refused with one clear line;
- :data:`CHECKED_METADATA` lists the facts that must match before runs are pooled or compared,
  and :func:`metadata_differences` names the ones that do not.

Reading is permissive (an old run may lack a field; unknown extra keys are kept), writing is
strict (types and statuses are validated, assignments are checked).
"""

from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vbench.core.errors import StoreError
from vbench.core import policy

SCHEMA_VERSION = 2
STATUSES = ("running", "complete", "incomplete")


class _Record(BaseModel):
    # extra="allow": a field added later by a newer minor change (or a test) survives a round trip.
    model_config = ConfigDict(extra="allow", validate_assignment=True)


class ScenarioInfo(_Record):
    name: str = ""
    file: str = ""
    text: str = ""
    description: str = ""
    reference: str | None = None  # the scenario's `reference:` variant of the headline ratios


class Environment(_Record):
    """Facts of the host a run was measured on (``lab.host.facts()`` plus accelerator and image)."""

    host: str | None = None
    host_kernel: str | None = None
    cpu_model: str | None = None
    cpus: int | None = None
    memory_mib: int | None = None
    qemu_version: str | None = None
    fio_version_host: str | None = None
    libvirt_uri: str | None = None
    kvm_module: str | None = None
    libvirt_version: str | None = None
    # Whether libvirt's firewall rules sit on the test network's path (networks.firewall_fact):
    # they cost a segmenting NIC about a tenth of its throughput, so runs with and without differ.
    test_network: str | None = None
    # The host scheduler's autogroup (vbench.host.sched.FACTS): on, a guest's QEMU and the
    # host-side peer of a network probe are separate CPU groups, and a busy host's network figures
    # read low (rtl8139 guest-to-host 15 % on a 2-CPU host); the local lab turns it off.
    host_scheduler: str | None = None
    accelerator: str | None = None
    accelerator_reason: str | None = None
    guest_image: str | None = None
    guest_image_key: str | None = None
    # How the guest kernel was booted: "pvh" (vbench's image, its kernel unpacked on the host,
    # vbench.host.pvhboot), "bzimage" (direct boot of the packed kernel), None (a user's image with
    # its own bootloader, or a run from before this was recorded).
    guest_kernel_boot: str | None = None
    vbench_version: str | None = None
    python: str | None = None
    # vbench run --nested: the levels below this host (vbench.run.nested.label_run): the outer host's
    # facts and accelerator, the hypervisor guest, the inner domain types and guests' own view.
    nested: dict[str, Any] | None = None


class DriverCheck(_Record):
    """One device's driver verification, as decided in the guest by ``verify.check``."""

    model: str = ""
    expected: str = ""
    found: str = ""
    ok: bool
    detail: str = ""


class HostProof(_Record):
    """What the host where QEMU runs showed of a device once the guest was up, as
    ``verify.host_proofs`` decided it (e.g. ``vhost``: the NIC under test uses vhost-net)."""

    asked: str = ""               # "vhost: true", "vhost: false"; "" when the profile left it open
    used: bool | None = None      # None: could not be told
    evidence: str = ""            # "/dev/vhost-net open as fd 35 (netdev hostnet1)", "none", ...
    ok: bool = True               # False: contradicts what was asked (never measured then)


class Variant(_Record):
    device: str
    model: str
    paravirtual: bool
    baseline: bool = False
    profile: dict[str, Any] | None = None
    domain_xml: str = ""
    guest_kernel: str = ""
    guest_virt: str = ""  # systemd-detect-virt in the guest: "kvm", "qemu" (TCG), ... ("" : not asked)
    guest_clocksource: str = ""  # the guest kernel's clocksource: kvm-clock, tsc, hpet ("": not asked)
    boot_seconds: float | None = None
    drivers: dict[str, DriverCheck] = Field(default_factory=dict)
    # Host-side proofs by name, e.g. {"vhost": {"used": true, "evidence": "...", ...}}
    host_proofs: dict[str, HostProof] = Field(default_factory=dict)
    fio_version: str = ""
    guest_name: str = ""
    # KVM exit metric -> why a unit of this variant has no row of it (debugfs not mounted, the
    # kernel lacks the counter, ...); the latest reason per metric. Empty under TCG: no rows.
    kvm_exits_absent: dict[str, str] = Field(default_factory=dict)

    @property
    def verified(self) -> bool | None:
        """True if every device was verified (and every host-side proof held), False if one was
        not, None if never checked."""
        if not self.drivers:
            return None
        return all(d.ok for d in self.drivers.values()) and all(
            p.ok for p in self.host_proofs.values())


class WorkloadInfo(_Record):
    tool: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    method: int | None = None     # the kind's WorkloadKind.method; None: recorded before vbench
                                  # stored it (policy.FIRST_METHOD then)


class Failure(_Record):
    variant: str
    workload: str                 # "*" when the whole variant failed (did not boot)
    repetition: int | None = None
    error: str = ""
    error_type: str = ""
    console_tail: str = ""
    boot_stage: str = ""          # a boot that failed: how far it got (vbench.host.bootlog.STAGES)


class Retry(_Record):
    """A boot that failed (hung, died, no lease, no SSH) and was tried again with a fresh guest:
    why, and how the next attempt went."""

    variant: str
    repetition: int | None = None  # None: the variant's one boot (not a fresh boot per unit)
    attempt: int                   # the failed attempt, 1 for the first boot
    error: str = ""
    boot_stage: str = ""
    console_tail: str = ""
    console: str = ""              # raw/ file that keeps the failed attempt's console
    outcome: str = ""              # of the next attempt: "booted", or why it failed as well


class Timing(_Record):
    wall_s: float
    workload_s: float
    workload_share: float | None = None


class RunRecord(_Record):
    schema_version: int = SCHEMA_VERSION
    run_id: str = ""
    status: str = "unknown"
    started: str = ""
    finished: str | None = None
    vbench_version: str = ""
    scenario: ScenarioInfo = Field(default_factory=ScenarioInfo)
    repetitions: int | None = None
    environment: Environment = Field(default_factory=Environment)
    variants: dict[str, Variant] = Field(default_factory=dict)
    workloads: dict[str, WorkloadInfo] = Field(default_factory=dict)
    failures: list[Failure] = Field(default_factory=list)
    retries: list[Retry] = Field(default_factory=list)
    missing_units: int | None = None
    timing: list[Timing] = Field(default_factory=list)
    resumed: list[str] = Field(default_factory=list)

    @property
    def accelerator(self) -> str:
        return self.environment.accelerator or ""

    def guest_kernels(self) -> list[str]:
        return sorted({v.guest_kernel for v in self.variants.values() if v.guest_kernel})

    def guest_clocksources(self) -> list[str]:
        return sorted({v.guest_clocksource for v in self.variants.values() if v.guest_clocksource})

    def to_dict(self, only_set: bool = False) -> dict[str, Any]:
        """The JSON form (what run.json holds), with the current schema version.

        ``only_set``: leave out the fields the source did not have (the plain-dict view of an old
        run keeps its shape, so dict readers see what was recorded and nothing invented).
        """
        out = self.model_dump(mode="json", exclude_unset=only_set)
        out["schema_version"] = SCHEMA_VERSION
        return out


# ---- upgrades: one function per older schema version, each to the next ---------------------------

def _driver_ok(expected: str, found: str) -> bool:
    """The verdict of verify.check for a v1 record that did not store it (test fixtures)."""
    want = [w for w in expected.split("|") if w]
    if not want or want == ["none"]:
        return found in ("none", "absent", "")
    return any(found == w or found.startswith(w + ".") for w in want)


def _dicts(v: object) -> dict[str, dict[str, Any]]:
    """The dict-valued entries of ``v`` (a v1 file may hold anything where a mapping belongs)."""
    return {k: x for k, x in v.items() if isinstance(x, dict)} if isinstance(v, dict) else {}


def _upgrade_v1(obj: dict[str, Any]) -> dict[str, Any]:
    """v1 (vbench 0.1.0, an untyped dict) -> v2: every driver check carries its verdict (``ok``)
    and the profile's model; lists that v1 added only when needed are always present."""
    out = dict(obj)
    new_variants = {}
    for name, v in _dicts(out.get("variants")).items():
        v = dict(v)
        fixed = {}
        for dev, d in _dicts(v.get("drivers")).items():
            exp, found = str(d.get("expected") or ""), str(d.get("found") or "")
            fixed[dev] = {"ok": _driver_ok(exp, found),
                          "model": str(v.get("model") or "") if dev == v.get("device") else "",
                          **d, "expected": exp, "found": found}
        v["drivers"] = fixed
        new_variants[name] = v
    out["variants"] = new_variants
    for key in ("failures", "timing", "resumed"):
        if not isinstance(out.get(key), list):
            out[key] = []
    out["schema_version"] = 2
    return out


UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _upgrade_v1}


def check_version(version: object, where: str) -> int:
    """The schema version if this vbench can read it (upgrading if older), else one-line StoreError."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise StoreError(f"{where} has schema version {version!r}; it is not a vbench file this "
                         f"version understands")
    if version > SCHEMA_VERSION:
        raise StoreError(f"{where} has schema version {version!r}, newer than this vbench reads "
                         f"(up to {SCHEMA_VERSION}); upgrade vbench to read it")
    return version


def upgrade(obj: dict[str, Any], where: str = "run record") -> dict[str, Any]:
    """Bring a run.json dict of any known version to the current one (pure, no I/O)."""
    version = check_version(obj.get("schema_version"), where)
    while version < SCHEMA_VERSION:
        obj = UPGRADES[version](obj)
        version = obj["schema_version"]
    return obj


def from_dict(obj: dict[str, Any], where: str = "run record") -> RunRecord:
    """Parse (and upgrade) a run.json dict; anything malformed is one StoreError line."""
    if not isinstance(obj, dict) or "schema_version" not in obj:
        raise StoreError(f"{where} is not a vbench file (no schema_version)")
    try:
        return RunRecord.model_validate(upgrade(obj, where))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise StoreError(f"{where} is not a valid run record ({loc}: {first['msg']}; "
                         f"{exc.error_count()} problem(s))") from None


def validate_for_write(rec: RunRecord) -> dict[str, Any]:
    """The JSON form of a record about to be written; refuses what the writer must never store."""
    if rec.status not in STATUSES:
        raise StoreError(f"run record {rec.run_id!r}: status {rec.status!r} is not one of "
                         f"{', '.join(STATUSES)}")
    if not rec.run_id:
        raise StoreError("run record without a run_id cannot be written")
    data = rec.to_dict()
    RunRecord.model_validate(data)  # a round trip through the schema: what we write, we can read
    return data


# ---- metadata that must match before runs are pooled or compared --------------------------------

# The list and the comparison rule live in vbench.core.policy (one home); this module reads them off
# a record.
CHECKED_METADATA = policy.CHECKED_METADATA


def checked_metadata(rec: RunRecord) -> dict[str, str | None]:
    """The values of CHECKED_METADATA for one run (None where the run did not record it)."""
    env = rec.environment
    out: dict[str, str | None] = {}
    for key in CHECKED_METADATA:
        if key == "guest_kernel":
            kernels = rec.guest_kernels()
            out[key] = ", ".join(kernels) if kernels else None
        elif key == "probe_methods":
            out[key] = probe_methods(rec)
        elif key == "nested":  # a nested run is never pooled with a flat one (nor another nesting)
            n = env.nested
            out[key] = None if not n else (f"under {n.get('outer_accelerator')} on "
                                           f"{(n.get('outer_host') or {}).get('host')}")
        else:
            value = getattr(env, key, None)
            out[key] = None if value in (None, "") else str(value)
    return out


def probe_methods(rec: RunRecord) -> str | None:
    """``iperf3 1, ping 2``: the measuring method of each workload tool the run used. Runs of one
    tool measured with different methods are different experiments."""
    pairs = sorted({(w.tool, policy.FIRST_METHOD if w.method is None else w.method)
                    for w in rec.workloads.values() if w.tool})
    return ", ".join(f"{tool} {method}" for tool, method in pairs) or None


def metadata_differences(a: RunRecord, b: RunRecord) -> dict[str, tuple[str, str]]:
    """The checked facts that differ between two runs: key -> (value in a, value in b)
    (:func:`vbench.core.policy.metadata_differences`)."""
    return policy.metadata_differences(checked_metadata(a), checked_metadata(b))


describe_differences = policy.describe_differences
