"""Byte channel (device console): XML, the driver check, and the byte-stream probe's pure parts."""

from __future__ import annotations

import pytest

from vbench.devices import DEVICES, GuestContext
from vbench.devices.console import ConsoleSpec, guest_device
from vbench.core.errors import ProbeError
from vbench.workloads import bytestream as bs
from vbench.guest.verify import parse_facts

from .test_domain_xml_knobs import _root

CON = DEVICES["console"]


def test_virtio_port_is_a_channel_on_a_listening_unix_socket():
    root = _root("console-virtio")
    ch = root.findall("./devices/channel")
    assert len(ch) == 1 and ch[0].get("type") == "unix"
    assert ch[0].find("source").get("mode") == "bind"
    assert ch[0].find("source").get("path").endswith("/chan.sock")
    assert ch[0].find("target").get("type") == "virtio"
    assert ch[0].find("target").get("name") == "org.vbench.port0"


def test_16550_is_a_second_isa_serial_port_beside_the_console():
    root = _root("console-16550")
    serials = root.findall("./devices/serial")
    assert [s.get("type") for s in serials] == ["unix", "file"]  # the console log stays port 0
    tgt = serials[0].find("target")
    assert (tgt.get("type"), tgt.get("port"), tgt.find("model").get("name")) == ("isa-serial", "1",
                                                                                "isa-serial")
    assert root.findall("./devices/channel") == []


def _facts(text: str) -> dict:
    return parse_facts("kernel=6.1.0\n" + text)


# Facts as the script printed them in real guests (see the integration test).
VIRTIO = "bound_drivers=virtio_console virtio_net\nconsole_vport=/dev/vport3p1\nconsole_ttyS1= unknown\n"
UART = "bound_drivers=virtio_net\nconsole_vport=\nconsole_ttyS1=serial 16550A\n"
NONE = "bound_drivers=virtio_net\nconsole_vport=\nconsole_ttyS1=serial unknown\n"


@pytest.mark.parametrize("model, facts, ok, found", [
    ("virtio", VIRTIO, True, "virtio_console"),
    ("16550", UART, True, "serial"),
    ("16550", NONE, False, "serial"),      # the placeholder ttyS1 of a guest without a UART
    ("virtio", UART, False, "none"),
])
def test_check(model, facts, ok, found):
    c = CON.check(ConsoleSpec(model=model), _facts(facts), GuestContext())
    assert (c.ok, c.found) == (ok, found)


def test_guest_device_follows_the_facts():
    assert guest_device(_facts(VIRTIO)) == "/dev/virtio-ports/org.vbench.port0"
    assert guest_device(_facts(UART)) == "/dev/ttyS1"
    assert guest_device(_facts(NONE)) is None


def test_long_socket_path_is_refused():
    from vbench.devices import DomainFiles
    from pathlib import Path
    from vbench.core.errors import GuestError

    d = Path("/var/lib/vbench/guests/" + "x" * 90)
    files = DomainFiles(d / "o.qcow2", None, d / "c.log", d / "k", d / "i")
    with pytest.raises(GuestError, match="longer than a UNIX socket allows"):
        CON.xml(ConsoleSpec(), GuestContext(files=files))


def test_parse_h2g_line():
    n, secs = bs.parse_h2g("some noise\nh2g 65536 1795740000000000000 1795740002000000000\n")
    assert n == 65536 and secs == pytest.approx(2.0)


@pytest.mark.parametrize("text", ["", "h2g 10 5 5", "h2g x y z", "timeout"])
def test_parse_h2g_refuses_bad_output(text):
    with pytest.raises(ProbeError):
        bs.parse_h2g(text)


def test_samples():
    got = {s.metric: s.value for s in bs.bytestream_samples(
        "w", (1048576, 2.0), (65536, 4.0), [100.0, 200.0, 300.0, 400.0])}
    assert got["g2h_throughput"] == pytest.approx(512.0)
    assert got["h2g_throughput"] == pytest.approx(16.0)
    # nearest rank, as ping takes it: a value measured, never the mean of the two middle ones
    assert got["rtt_p50"] == 200.0 and got["rtt_p99"] == 400.0


def test_commands_quote_the_device_and_set_raw_mode():
    assert bs.g2h_command("/dev/ttyS1", 1024) == (
        "stty -F /dev/ttyS1 raw -echo -icanon min 1 time 0 2>/dev/null; "
        "head -c 1024 /dev/zero > /dev/ttyS1")
    cmd = bs.h2g_command("/dev/ttyS1", 4096, "/run/o")
    assert "head -c 4095" in cmd and cmd.endswith("> /run/o 2>&1 &")
    assert "exec cat <&3 >&3" in bs.echo_command("/dev/virtio-ports/org.vbench.port0")


@pytest.mark.parametrize("name, dev, rate", [
    ("bytestream-serial-16550-tcg.txt", "/dev/ttyS1", 15.65),     # KiB/s: about the line rate
    ("bytestream-virtio-serial-tcg.txt", "/dev/virtio-ports/org.vbench.port0", 356.5),
])
def test_real_guest_h2g_lines_parse(name, dev, rate):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "data" / name).read_text()
    assert text.splitlines()[0] == f"guest device {dev}"
    n, secs = bs.parse_h2g(text)
    assert n == 65536 and n / 1024 / secs == pytest.approx(rate, rel=0.01)
