"""The helpers fio, iperf3 and balloon parsing share."""

from __future__ import annotations

import math

import pytest

from vbench.core.errors import ProbeError
from vbench.workloads import balloon, fio, iperf3
from vbench.workloads.common import finite_sample, nonnegative_number, one_line, section


def test_nonnegative_number_accepts_numbers_and_names_what_is_wrong():
    assert nonnegative_number(3, "{shown}", "{value}") == 3.0
    assert nonnegative_number(0.5, "{shown}", "{value}") == 0.5
    for bad, msg in ((True, "nan: True"), ("7", "nan: '7'"), (None, "nan: None"),
                     (-1, "bad: -1"), (math.nan, "bad: nan"), (10**400, "bad: 1" + "0" * 400)):
        with pytest.raises(ProbeError) as exc:
            nonnegative_number(bad, "nan: {shown}", "bad: {value}")
        assert str(exc.value) == msg


def test_finite_sample_and_section_and_one_line():
    assert finite_sample("w", "iops", 2, "IO/s", "x").value == 2.0
    with pytest.raises(ProbeError, match="^tool gave a non-finite iops$"):
        finite_sample("w", "iops", math.inf, "IO/s", "tool gave a non-finite {metric}")
    assert section({"a": {"b": 1}}, "a", "no a") == {"b": 1}
    with pytest.raises(ProbeError, match="^no a$"):
        section({"a": [1]}, "a", "no a")
    assert one_line("a\n  b") == "a b" and one_line("x" * 10, 6) == "xxx..."


def test_the_probes_messages_through_the_shared_helpers():
    with pytest.raises(ProbeError, match=r"^fio's JSON field 'iops' is 'x', not a number"):
        fio._num({"iops": "x"}, "iops")
    with pytest.raises(ProbeError, match=r"^iperf3's JSON field sum\.bytes is -1: output corrupt"):
        iperf3._num({"bytes": -1}, "bytes", "sum")
    with pytest.raises(ProbeError, match=r"^balloon fact t='1' is not a number"):
        balloon._value("t", "1")
    with pytest.raises(ProbeError, match=r"^fio gave a non-finite iops: fio's output is corrupt"):
        fio._sample("w", "iops", math.nan, "IO/s")
    with pytest.raises(ProbeError, match=r"^iperf3's JSON has no 'end' object"):
        iperf3._obj({}, "end")
