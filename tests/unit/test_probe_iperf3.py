"""iperf3 probe: command lines and parsing of real iperf3 3.12 JSON (tests/data).

- iperf3-tcp-*-e1000-slirp.json, iperf3-error-connection-refused.json: captured by the project.
- iperf3-udp-200M-loopback.json, iperf3-udp-unlimited-loopback.json,
  iperf3-error-server-busy.json: iperf3 3.12 on the dev host over 127.0.0.1 (the busy one is a
  second client started while a first test was running; iperf3 -J exited 0 there too).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vbench.core.errors import ProbeError
from vbench.core.metrics import METRICS
from vbench.workloads.iperf3 import iperf3_client_argv, iperf3_server_argv, parse_iperf3_json

DATA = Path(__file__).resolve().parents[1] / "data"
H2G = (DATA / "iperf3-tcp-host-to-guest-e1000-slirp.json").read_text()
REVERSE = (DATA / "iperf3-tcp-reverse-2streams-e1000-slirp.json").read_text()
UDP = (DATA / "iperf3-udp-200M-loopback.json").read_text()
UDP_LOSSY = (DATA / "iperf3-udp-unlimited-loopback.json").read_text()
REFUSED = (DATA / "iperf3-error-connection-refused.json").read_text()
BUSY = (DATA / "iperf3-error-server-busy.json").read_text()


def by_metric(samples):
    out = {s.metric: s for s in samples}
    assert len(out) == len(samples)
    return out


# ---------------------------------------------------------------- command lines


def test_client_argv_defaults():
    assert iperf3_client_argv("10.0.0.2", 5201, 10, 2) == [
        "iperf3", "-c", "10.0.0.2", "-p", "5201", "-t", "10", "-O", "2", "-P", "1",
        "-J", "--connect-timeout", "5000",
    ]


def test_client_argv_all_options():
    argv = iperf3_client_argv(
        "10.0.0.2", 5202, 5, 1, parallel=4, reverse=True, udp=True, bitrate="500M",
        length=1400, bind="10.0.0.1", connect_timeout_ms=2000,
    )
    assert argv == [
        "iperf3", "-c", "10.0.0.2", "-p", "5202", "-t", "5", "-O", "1", "-P", "4",
        "-J", "--connect-timeout", "2000", "-R", "-u", "-b", "500M", "-l", "1400",
        "-B", "10.0.0.1",
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 0},
        {"port": 70000},
        {"duration": 0},
        {"omit": -1},
        {"parallel": 0},
        {"parallel": 129},
        {"bitrate": "fast"},
        {"bitrate": "10 M"},
        {"length": 0},
        {"server": ""},
        {"server": "-R"},
        {"server": "a b"},
        {"bind": "x y"},
        {"duration": True},
    ],
)
def test_client_argv_rejects_bad_arguments(kwargs):
    args = {"server": "10.0.0.2", "port": 5201, "duration": 10, "omit": 1} | kwargs
    with pytest.raises(ProbeError, match="invalid"):
        iperf3_client_argv(**args)


@pytest.mark.parametrize("bitrate", ["0", "100M", "1G", "2.5G", "100M/64", "800k"])
def test_client_argv_accepts_iperf3_bitrates(bitrate):
    assert iperf3_client_argv("h", 5201, 1, 0, bitrate=bitrate)[-2:] == ["-b", bitrate]


def test_server_argv():
    assert iperf3_server_argv("10.0.0.1", 5201) == [
        "iperf3", "-s", "-1", "-B", "10.0.0.1", "-p", "5201",
    ]
    assert iperf3_server_argv("::1", 5202, one_off=False) == [
        "iperf3", "-s", "-B", "::1", "-p", "5202",
    ]
    with pytest.raises(ProbeError):
        iperf3_server_argv("10.0.0.1", 0)


# ---------------------------------------------------------------- TCP


def test_tcp_host_to_guest():
    got = by_metric(parse_iperf3_json(H2G, "tcp-h2g-1"))
    assert set(got) == {"throughput", "retransmits", "retransmits_per_gb", "sender_cpu",
                        "receiver_cpu"}
    # end.sum_received.bits_per_second: the receiver's view
    assert got["throughput"].value == pytest.approx(774.26738726791)
    assert got["retransmits"].value == 1
    # 1 retransmit over the 482344960 bytes of end.sum_sent
    assert got["retransmits_per_gb"].value == pytest.approx(1 / 0.482344960)
    # not reversed: the client (host_total) sends, the server (remote_total) receives
    assert got["sender_cpu"].value == pytest.approx(2.39438287439378)
    assert got["receiver_cpu"].value == pytest.approx(65.1043781699466)
    assert {s.unit for s in got.values()} >= {"Mbit/s", "count", "%"}


def test_tcp_reverse_two_streams_swaps_cpu_roles():
    got = by_metric(parse_iperf3_json(REVERSE, "tcp-g2h-2"))
    assert got["throughput"].value == pytest.approx(429.969519951232)
    assert got["retransmits"].value == 0
    # -R: the server (remote_total) sends, the client (host_total) receives
    assert got["sender_cpu"].value == pytest.approx(35.6157281179464)
    assert got["receiver_cpu"].value == pytest.approx(19.56897643005677)


def test_known_metric_units_match_table():
    for text in (H2G, REVERSE, UDP, UDP_LOSSY):
        for sample in parse_iperf3_json(text, "w"):
            if sample.metric in METRICS:
                assert sample.unit == METRICS[sample.metric].unit


@pytest.mark.parametrize(
    ("text", "end_key"), [(H2G, "sum_sent"), (REVERSE, "sum_received"), (UDP, "sum")]
)
def test_end_sums_already_exclude_omitted_intervals(text, end_key):
    doc = json.loads(text)
    kept = [i["sum"] for i in doc["intervals"] if not i["sum"]["omitted"]]
    omitted = [i["sum"] for i in doc["intervals"] if i["sum"]["omitted"]]
    assert len(omitted) == 1 == doc["start"]["test_start"]["omit"]
    # the end sum of the client's own side equals the non-omitted intervals, so it is already
    # free of the -O period and the parser must not subtract anything
    assert sum(i["bytes"] for i in kept) == doc["end"][end_key]["bytes"]
    assert sum(i["bytes"] for i in kept) != sum(i["bytes"] for i in kept + omitted)


def test_tcp_without_retransmits_field():
    doc = json.loads(H2G)
    del doc["end"]["sum_sent"]["retransmits"]
    got = by_metric(parse_iperf3_json(json.dumps(doc), "w"))
    assert "retransmits" not in got and "throughput" in got


def test_tcp_without_cpu_block():
    doc = json.loads(H2G)
    del doc["end"]["cpu_utilization_percent"]
    assert [s.metric for s in parse_iperf3_json(json.dumps(doc), "w")] == [
        "throughput", "retransmits", "retransmits_per_gb",
    ]


def test_tcp_zero_bytes_received_raises():
    doc = json.loads(H2G)
    doc["end"]["sum_received"]["bytes"] = 0
    with pytest.raises(ProbeError, match="received 0 bytes"):
        parse_iperf3_json(json.dumps(doc), "w")


# ---------------------------------------------------------------- UDP


def test_udp_at_200m_no_loss():
    got = by_metric(parse_iperf3_json(UDP, "udp-200m"))
    assert set(got) == {"throughput", "pps", "loss", "sender_cpu", "receiver_cpu"}
    assert got["throughput"].value == pytest.approx(200.001799997)  # end.sum_received
    assert got["pps"].value == pytest.approx(53572 / 3.000005)  # end.sum packets / seconds
    assert got["pps"].unit == "pkt/s"
    assert got["loss"].value == 0
    assert got["sender_cpu"].value == pytest.approx(10.385177413634922)
    assert got["receiver_cpu"].value == pytest.approx(6.564855459134147)


def test_udp_unlimited_with_loss():
    got = by_metric(parse_iperf3_json(UDP_LOSSY, "udp-max"))
    assert got["throughput"].value == pytest.approx(3266.4831142926855)
    assert got["pps"].value == pytest.approx(880910 / 3.000052)
    assert got["loss"].value == pytest.approx(0.9919288008990703)
    assert got["loss"].unit == "%"


def test_udp_without_sum_received_falls_back_to_sum():
    doc = json.loads(UDP_LOSSY)
    del doc["end"]["sum_received"]
    got = by_metric(parse_iperf3_json(json.dumps(doc), "w"))
    assert got["throughput"].value == pytest.approx(3288.726281698291)


# ---------------------------------------------------------------- errors


def test_connection_refused_with_exit_status_appended():
    with pytest.raises(ProbeError) as info:
        parse_iperf3_json(REFUSED, "w")
    message = str(info.value)
    assert "\n" not in message
    assert "unable to connect to server: Connection refused" in message
    assert "server was started" in message


def test_server_busy():
    with pytest.raises(ProbeError) as info:
        parse_iperf3_json(BUSY, "w")
    assert "the server is busy running a test. try again later" in str(info.value)
    assert "own port" in str(info.value)


def test_error_key_wins_even_with_results():
    doc = json.loads(H2G)
    doc["error"] = "control socket has closed unexpectedly"
    with pytest.raises(ProbeError, match="control socket has closed unexpectedly"):
        parse_iperf3_json(json.dumps(doc), "w")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "no JSON"),
        ("iperf3: error - unable to connect to server: Connection refused\n", "no JSON"),
        (H2G[:2000], "truncated"),
        ("[1, 2]", "no JSON"),
        ('{"start": {}, "end": {}}', "test_start"),
        ('{"start": {"test_start": {"protocol": "TCP"}}, "end": {}}', "empty 'end'"),
        ('{"start": {"test_start": {"protocol": "SCTP"}}, "end": {"x": 1}}', "only TCP and UDP"),
    ],
)
def test_bad_outputs(text, match):
    with pytest.raises(ProbeError, match=match):
        parse_iperf3_json(text, "w")
