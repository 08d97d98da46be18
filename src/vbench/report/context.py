"""What a run was measured on: the context strip at the top of every page, the environment
tables, the environment diff of a multi-run report, the stored driver checks and the domain XML.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path

from vbench.core.files import atomic_write
from vbench.results.record import HostProof, Variant
from vbench.report.load import RunInfo


def text(v: object) -> str:
    return "" if v is None else str(v)

ENV_FIELDS = (("host", "Host"), ("cpu_model", "CPU"), ("cpus", "CPUs"), ("memory_mib", "Memory (MiB)"),
              ("host_kernel", "Host kernel"), ("qemu_version", "QEMU"), ("libvirt_version", "libvirt"),
              ("libvirt_uri", "libvirt URI"), ("accelerator", "Accelerator"),
              ("accelerator_reason", "Accelerator reason"), ("fio_version_host", "fio on the host"),
              ("test_network", "Test network"), ("host_scheduler", "Host scheduler"))
_MACHINE = re.compile(r"<type\b[^>]*\bmachine=['\"]([^'\"]+)['\"]")
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


def slug(s: str) -> str:
    return _SLUG.sub("-", str(s)).strip("-.")[:80] or "x"


def badge(accelerator: str) -> dict:
    """The accelerator badge: always shown, KVM green, TCG amber, anything else grey."""
    a = accelerator.strip().lower()
    return {"text": a.upper() if a else "accelerator unknown",
            "cls": {"kvm": "kvm", "tcg": "tcg"}.get(a, "unknown"),
            "title": {"kvm": "hardware virtualisation (KVM)",
                      "tcg": "software emulation (TCG): guest CPU saturated, ratios are TCG's"}
            .get(a, "the run did not record its accelerator")}


def run_badge(run: RunInfo) -> dict:
    """The badge of one run: a nested run (vbench run --nested) says both levels, amber, and what
    its numbers mean (they are never a KVM host's)."""
    b = badge(run.accelerator)
    n = run.record.environment.nested
    if not n:
        return b
    from vbench.guest.nested import NOTE

    outer = text(n.get("outer_accelerator")).upper() or "?"
    return {"text": f"{b['text']} nested in {outer}", "cls": "tcg", "title": NOTE}


def _nested_rows(run: RunInfo) -> list[tuple[str, str]]:
    n = run.record.environment.nested
    if not n:
        return []
    outer = n.get("outer_host") or {}
    hv = n.get("hypervisor_guest") or {}
    virt = ", ".join(f"{k}: {v}" for k, v in sorted((n.get("inner_guest_virt") or {}).items()))
    return [("Nested", text(n.get("note"))),
            ("Outer host", f"{text(outer.get('host'))}, {text(outer.get('host_kernel'))}, "
                           f"{_short_qemu(text(outer.get('qemu_version')))}, libvirt "
                           f"{text(outer.get('libvirt_version'))}, {text(outer.get('kvm_module'))}"),
            ("Outer accelerator", f"{text(n.get('outer_accelerator')).upper()}: "
                                  f"{text(n.get('outer_accelerator_reason'))}"),
            ("Hypervisor guest", f"{text(hv.get('cpu'))}, {text(hv.get('vcpus'))} vCPUs, "
                                 f"{text(hv.get('memory_mib'))} MiB, kernel {text(hv.get('kernel'))}"),
            ("Inner domain types", ", ".join(n.get("inner_domain_types") or [])),
            ("Inner guests' own view", virt or "not recorded")]


def _short_qemu(v: str) -> str:
    return v.replace("QEMU emulator version ", "")


def _machines(run: RunInfo) -> list[str]:
    found = {m.group(1) for v in run.variants.values() for m in [_MACHINE.search(v.domain_xml)] if m}
    return sorted(found)


def xml_href(run: RunInfo, variant: str) -> str:
    return f"domain-xml/{slug(run.label)}/{slug(variant)}.html"


def write_domain_xml(out_dir: Path, runs: list[RunInfo]) -> None:
    """Each variant's stored domain XML next to the report, for the context strip's links: an
    HTML page showing it escaped under the report's CSP. Never an ``.xml`` file: the run's XML is
    untrusted, and a browser renders an XHTML-namespaced ``<h:script>`` or ``onerror`` in one."""
    from vbench import __version__
    from vbench.report.render import render

    for run in runs:
        for name, v in run.variants.items():
            if v.domain_xml:
                page = render("domain_xml.html.j2", title=f"{run.label} / {name}: domain XML",
                              xml=v.domain_xml, version=__version__)
                atomic_write(Path(out_dir) / xml_href(run, name), page)


def proof_view(name: str, p: HostProof) -> dict:
    """A host-side proof as the context strip shows it: "vhost" or "no vhost", the evidence on
    hover, and whether it held."""
    word = name if p.used else f"no {name}" if p.used is False else f"{name}?"
    return {"text": word, "title": p.evidence + (f" ({p.asked} asked)" if p.asked else ""),
            "ok": p.ok}


def strip(run: RunInfo) -> dict:
    """The context strip of one run: badge, versions, kernels, machine type, bound drivers."""
    env = run.record.environment
    items = [(label, value) for label, value in (
        ("QEMU", _short_qemu(text(env.qemu_version))),
        ("libvirt", text(env.libvirt_version)),
        ("host kernel", text(env.host_kernel)),
        ("guest kernel", ", ".join(run.record.guest_kernels())),
        ("machine", ", ".join(_machines(run))),
        ("host", text(env.host)),
        ("test network", text(env.test_network)),
        ("host scheduler", text(env.host_scheduler)),
        ("probe placement", _placements(run)),
    ) if value]
    drivers = []
    for name, v in run.variants.items():
        if v.baseline:
            continue
        checks = [d for d in run.drivers() if d.variant == name and d.under_test]
        d = checks[0] if checks else None
        drivers.append({"variant": name, "driver": (d.check.found or "none") if d else "",
                        "ok": d.check.ok if d else None, "expected": d.check.expected if d else "",
                        "href": xml_href(run, name) if v.domain_xml else "",
                        "proofs": [proof_view(k, p) for k, p in v.host_proofs.items()]})
    return {"label": run.label, "badge": run_badge(run), "items": items,
            "drivers": drivers, "devices": device_set_view(run)}


def _placements(run: RunInfo) -> str:
    """Where the run's network probes ran against the NIC's interrupts, by workload
    (vbench.workloads.placement); "" when no workload recorded a placement (runs before it)."""
    from vbench.workloads.placement import MEANING

    got = {name: text(w.options.get("placement"))[:20] for name, w in run.record.workloads.items()
           if isinstance(w.options, dict) and "placement" in w.options}
    by_value: dict[str, list[str]] = {}
    for name, value in got.items():
        by_value.setdefault(value, []).append(text(name)[:40])
    return "; ".join(f"{MEANING.get(value, f'unknown ({value})')} ({', '.join(names)})"
                     for value, names in sorted(by_value.items()))


def device_set_view(run: RunInfo) -> dict | None:
    """The strip's line of the devices besides the one under test, from each variant's stored
    domain XML (vbench.report.devset); None when the run stored no XML."""
    from vbench.report.devset import device_set

    ds = device_set((n, v.device, v.domain_xml) for n, v in run.variants.items() if not v.baseline)
    if ds is None:
        return None
    return {"common": ", ".join(ds.common),
            "extra": [{"variant": n, "devices": ", ".join(xs)} for n, xs in ds.extra],
            "problems": ds.problems}


def env_rows(run: RunInfo) -> list[tuple[str, str]]:
    from vbench.results.record import probe_methods

    env = run.record.environment.model_dump(exclude_unset=True)
    m = run.record.model_dump(exclude_unset=True)  # what the run recorded, no defaults
    methods = probe_methods(run.record)
    rows = [(label, str(env.get(key))) for key, label in ENV_FIELDS if env.get(key) not in (None, "")]
    for label, values in (("Guest kernel", run.record.guest_kernels()),
                          ("Guest clocksource", run.record.guest_clocksources()),
                          ("Machine type", _machines(run)),
                          ("Probe methods", [methods] if methods else [])):
        if values:
            rows.append((label, ", ".join(values)))
    rows += _nested_rows(run)
    for key, label in (("vbench_version", "vbench"), ("repetitions", "Repetitions"),
                       ("started", "Started"), ("finished", "Finished"), ("status", "Status")):
        if m.get(key) not in (None, ""):
            rows.append((label, str(m.get(key))))
    return rows


def env_diff(runs: list[RunInfo]) -> dict:
    """What differs between the environments of several runs (and what they share)."""
    tables = [dict(env_rows(r)) for r in runs]
    skip = {"Started", "Finished"}
    keys = [k for k in dict.fromkeys(k for t in tables for k in t) if k not in skip]
    differ = [{"key": k, "values": [t.get(k, "\u2013") for t in tables]} for k in keys
              if len({t.get(k) for t in tables}) > 1]
    same = [(k, tables[0][k]) for k in keys if all(t.get(k) == tables[0].get(k) for t in tables)]
    return {"labels": [r.label for r in runs], "differ": differ, "same": same}


def run_view(run: RunInfo) -> dict:
    rec = run.record
    failures = [{k: text(getattr(f, k)) for k in ("variant", "workload", "repetition", "error",
                                                 "console_tail")} for f in rec.failures]
    workloads = [{"name": name, "tool": w.tool,
                  "options": json.dumps(w.options, sort_keys=True, default=str) if w.options else ""}
                 for name, w in rec.workloads.items()]
    return {
        "label": run.label, "path": str(run.path), "status": rec.status or "unknown",
        "accelerator": run.accelerator or "unknown", "badge": run_badge(run),
        "scenario_name": rec.scenario.name, "scenario_file": rec.scenario.file,
        "scenario_text": rec.scenario.text, "description": rec.scenario.description,
        "env": env_rows(run), "drivers": run.drivers(), "proofs": run.proofs(),
        "failures": failures,
        "workloads": workloads, "diffs": xml_diffs(run.variants), "problems": list(run.problems),
        "strip": strip(run),
        "variants": [{"name": n, "device": v.device, "model": v.model, "paravirtual": v.paravirtual,
                      "baseline": v.baseline, "href": xml_href(run, n) if v.domain_xml else ""}
                     for n, v in run.variants.items()],
    }


def xml_diffs(variants: dict[str, Variant]) -> dict:
    """Unified diff of each variant's domain XML against the first variant that has one."""
    xmls = [(n, v.domain_xml) for n, v in variants.items() if v.domain_xml and not v.baseline]
    if not xmls:
        return {"reference": "", "reference_xml": "", "items": []}
    ref_name, ref_xml = xmls[0]
    items = []
    for name, xml in xmls[1:]:
        lines = list(difflib.unified_diff(ref_xml.splitlines(), xml.splitlines(),
                                          fromfile=ref_name, tofile=name, lineterm="", n=2))
        items.append({"variant": name, "identical": not lines,
                      "lines": [{"text": ln, "cls": _diff_cls(ln)} for ln in lines]})
    return {"reference": ref_name, "reference_xml": ref_xml, "items": items}


def _diff_cls(line: str) -> str:
    if line.startswith(("+++", "---", "@@")):
        return "dh"
    return {"+": "da", "-": "dd"}.get(line[:1], "")
