"""JSON schemas of the files a user writes (scenarios, hosts files) and the scenario reference,
all generated from the models that validate those files, so that they cannot drift from them.

``vbench schema scenario|hosts`` prints a schema; ``docs/scenario.schema.json``,
``docs/hosts.schema.json`` and ``docs/SCENARIOS.md`` are these outputs, committed and kept equal
by ``tests/unit/test_schema.py``. Regenerate them with ``python -m vbench.scenario.jsonschema docs``.

The hosts file is read by hand (:mod:`vbench.fleet.hosts`, allow-listed fields); its schema comes
from :class:`HostsFile`, a model of the same fields that the test holds equal to the reader's
allow-lists (``HOST_FIELDS``, ``ENV_ALLOWED``).
"""

from __future__ import annotations

import json
import sys
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vbench.devices import DEVICES
from vbench.workloads import WORKLOADS

SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"


class _HostEnv(BaseModel):
    model_config = ConfigDict(extra="forbid")
    VBENCH_MGMT_SUBNET: str | None = Field(None, description="IPv4 network, /28 or larger")
    VBENCH_TEST_SUBNET: str | None = Field(None, description="IPv4 network, /28 or larger")
    VBENCH_ACCEL: typing.Literal["kvm", "tcg"] | None = None
    VBENCH_HOME: str | None = Field(None, description="an absolute path without '..'")


class _Host(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$",
                      description="short, safe name: it becomes a directory and a column heading")
    connect: str | None = Field(None, pattern=r"^qemu(\+(ssh|libssh|libssh2|unix|tcp|tls))?://",
                                description="libvirt URI; none: the local lab")
    netns: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                              description="run vbench inside this network namespace (local only)")
    env: _HostEnv | None = Field(None, description="environment of the host's vbench run")
    machine: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$",
                                description="hosts declaring the same machine run in turn")


class HostsFile(BaseModel):
    """A hosts file of ``vbench fleet run --hosts``: ``hosts:`` and a list (or just the list)."""

    model_config = ConfigDict(extra="forbid")
    hosts: list[_Host] = Field(min_length=1, max_length=32)


def scenario_schema() -> dict:
    from vbench.scenario.schema import Scenario

    schema = Scenario.model_json_schema()
    return {"$schema": SCHEMA_URL, "$id": "https://vbench.invalid/scenario.schema.json", **schema}


def hosts_schema() -> dict:
    schema = HostsFile.model_json_schema()
    listed = {"type": "array", "items": {"$ref": "#/$defs/_Host"}, "minItems": 1, "maxItems": 32}
    return {"$schema": SCHEMA_URL, "$id": "https://vbench.invalid/hosts.schema.json",
            "$defs": schema.pop("$defs"), "anyOf": [schema, listed],
            "title": "vbench hosts file"}


