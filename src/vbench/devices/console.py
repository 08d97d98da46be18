"""A host-guest byte channel: a virtio-serial port against an emulated 16550 UART.

Both are backed by a UNIX socket that QEMU listens on (``<source mode='bind'>``) in the guest's
own directory: :data:`SOCKET`. virtio: a ``<channel>`` (virtio-serial controller + port named
:data:`PORT_NAME`), in the guest ``/dev/virtio-ports/<name>``, bound to ``virtio_console``.
16550: a second ISA serial port (COM2, 0x2f8), in the guest ``/dev/ttyS1``, bound to the 8250
driver (on an ACPI PC the port is a PNP device whose driver is called ``serial``) and reported as
``uart:16550A`` in ``/proc/tty/driver/serial``; without the device the kernel still has a
placeholder ttyS1 (``uart:unknown``), which the check refuses.
"""

from __future__ import annotations

from typing import Any, Literal
from xml.sax.saxutils import quoteattr

from vbench.core.errors import GuestError
from vbench.devices.base import (ByteChannel, Device, DriverCheck, Fragment, GuestContext, Model,
                                 Strict)

PORT_NAME = "org.vbench.port0"
SOCKET = "chan.sock"
GUEST_DEV = {"virtio": f"/dev/virtio-ports/{PORT_NAME}", "16550": "/dev/ttyS1"}
MAX_SUN_PATH = 107  # sockaddr_un.sun_path holds 108 bytes with the terminating NUL


class ConsoleSpec(Strict):
    model: Literal["virtio", "16550"] = "virtio"


def guest_device(facts: dict[str, Any]) -> str | None:
    """The guest's end of the channel under test: the virtio port if there is one, else ttyS1
    when it is a real 16550 (the placeholder ttyS1 of a guest without one does not count)."""
    if facts.get("console_vport"):
        return GUEST_DEV["virtio"]
    if str(facts.get("console_ttyS1", "")).split(" ")[-1] == "16550A":
        return GUEST_DEV["16550"]
    return None


class Console(Device):
    kind = "console"
    spec = ConsoleSpec
    models = (
        Model("virtio", True, ("virtio_console",), {"CONFIG_VIRTIO_CONSOLE": "virtio_console"}),
        Model("16550", False, ("serial", "serial8250"), {"CONFIG_SERIAL_8250": "8250"}),
    )
    headline_metrics = ("g2h_throughput", "h2g_throughput", "rtt_p50")
    facts_script = r"""p=""
[ -e /dev/virtio-ports/""" + PORT_NAME + r""" ] && p=$(readlink -f /dev/virtio-ports/""" + PORT_NAME + r""")
echo "console_vport=$p"
d=""
[ -e /sys/class/tty/ttyS1/device/driver ] && d=$(basename "$(readlink -f /sys/class/tty/ttyS1/device/driver)")
echo "console_ttyS1=$d $(grep -s '^1:' /proc/tty/driver/serial | tr ' ' '\n' | grep '^uart:' | cut -d: -f2)"
"""

    def xml(self, spec: ConsoleSpec, ctx: GuestContext) -> Fragment:
        assert ctx.files is not None
        sock = str(ctx.files.dir / SOCKET)
        if len(sock.encode()) > MAX_SUN_PATH:
            raise GuestError(f"the console socket path {sock} is longer than a UNIX socket "
                             f"allows ({MAX_SUN_PATH} bytes): use a shorter variant name or "
                             f"VBENCH_HOME")
        src = f"      <source mode='bind' path={quoteattr(sock)}/>\n"
        if spec.model == "virtio":
            return Fragment(devices=(f"    <channel type='unix'>\n{src}"
                                     f"      <target type='virtio' name='{PORT_NAME}'/>\n"
                                     f"    </channel>\n"))
        return Fragment(devices=(f"    <serial type='unix'>\n{src}"
                                 f"      <target type='isa-serial' port='1'>\n"
                                 f"        <model name='isa-serial'/>\n      </target>\n"
                                 f"    </serial>\n"))

    def parse_fact(self, key: str, value: str, facts: dict[str, Any]) -> bool:
        if key not in ("console_vport", "console_ttyS1"):
            return False
        facts[key] = value
        return True

    def check(self, spec: ConsoleSpec, facts: dict[str, Any], ctx: GuestContext) -> DriverCheck:
        model = self.model(spec)
        if spec.model == "virtio":
            vport = facts.get("console_vport", "")
            bound = "virtio_console" in str(facts.get("bound_drivers", "")).split()
            ok = bound and bool(vport)
            found = "virtio_console" if bound else "none"
            detail = f"{GUEST_DEV['virtio']} -> {vport or 'missing'}"
        else:
            driver, _, uart = str(facts.get("console_ttyS1", "")).partition(" ")
            found = driver or "none"
            ok = found in model.drivers and uart.strip() == "16550A"
            detail = f"/dev/ttyS1 uart:{uart.strip() or 'none'}"
        return DriverCheck(self.kind, spec.model, "|".join(model.drivers), found, ok, detail)

    def byte_channel(self, spec: ConsoleSpec, guest: Any, facts: dict[str, Any]) -> ByteChannel | None:
        dev = guest_device(facts)
        return None if dev is None else ByteChannel(guest.dir / SOCKET, dev)


DEVICE = Console()
