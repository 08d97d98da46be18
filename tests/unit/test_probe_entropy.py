"""Entropy probe: the guest sh script's text and the parser of its key=value output.

crafted-entropy-virtio-rng.txt: a Debian 12 guest (kernel 6.1.0-56) with <rng model='virtio'>,
1 MiB from /dev/hwrng in 1.81 s, crng init done at 7.0 s (see LAB-NOTES).
crafted-entropy-no-rng.txt: the same guest without an RNG device: /dev/hwrng exists,
rng_current=none, dd fails with ENODEV, crng init done at 11.4 s.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vbench.core.errors import ProbeError
from vbench.core.metrics import METRICS
from vbench.workloads.entropy import (
    entropy_avail_is_pinned,
    entropy_probe_script,
    parse_entropy,
    parse_entropy_facts,
)

DATA = Path(__file__).resolve().parents[1] / "data"
VIRTIO = (DATA / "crafted-entropy-virtio-rng.txt").read_text()
NO_RNG = (DATA / "crafted-entropy-no-rng.txt").read_text()


def by_metric(samples):
    return {s.metric: s for s in samples}


# ---------------------------------------------------------------- script text


def test_script_reads_hwrng_with_timeout_dd_and_nanosecond_clock():
    script = entropy_probe_script()
    assert (
        "timeout -s INT -k 5 20 dd if=/dev/hwrng of=/dev/null bs=65536 count=16 iflag=fullblock"
        in script
    )
    assert script.count("date +%s%N") == 2
    assert "/sys/class/misc/hw_random" in script and "rng_current" in script
    assert "random: crng init done" in script
    assert "/run/vbench/getrandom_ns" in script
    assert "/proc/uptime" in script and "uname -r" in script
    assert "python" not in script
    assert "@" not in script  # every placeholder was filled
    assert script.strip().endswith("echo probe_done=1")


def test_script_block_count_rounds_up_and_timeout_is_used():
    script = entropy_probe_script(read_bytes=100000, timeout_s=7)
    assert "timeout -s INT -k 5 7 dd" in script and "count=2 " in script


@pytest.mark.parametrize("kwargs", [{"read_bytes": 0}, {"timeout_s": 0}, {"read_bytes": True}])
def test_script_rejects_bad_arguments(kwargs):
    with pytest.raises(ProbeError, match="invalid"):
        entropy_probe_script(**kwargs)


@pytest.mark.skipif(shutil.which("sh") is None, reason="no sh")
def test_script_is_valid_posix_sh():
    result = subprocess.run(
        ["sh", "-n"], input=entropy_probe_script(), text=True, capture_output=True, timeout=10
    )
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- parser


def test_virtio_rng_guest():
    got = by_metric(parse_entropy(VIRTIO, "rng"))
    assert set(got) == {"hwrng_read_rate", "crng_init_time", "getrandom_latency", "entropy_avail"}
    assert got["hwrng_read_rate"].value == pytest.approx(1048576 / 1.812345678)
    assert 570_000 < got["hwrng_read_rate"].value < 590_000
    assert got["crng_init_time"].value == pytest.approx(7.012345)
    assert got["getrandom_latency"].value == pytest.approx(3987654.321)
    assert got["entropy_avail"].value == 256
    for sample in got.values():
        assert sample.unit == METRICS[sample.metric].unit


def test_guest_without_rng_has_no_read_rate():
    got = by_metric(parse_entropy(NO_RNG, "rng"))
    assert "hwrng_read_rate" not in got
    assert got["crng_init_time"].value == pytest.approx(11.402871)
    assert got["getrandom_latency"].value == pytest.approx(8365432.1)
    assert got["entropy_avail"].value == 256


def test_facts_are_raw_strings():
    facts = parse_entropy_facts(VIRTIO)
    assert facts["hwrng_exists"] == "1"
    assert facts["rng_current"] == "virtio_rng.0"
    assert facts["rng_available"] == "virtio_rng.0"  # trailing space stripped
    assert facts["kernel_release"] == "6.1.0-56-amd64"
    assert facts["uptime_s"] == "41.87"
    no_rng = parse_entropy_facts(NO_RNG)
    assert no_rng["rng_current"] == "none"
    assert no_rng["hwrng_read_status"] == "1"
    assert no_rng["hwrng_read_error"] == "dd: error reading '/dev/hwrng': No such device"


def test_timed_out_read_gives_no_rate():
    text = VIRTIO.replace("hwrng_read_status=0", "hwrng_read_status=124")
    assert "hwrng_read_rate" not in by_metric(parse_entropy(text, "w"))


def test_absent_hwrng_and_empty_optional_facts():
    text = (
        "vbench_probe=entropy-1\nhwrng_exists=0\nrng_current=absent\nrng_available=\n"
        "hwrng_read_bytes=0\nhwrng_read_ns=0\nhwrng_read_status=absent\nhwrng_read_error=\n"
        "entropy_avail=256\nkernel_release=6.1.0-56-amd64\ncrng_init_s=\nuptime_s=30.01\n"
        "getrandom_ns=\nprobe_done=1\n"
    )
    assert parse_entropy(text, "w") == [parse_entropy(VIRTIO, "w")[-1]]
    assert parse_entropy_facts(text)["rng_current"] == "absent"


def test_noise_lines_around_output_are_ignored():
    text = "Linux guest 6.1.0-56-amd64 #1 SMP\n" + VIRTIO + "logout\n"
    assert parse_entropy(text, "w") == parse_entropy(VIRTIO, "w")


def test_truncated_output_raises():
    text = VIRTIO.replace("probe_done=1\n", "")
    with pytest.raises(ProbeError, match="truncated"):
        parse_entropy(text, "w")


def test_not_the_probe_raises():
    with pytest.raises(ProbeError, match="did not run"):
        parse_entropy("sh: 1: timeout: not found\n", "w")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("hwrng_read_ns=1812345678", "hwrng_read_ns=1700000000N"),
        ("hwrng_read_ns=1812345678", "hwrng_read_ns=-5"),
        ("hwrng_read_bytes=1048576", "hwrng_read_bytes=0"),
        ("crng_init_s=7.012345", "crng_init_s=seven"),
        ("entropy_avail=256", "entropy_avail=lots"),
    ],
)
def test_malformed_values_raise(old, new):
    with pytest.raises(ProbeError):
        parse_entropy(VIRTIO.replace(old, new), "w")


@pytest.mark.parametrize(
    ("release", "pinned"),
    [
        ("6.1.0-56-amd64", True),
        ("5.18.0", True),
        ("5.17.15-1", False),
        ("5.10.0-28-amd64", False),
        ("4.19.0-26-amd64", False),
        ("6.18.44-fc-v669", True),
    ],
)
def test_entropy_avail_is_pinned(release, pinned):
    assert entropy_avail_is_pinned(release) is pinned


def test_entropy_avail_is_pinned_rejects_garbage():
    with pytest.raises(ProbeError, match="uname -r"):
        entropy_avail_is_pinned("")