def dump(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


# ---- the scenario reference -------------------------------------------------------------------

# A field's unit, by field name (one home; test_schema fails on a number without a unit here or
# in UNITLESS).
UNITS = {
    "memory_mib": "MiB", "size_mib": "MiB", "block_mib": "MiB", "target_mib": "MiB",
    "touch_mib": "MiB", "size_gib": "GiB", "boot_timeout_s": "seconds", "boot_stall_s": "seconds", "boot_retries": "retries", "timeout_s": "seconds",
    "runtime": "seconds", "ramp_time": "seconds", "duration": "seconds", "omit": "seconds",
    "interval": "seconds", "rate_period_ms": "milliseconds", "rate_bytes": "bytes per period",
    "read_bytes": "bytes", "g2h_bytes": "bytes", "h2g_bytes": "bytes", "size": "bytes (payload)",
    "length": "bytes (buffer)", "bs": "bytes (k, m suffixes)", "filesize": "bytes (k suffix)",
    "bitrate": "bits/s (K, M, G suffixes)", "target_ci": "fraction (or a percentage, '5%')",
    "threshold": "fraction", "vcpus": "vCPUs", "iodepth": "I/Os in flight", "numjobs": "jobs",
    "parallel": "streams", "count": "packets", "pings": "round trips", "files": "files",
    "queues": "queues", "repetitions": "repetitions", "min": "repetitions", "max": "repetitions",
}
UNITLESS = {"allow_inconclusive", "model", "bus", "format", "cache", "io", "preallocate", "iothread", "vhost",
            "backend", "accessmode", "virtiofsd", "name", "description", "device", "smoke",
            "order", "host_baseline", "fresh_boot", "connect", "guest", "defaults",
            "fio_defaults", "variants", "workloads", "gate", "reference", "image", "machine",
            "image_file", "firmware", "rw", "options", "protocol", "directions", "metrics",
            "placement",
            } | set(WORKLOADS) | set(DEVICES)  # the sections of the registered kinds


# What a field means, where its model gives no description (one home: the reference; a field
# with neither fails test_schema). Keys: "Model.field", or "*.field" for any model.
MEANINGS = {
    "Scenario.name": "the scenario's name: in run ids, reports and `vbench history`",
    "Scenario.description": "one line for humans, shown in the report",
    "Scenario.device": "the device kind under test: the only device that may differ between "
                       "variants",
    "Scenario.order": "interleaved: variants rotate by one each repetition (host drift cancels); "
                      "sequential: the same order every repetition",
    "Scenario.guest": "the guest every variant boots (identical across variants)",
    "Scenario.defaults": "devices every variant has unless it sets its own device under test",
    "Scenario.fio_defaults": "runtime, ramp time and fio options of every fio workload",
    "Scenario.variants": "the device profiles compared (at most 16)",
    "Scenario.workloads": "what is measured on every variant (at most 32)",
    "DeviceOverrides.*": "this device's settings for every variant",
    "Variant.*": "the device under test of this variant (only the scenario's `device`)",
    "Variant.name": "the variant's name: a column of the report",
    "Workload.name": "the workload's name: a row of the report",
    "Workload.*": f"the tool of this workload: exactly one of {', '.join(WORKLOADS)}",
    "*.model": "the device model: which of them are paravirtual is listed in the README's table",
    "DiskSpec.bus": "how the scratch disk is attached: virtio (virtio-blk), scsi (virtio-scsi), "
                    "sata (AHCI), ide (PIIX), nvme (emulated NVMe)",
    "DiskSpec.size_gib": "size of the scratch disk",
    "DiskSpec.cache": "libvirt disk cache mode",
    "DiskSpec.io": "libvirt disk I/O mode",
    "RngSpec.backend": "the host source of the virtio-rng device",
    "RngSpec.rate_bytes": "rate limit: bytes per period (none: unlimited)",
    "RngSpec.rate_period_ms": "the rate limit's period",
    "GuestSpec.vcpus": "virtual CPUs per guest",
    "GuestSpec.memory_mib": "memory per guest",
    "GuestSpec.machine": "QEMU machine type: pc (i440fx) or q35",
    "GuestSpec.boot_timeout_s": "how long a guest may take to boot and answer SSH",
    "FioDefaults.runtime": "fio runtime of every fio workload without its own",
    "FioDefaults.ramp_time": "fio ramp (warm-up, not measured) of every fio workload",
    "FioDefaults.options": "fio options of every fio workload (allow-listed)",
    "FioSpec.rw": "fio's rw: the I/O pattern",
    "FioSpec.bs": "fio's block size",
    "FioSpec.iodepth": "fio's iodepth (libaio queue depth)",
    "FioSpec.numjobs": "fio's numjobs (reported as one group)",
    "FioSpec.runtime": "fio runtime (default: fio_defaults.runtime)",
    "FioSpec.ramp_time": "fio ramp time (default: fio_defaults.ramp_time)",
    "FioSpec.options": "more fio options, from an allow-list; filename, directory, runtime and "
                       "output options are vbench's",
    "Iperf3Spec.protocol": "tcp or udp",
    "Iperf3Spec.directions": "h2g: host to guest; g2h: guest to host; each measured separately",
    "Iperf3Spec.parallel": "iperf3 -P: parallel streams",
    "Iperf3Spec.duration": "iperf3 -t: measured seconds per direction",
    "Iperf3Spec.omit": "iperf3 -O: seconds at the start left out (TCP slow start)",
    "Iperf3Spec.bitrate": "iperf3 -b: target rate (UDP); none: iperf3's default",
    "Iperf3Spec.length": "iperf3 -l: buffer (UDP datagram) size",
    "PingSpec.directions": "h2g: host pings guest; g2h: guest pings host",
    "PingSpec.count": "ping -c: echo requests per direction",
    "PingSpec.interval": "ping -i: seconds between requests",
    "PingSpec.size": "ping -s: payload size",
    "EntropySpec.read_bytes": "bytes read from /dev/hwrng",
    "EntropySpec.timeout_s": "give up reading after this long",
    "BalloonWorkSpec.target_mib": "the guest's memory after the balloon inflates (below "
                                  "guest.memory_mib)",
    "*.timeout_s": "give up after this long",
    "BytestreamSpec.g2h_bytes": "bytes sent guest to host",
    "BytestreamSpec.h2g_bytes": "bytes sent host to guest",
    "BytestreamSpec.pings": "round trips timed",
    "SockstreamSpec.g2h_bytes": "bytes sent guest to host over the socket",
    "SockstreamSpec.h2g_bytes": "bytes sent host to guest over the socket",
    "SockstreamSpec.pings": "one-byte round trips timed",
    "FsMetaSpec.files": "small files created, stat'ed and deleted",
    "FsMetaSpec.filesize": "size of each file",
    "GateSpec.metrics": "metrics `vbench compare` gates on",
    "GateSpec.variants": "variants gated (default: all but the host baseline)",
    "GateSpec.workloads": "workloads gated (default: all)",
    "GateSpec.threshold": "the relative change that matters (default: compare's, 0.05)",
    "Repetitions.min": "interleaved rounds always run (at least 3 unless `smoke: true`)",
    "Repetitions.max": "rounds at most",
    "Repetitions.target_ci": "stop when every gated ratio's 95 % interval is within +- this",
}


def meaning(model: str, field: str, prop: dict) -> str:
    text = prop.get("description") or MEANINGS.get(f"{model}.{field}") or MEANINGS.get(
        f"{model}.*") or MEANINGS.get(f"*.{field}", "")
    return " ".join(text.split())


def _type_text(prop: dict, defs: dict) -> str:
    if "$ref" in prop:
        return f"[{prop['$ref'].split('/')[-1]}](#{prop['$ref'].split('/')[-1].lower()})"
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    if "anyOf" in prop:
        parts = [_type_text(p, defs) for p in prop["anyOf"] if p.get("type") != "null"]
        text = " or ".join(parts)
        return text + (" or null" if any(p.get("type") == "null" for p in prop["anyOf"]) else "")
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type_text(prop.get('items', {}), defs)}"
    if kind == "object" and "additionalProperties" in prop and isinstance(
            prop["additionalProperties"], dict):
        return f"mapping of {_type_text(prop['additionalProperties'], defs)}"
    bounds = []
    for key, sym in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                     ("exclusiveMaximum", "<"), ("minLength", "length >="),
                     ("maxLength", "length <="), ("minItems", "items >="),
                     ("maxItems", "items <=")):
        if key in prop:
            bounds.append(f"{sym} {prop[key]}")
    if "pattern" in prop:
        bounds.append(f"pattern `{prop['pattern']}`")
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def _examples() -> dict[tuple[str, str], Any]:
    """(model name, field) -> a value a shipped scenario gives it (the first found)."""
    from vbench.scenario.schema import Scenario
    from vbench.core.shipped import find_dir
    from vbench.core.untrusted import load_yaml

    out: dict[tuple[str, str], Any] = {}
    d = find_dir("scenarios")
    for path in sorted(d.glob("*.yaml")) if d else []:
        scn = Scenario.model_validate(load_yaml(path.read_text()))

        def walk(model: Any) -> None:
            if isinstance(model, BaseModel):
                for name in model.model_fields_set:
                    value = getattr(model, name)
                    plain = value.model_dump(mode="json", exclude_unset=True) if isinstance(
                        value, BaseModel) else value
                    if isinstance(plain, list) and plain and isinstance(plain[0], BaseModel):
                        plain = None
                    if plain is not None and not isinstance(plain, (dict, list)) or (
                            isinstance(plain, (dict, list)) and plain and len(str(plain)) < 70):
                        out.setdefault((type(model).__name__, name), plain)
                    walk(value)
            elif isinstance(model, list):
                for item in model:
                    walk(item)
        walk(scn)
    return out


