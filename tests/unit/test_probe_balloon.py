"""Balloon helpers: /proc/meminfo, /proc/PID/status and the balloon facts -> samples.

The meminfo and status texts are in the exact kernel 6.1 format; numbers follow LAB-NOTES
(1 GiB q35 guest: MemTotal 960 MiB before, 448 MiB after inflating to 512 MiB).
"""

from __future__ import annotations

import pytest

from vbench.core.errors import ProbeError
from vbench.core.metrics import METRICS
from vbench.workloads.balloon import (
    FACT_KEYS,
    balloon_samples,
    mem_total_mib,
    parse_meminfo,
    parse_vm_rss_mib,
)

MEMINFO = """\
MemTotal:         983040 kB
MemFree:          757612 kB
MemAvailable:     812884 kB
Buffers:            9332 kB
Cached:            84576 kB
SwapCached:            0 kB
Active(anon):       1204 kB
Inactive(anon):    60388 kB
HugePages_Total:       0
HugePages_Free:        0
Hugepagesize:       2048 kB
DirectMap4k:      100224 kB
"""

STATUS = """\
Name:\tqemu-system-x86
Umask:\t0077
State:\tS (sleeping)
Pid:\t4242
VmPeak:\t 2896740 kB
VmSize:\t 2831204 kB
VmHWM:\t 1711104 kB
VmRSS:\t 1078272 kB
RssAnon:\t 1051648 kB
Threads:\t9
"""


def test_parse_meminfo_kb_lines_only():
    values = parse_meminfo(MEMINFO)
    assert values["MemTotal"] == 983040
    assert values["Active(anon)"] == 1204
    assert values["Hugepagesize"] == 2048
    assert "HugePages_Total" not in values
    assert len(values) == 10


def test_mem_total_mib():
    assert mem_total_mib(MEMINFO) == 960.0
    assert mem_total_mib(MEMINFO.replace("983040", "458752")) == 448.0


def test_mem_total_missing_or_garbage():
    with pytest.raises(ProbeError, match="no MemTotal"):
        mem_total_mib("MemFree:  1000 kB\n")
    with pytest.raises(ProbeError, match="/proc/meminfo"):
        parse_meminfo("cat: /proc/meminfo: No such file or directory\n")


def test_parse_vm_rss_mib():
    assert parse_vm_rss_mib(STATUS) == pytest.approx(1053.0)
    with pytest.raises(ProbeError, match="VmRSS"):
        parse_vm_rss_mib("Name:\tkthreadd\nState:\tS (sleeping)\n")


def test_balloon_samples_all_facts():
    facts = {
        "guest_mem_before": 960.0,
        "guest_mem_shrunk": 448.0,
        "guest_mem_after": 960.0,
        "host_rss_before": 1671.0,
        "host_rss_shrunk": 1053.0,
        "balloon_inflate_time": 0.76,
        "balloon_deflate_time": 0.26,
    }
    samples = balloon_samples("inflate-512", facts)
    got = {s.metric: s for s in samples}
    assert set(got) == set(FACT_KEYS) | {"host_mem_returned"}
    assert got["host_mem_returned"].value == pytest.approx(618.0)
    assert got["balloon_inflate_time"].value == 0.76
    for sample in samples:
        assert sample.workload == "inflate-512"
        assert sample.unit == METRICS[sample.metric].unit
        assert isinstance(sample.value, float)


def test_balloon_samples_missing_facts_skipped():
    facts = {"host_rss_before": 976, "host_rss_shrunk": None, "guest_mem_before": 960}
    got = {s.metric: s.value for s in balloon_samples("w", facts)}
    assert got == {"guest_mem_before": 960.0, "host_rss_before": 976.0}
    assert balloon_samples("w", {}) == []


def test_rss_growth_gives_negative_returned_memory():
    facts = {"host_rss_before": 960, "host_rss_shrunk": 976}
    got = {s.metric: s.value for s in balloon_samples("w", facts)}
    assert got["host_mem_returned"] == -16.0


@pytest.mark.parametrize(
    "facts",
    [
        {"host_rss_after": 1.0},
        {"guest_mem_before": "960"},
        {"guest_mem_before": True},
        {"balloon_inflate_time": -0.1},
        {"balloon_inflate_time": float("inf")},
        {"host_rss_before": 10**400},
    ],
)
def test_balloon_samples_rejects_bad_facts(facts):
    with pytest.raises(ProbeError):
        balloon_samples("w", facts)
