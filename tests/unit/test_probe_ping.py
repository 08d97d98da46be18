"""ping probe: command line and parsing of iputils s20221126 output.

The crafted-ping-*.txt files follow iputils' formats exactly: reply times printed with 3/2/1/0
decimals below 1/10/100 ms and above, DUPs included in ping's own rtt line, "+N duplicates" and
"+N errors" in the summary, "pipe N" when replies were outstanding.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vbench.core.errors import ProbeError
from vbench.core.metrics import METRICS
from vbench.workloads.common import nearest_rank
from vbench.workloads.ping import parse_ping, ping_argv

DATA = Path(__file__).resolve().parents[1] / "data"


def read(name: str) -> str:
    return (DATA / name).read_text()


def by_metric(samples):
    return {s.metric: s for s in samples}


# ---------------------------------------------------------------- ping_argv


def test_argv_defaults_no_quiet_flag():
    argv = ping_argv("192.168.100.10", 20, 0.2)
    assert argv == ["ping", "-n", "-c", "20", "-i", "0.2", "-s", "56", "192.168.100.10"]
    assert "-q" not in argv


def test_argv_with_interface_and_size():
    assert ping_argv("10.0.0.2", 5, 1, size=1400, bind_iface="eth0") == [
        "ping", "-n", "-c", "5", "-i", "1", "-s", "1400", "-I", "eth0", "10.0.0.2",
    ]


@pytest.mark.parametrize(("interval", "text"), [(0.01, "0.01"), (0.25, "0.25"), (2.0, "2")])
def test_argv_interval_formatting(interval, text):
    assert ping_argv("h", 1, interval)[5] == text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target": ""},
        {"target": "-f"},
        {"count": 0},
        {"interval": 0},
        {"interval": float("nan")},
        {"size": 70000},
        {"bind_iface": "eth0; reboot"},
    ],
)
def test_argv_rejects_bad_arguments(kwargs):
    args = {"target": "10.0.0.2", "count": 10, "interval": 0.2} | kwargs
    with pytest.raises(ProbeError, match="invalid"):
        ping_argv(**args)


# ---------------------------------------------------------------- nearest rank


def test_nearest_rank_definition():
    values = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert nearest_rank(values, 5) == 15.0  # ceil(0.25) = 1
    assert nearest_rank(values, 30) == 20.0  # ceil(1.5) = 2
    assert nearest_rank(values, 40) == 20.0  # ceil(2.0) = 2
    assert nearest_rank(values, 50) == 35.0  # ceil(2.5) = 3
    assert nearest_rank(values, 100) == 50.0
    assert nearest_rank([7.0], 99) == 7.0
    with pytest.raises(ProbeError):
        nearest_rank([], 50)


# ---------------------------------------------------------------- parse_ping


def test_twenty_replies_no_loss():
    got = by_metric(parse_ping(read("crafted-ping-virtio-20.txt"), "ping-56"))
    assert set(got) == {"rtt_p50", "rtt_p99", "loss"}
    # sorted 20 values: rank 10 is 0.511 ms; p99 -> rank ceil(19.8) = 20, the 1.32 ms first reply
    assert got["rtt_p50"].value == pytest.approx(511.0)
    assert got["rtt_p99"].value == pytest.approx(1320.0)
    assert got["loss"].value == 0.0
    for sample in got.values():
        assert sample.unit == METRICS[sample.metric].unit
        assert sample.workload == "ping-56"


def test_loss_and_duplicate_reply_left_out():
    got = by_metric(parse_ping(read("crafted-ping-e1000-loss.txt"), "w"))
    # 8 replies (the 15.7 ms DUP is not counted): sorted 1.58 1.64 1.69 1.72 1.87 1.95 2.91 12.4
    assert got["rtt_p50"].value == pytest.approx(1720.0)
    assert got["rtt_p99"].value == pytest.approx(12400.0)
    assert got["loss"].value == pytest.approx(20.0)


def test_loss_computed_from_counts_not_rounded_percent():
    text = (
        "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.\n"
        "64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.321 ms\n"
        "\n--- 10.0.0.2 ping statistics ---\n"
        "3 packets transmitted, 1 received, 66.6667% packet loss, time 2043ms\n"
        "rtt min/avg/max/mdev = 0.321/0.321/0.321/0.000 ms\n"
    )
    got = by_metric(parse_ping(text, "w"))
    assert got["loss"].value == pytest.approx(200 / 3)
    assert got["rtt_p50"].value == got["rtt_p99"].value == pytest.approx(321.0)


def test_bound_interface_header_and_slow_replies():
    text = (
        "PING 10.0.0.2 (10.0.0.2) from 10.0.0.1 eth0: 56(84) bytes of data.\n"
        "64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=123 ms\n"
        "64 bytes from 10.0.0.2: icmp_seq=2 ttl=64 time=45.6 ms\n"
        "\n--- 10.0.0.2 ping statistics ---\n"
        "2 packets transmitted, 2 received, 0% packet loss, time 1001ms\n"
    )
    got = by_metric(parse_ping(text, "w"))
    assert got["rtt_p50"].value == pytest.approx(45600.0)
    assert got["rtt_p99"].value == pytest.approx(123000.0)


def test_host_unreachable_raises_with_pings_words():
    with pytest.raises(ProbeError) as info:
        parse_ping(read("crafted-ping-host-unreachable.txt"), "w")
    message = str(info.value)
    assert "\n" not in message
    assert "no replies" in message
    assert "5 packets transmitted, 0 received, +3 errors, 100% packet loss" in message
    assert "From 192.168.100.1 Destination Host Unreachable" in message
    assert message.count("Destination Host Unreachable") == 1


def test_network_unreachable_raises():
    with pytest.raises(ProbeError, match="ping: connect: Network is unreachable"):
        parse_ping(read("crafted-ping-network-unreachable.txt"), "w")


def test_interrupted_output_without_summary_raises():
    text = read("crafted-ping-virtio-20.txt").split("\n\n")[0]
    with pytest.raises(ProbeError, match="no summary line"):
        parse_ping(text, "w")


@pytest.mark.parametrize(
    "summary",
    [
        "0 packets transmitted, 0 received, time 0ms",
        "2 packets transmitted, 3 received, -50% packet loss, time 1001ms",
    ],
)
def test_inconsistent_summary_raises(summary):
    text = "64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.3 ms\n" + summary + "\n"
    with pytest.raises(ProbeError):
        parse_ping(text, "w")


# ---------------------------------------------------------------- the guest's command (g2h)

class _Guest:
    """Runs the command Ping.run gives the guest in a real ``sh``, with a stand-in ``ping`` on
    PATH that prints its first reply, then waits for ``gate`` before it prints the rest."""

    def __init__(self, bin_dir: Path, gate: Path) -> None:
        self.env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
        self.gate = gate
        self.streamed: bytes | None = None
        self.commands: list[str] = []

    def test_ip(self) -> str:
        return "10.254.1.10"

    def run(self, cmd, timeout, check=False):
        import select
        import subprocess

        from vbench.core.metrics import CommandResult

        self.commands.append(cmd)
        proc = subprocess.Popen(["sh", "-c", cmd], stdout=subprocess.PIPE, env=self.env)
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        self.streamed = proc.stdout.read1(4096) if ready else b""  # what crossed "SSH" so far
        self.gate.touch()
        out = self.streamed + proc.stdout.read()
        return CommandResult(cmd, proc.wait(timeout), out.decode(), "", 0.0)


class _Unit:
    def __init__(self, g) -> None:
        self.g = g

    def guest(self, tool):
        return self.g

    def host(self):
        class Host:
            def peer_ip(self):
                return "10.254.1.1"

        return Host()


def test_g2h_ping_lines_stay_in_the_guest_until_ping_ends(tmp_path):
    from vbench.scenario.schema import Workload
    from vbench.workloads.ping import WORKLOAD

    text = read("crafted-ping-virtio-20.txt")
    first, rest = text.split("\n", 1)[0] + "\n", text.split("\n", 1)[1]
    (tmp_path / "first").write_text(first)
    (tmp_path / "rest").write_text(rest)
    fake = tmp_path / "ping"
    fake.write_text(f"#!/bin/sh\ncat {tmp_path}/first\n"
                    f"while [ ! -e {tmp_path}/gate ]; do sleep 0.05; done\n"
                    f"cat {tmp_path}/rest\n")
    fake.chmod(0o755)
    g = _Guest(tmp_path, tmp_path / "gate")
    w = Workload.model_validate({"name": "rtt", "ping": {"count": 20, "directions": ["g2h"]}})
    samples, raw = WORKLOAD.run(None, w, _Unit(g))
    assert g.streamed == b""  # the first reply was printed, and held
    assert "10.254.1.1" in g.commands[0] and "-c 20" in g.commands[0]
    assert by_metric(samples)["rtt_p50"].value == by_metric(parse_ping(text, "x"))["rtt_p50"].value
    assert text.strip() in raw


def test_held_stdout_keeps_the_exit_status_and_lets_stderr_through(tmp_path):
    import subprocess

    from vbench.workloads.common import held_stdout

    cp = subprocess.run(["sh", "-c", held_stdout("printf 'a\\nb\\n'; echo why >&2; exit 3")],
                        capture_output=True, text=True)
    assert (cp.stdout, cp.stderr, cp.returncode) == ("a\nb\n", "why\n", 3)
    script = "{ " + held_stdout("echo a; exit 3") + "\n} >> out; echo rc=$? >> out; echo next >> out"
    cp = subprocess.run(["sh", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert (tmp_path / "out").read_text() == "a\nrc=3\nnext\n"  # the script goes on after it
