"""Property tests: whatever text a tool prints, a probe parser returns samples with finite values
or raises ProbeError -- never another exception (KeyError, ValueError, JSONDecodeError, ...).

Inputs: arbitrary text, arbitrary JSON documents, and mutations of the captured/crafted files in
tests/data (text edits, and structural edits of the JSON: a value replaced or a key deleted).
Example counts are kept small so the whole unit suite stays fast.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vbench.core.errors import ProbeError
from vbench.core.metrics import Sample
from vbench.workloads.balloon import (
    FACT_KEYS,
    balloon_samples,
    mem_total_mib,
    parse_meminfo,
    parse_vm_rss_mib,
)
from vbench.workloads.entropy import entropy_avail_is_pinned, parse_entropy, parse_entropy_facts
from vbench.workloads.fio import fio_total_ios, fio_version, parse_fio_error, parse_fio_json
from vbench.workloads.iperf3 import parse_iperf3_json
from vbench.workloads.ping import parse_ping

DATA = Path(__file__).resolve().parents[1] / "data"
FIO_FILES = sorted(DATA.glob("fio-*"))
IPERF_FILES = sorted(DATA.glob("iperf3-*"))
PING_FILES = sorted(DATA.glob("crafted-ping-*"))
ENTROPY_FILES = sorted(DATA.glob("crafted-entropy-*"))

SAMPLE_PARSERS = {
    "fio": lambda text: parse_fio_json(text, "w"),
    "iperf3": lambda text: parse_iperf3_json(text, "w"),
    "ping": lambda text: parse_ping(text, "w"),
    "entropy": lambda text: parse_entropy(text, "w"),
}

FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
MUTATIONS = settings(FAST, max_examples=150)

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def assert_samples_or_probe_error(parse, text) -> None:
    try:
        samples = parse(text)
    except ProbeError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(samples, list)
    for sample in samples:
        assert isinstance(sample, Sample)
        assert isinstance(sample.value, float) and math.isfinite(sample.value)
        assert sample.metric and sample.unit and sample.workload == "w"


def returns_or_probe_error(fn, arg, kind):
    try:
        value = fn(arg)
    except ProbeError:
        return None
    assert isinstance(value, kind)
    return value


# ---------------------------------------------------------------- arbitrary text


@FAST
@given(st.text(max_size=400))
def test_arbitrary_text(text):
    for parse in SAMPLE_PARSERS.values():
        assert_samples_or_probe_error(parse, text)
    assert isinstance(parse_fio_error(text), str)
    total = returns_or_probe_error(fio_total_ios, text, int)
    assert total is None or total >= 0
    returns_or_probe_error(fio_version, text, str)
    returns_or_probe_error(parse_entropy_facts, text, dict)
    returns_or_probe_error(entropy_avail_is_pinned, text, bool)
    meminfo = returns_or_probe_error(parse_meminfo, text, dict)
    assert meminfo is None or all(isinstance(v, int) and v >= 0 for v in meminfo.values())
    for fn in (mem_total_mib, parse_vm_rss_mib):
        value = returns_or_probe_error(fn, text, float)
        assert value is None or math.isfinite(value)


@FAST
@given(st.lists(st.sampled_from([
    "64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.412 ms",
    "64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=99999999999.9 ms (DUP!)",
    "10 packets transmitted, 9 received, 10% packet loss, time 9012ms",
    "1 packets transmitted, 0 received, +1 errors, 100% packet loss, time 0ms",
    "99999999999999999999 packets transmitted, 1 received, 0% packet loss",
    "vbench_probe=entropy-1", "probe_done=1", "hwrng_read_status=0", "hwrng_read_bytes=9" * 5,
    "hwrng_read_ns=0", "crng_init_s=1.5", "getrandom_ns=" + "9" * 30, "entropy_avail=256",
    "MemTotal: 1024 kB", "VmRSS:\t" + "9" * 40 + " kB", "fio-3.33", "{", "}", "",
]), max_size=12))
def test_plausible_line_soup(lines):
    text = "\n".join(lines)
    for parse in SAMPLE_PARSERS.values():
        assert_samples_or_probe_error(parse, text)
    for fn in (mem_total_mib, parse_vm_rss_mib):
        returns_or_probe_error(fn, text, float)


# ---------------------------------------------------------------- arbitrary JSON


@FAST
@given(json_values)
def test_arbitrary_json_documents(doc):
    text = json.dumps(doc)
    assert_samples_or_probe_error(SAMPLE_PARSERS["fio"], text)
    assert_samples_or_probe_error(SAMPLE_PARSERS["iperf3"], text)
    returns_or_probe_error(fio_total_ios, text, int)


@FAST
@given(
    st.lists(json_values, max_size=3),
    st.dictionaries(
        st.sampled_from(["read", "write", "error", "usr_cpu", "sys_cpu", "jobname"]), json_values
    ),
)
def test_json_shaped_like_fio(jobs, job):
    for doc in ({"jobs": jobs}, {"jobs": [job]}, {"jobs": [job, job]}):
        text = json.dumps(doc)
        assert_samples_or_probe_error(SAMPLE_PARSERS["fio"], text)
        returns_or_probe_error(fio_total_ios, text, int)


@FAST
@given(json_values, json_values, st.sampled_from(["TCP", "UDP", "SCTP", None]), json_values)
def test_json_shaped_like_iperf3(end, cpu, protocol, reverse):
    doc = {
        "start": {"test_start": {"protocol": protocol, "reverse": reverse}},
        "end": {"sum_received": end, "sum_sent": end, "sum": end, "cpu_utilization_percent": cpu},
    }
    assert_samples_or_probe_error(SAMPLE_PARSERS["iperf3"], json.dumps(doc))


# ---------------------------------------------------------------- mutated captured files


def _paths(node, prefix=()):
    """Every path (tuple of keys/indices) into a JSON document."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