def _where(defs: dict, root: dict) -> dict[str, list[str]]:
    """Model name -> the paths where it appears in a scenario (``workloads[].fio``)."""
    out: dict[str, list[str]] = {}

    def visit(schema: dict, path: str) -> None:
        for name, prop in schema.get("properties", {}).items():
            for ref, sub in _refs(prop, f"{path}.{name}" if path else name):
                target = ref.split("/")[-1]
                if sub not in out.setdefault(target, []):
                    out[target].append(sub)
                    visit(defs[target], sub)

    visit(root, "")
    return out


def _refs(prop: dict, path: str) -> list[tuple[str, str]]:
    if "$ref" in prop:
        return [(prop["$ref"], path)]
    found = []
    for p in prop.get("anyOf", []):
        found += _refs(p, path)
    if prop.get("type") == "array" and "items" in prop:
        found += _refs(prop["items"], path + "[]")
    return found


def _cell(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return "`" + text.replace("|", "\\|") + "`"


def scenario_reference() -> str:
    """docs/SCENARIOS.md: every field of every part of a scenario, with type, default, unit,
    an example (from a shipped scenario when one sets it) and what it means."""
    schema = scenario_schema()
    defs = schema["$defs"]
    where = _where(defs, schema)
    examples = _examples()
    lines = ["# Scenario reference", "",
             "Generated from the models that validate scenarios (`python -m vbench.scenario.jsonschema docs`; "
             "`tests/unit/test_schema.py` fails when it is out of date). A machine-readable form "
             "is [scenario.schema.json](scenario.schema.json). Check a scenario with "
             "`vbench validate FILE` and see what it would do with `vbench plan FILE`.", "",
             "Every mapping refuses fields it does not list. Example values come from the shipped "
             "`scenarios/*.yaml` where one sets the field, else the default.", ""]
    sections = [("Scenario", schema)] + [(n, defs[n]) for n in sorted(defs)]
    lines.append("Contents: " + ", ".join(f"[{n}](#{n.lower()})" for n, _s in sections))
    lines.append("")
    for name, sub in sections:
        lines.append(f"## {name}")
        lines.append("")
        paths = where.get(name, []) if name != "Scenario" else ["the file itself"]
        if paths:
            lines.append("Where: " + ", ".join(f"`{p}`" for p in paths))
            lines.append("")
        if sub.get("description"):
            lines.append(" ".join(sub["description"].split()))
            lines.append("")
        lines.append("| field | type | default | unit | example | meaning |")
        lines.append("|---|---|---|---|---|---|")
        required = set(sub.get("required", []))
        for field, prop in sub.get("properties", {}).items():
            default = "required" if field in required else (
                _cell(prop["default"]) if "default" in prop else "")
            example = examples.get((name, field), prop.get("default"))
            if example is None and "enum" in prop:
                example = prop["enum"][0]
            unit = UNITS.get(field, "")
            means = meaning(name, field, prop).replace("|", "\\|")
            lines.append(f"| `{field}` | {_type_text(prop, defs)} | {default} | {unit} | "
                         f"{_cell(example) if example is not None else ''} | {means} |")
        lines.append("")
    return "\n".join(lines)


def write_docs(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "scenario.schema.json").write_text(dump(scenario_schema()))
    (out / "hosts.schema.json").write_text(dump(hosts_schema()))
    (out / "SCENARIOS.md").write_text(scenario_reference())


if __name__ == "__main__":  # pragma: no cover
    write_docs(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