def _mutate(doc, path, new_value, delete):
    doc = copy.deepcopy(doc)
    if not path:
        return new_value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = new_value
    return doc


JSON_FILES = {
    path.name: (path.read_text(), "fio" if path.name.startswith("fio") else "iperf3")
    for path in FIO_FILES + IPERF_FILES
    if path.suffix == ".json"  # fio-3.33-*help*.txt are fio's option lists, not tool output
}


def _json_of(text):
    """The JSON document of a captured file (some have tool messages before it)."""
    start = 0 if text.startswith("{") else text.index("\n{") + 1
    return json.JSONDecoder().raw_decode(text, start)[0]


@MUTATIONS
@given(st.data())
def test_structurally_mutated_json_files(data):
    name = data.draw(st.sampled_from(sorted(JSON_FILES)))
    text, kind = JSON_FILES[name]
    doc = _json_of(text)
    paths = list(_paths(doc))
    path = data.draw(st.sampled_from(paths))
    mutated = _mutate(doc, path, data.draw(json_values), data.draw(st.booleans()))
    out = json.dumps(mutated, indent=2)
    assert_samples_or_probe_error(SAMPLE_PARSERS[kind], out)
    if kind == "fio":
        returns_or_probe_error(fio_total_ios, out, int)


ALL_TEXT_FILES = {
    path.name: path.read_text() for path in FIO_FILES + IPERF_FILES + PING_FILES + ENTROPY_FILES
}


def _kind(name: str) -> str:
    for kind in SAMPLE_PARSERS:
        if kind in name:
            return kind
    raise AssertionError(name)


@MUTATIONS
@given(st.data())
def test_text_mutated_files(data):
    name = data.draw(st.sampled_from(sorted(ALL_TEXT_FILES)))
    text = ALL_TEXT_FILES[name]
    start = data.draw(st.integers(0, len(text)))
    stop = data.draw(st.integers(start, min(len(text), start + 200)))
    insert = data.draw(st.text(alphabet=st.sampled_from('0123456789.-e"{}[]:, \nx=N'), max_size=20))
    mutated = text[:start] + insert + text[stop:]
    assert_samples_or_probe_error(SAMPLE_PARSERS[_kind(name)], mutated)
    assert_samples_or_probe_error(SAMPLE_PARSERS[_kind(name)], text[:start])


@FAST
@given(st.data())
def test_entropy_values_mutated(data):
    text = ALL_TEXT_FILES[data.draw(st.sampled_from([p.name for p in ENTROPY_FILES]))]
    lines = text.splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    key = lines[index].split("=", 1)[0]
    lines[index] = key + "=" + data.draw(st.text(max_size=25))
    assert_samples_or_probe_error(SAMPLE_PARSERS["entropy"], "\n".join(lines))


# ---------------------------------------------------------------- balloon facts


@FAST
@given(
    st.dictionaries(
        st.sampled_from(FACT_KEYS) | st.text(max_size=5), json_values | st.floats(), max_size=8
    )
)
def test_balloon_samples_any_facts(facts):
    try:
        samples = balloon_samples("w", facts)
    except ProbeError:
        return
    assert all(isinstance(s.value, float) and math.isfinite(s.value) for s in samples)
