"""The hardware RNG: virtio-rng fed from a host source, or none at all.

In the guest, ``/sys/class/misc/hw_random/rng_current`` names the RNG in use: ``virtio_rng.N``
for virtio-rng, ``none``/absent without one.
"""

from __future__ import annotations

from typing import Any, Literal
from xml.sax.saxutils import escape

from pydantic import Field

from vbench.devices.base import Device, DriverCheck, Fragment, GuestContext, Strict, virtio_or_none

CURRENT = "/sys/class/misc/hw_random/rng_current"


class RngSpec(Strict):
    model: Literal["virtio", "none"] = "virtio"
    backend: str = Field("/dev/urandom", pattern=r"^/dev/(u?random|hwrng)$")
    rate_bytes: int | None = Field(None, gt=0)
    rate_period_ms: int = Field(1000, gt=0)


def rng_xml(model: str, backend: str, rate_bytes: int | None, rate_period_ms: int) -> str:
    if model == "none":
        return ""  # libvirt adds no RNG unless asked
    rate = f"      <rate bytes='{rate_bytes}' period='{rate_period_ms}'/>\n" if rate_bytes else ""
    return (f"    <rng model='virtio'>\n{rate}"
            f"      <backend model='random'>{escape(backend)}</backend>\n"
            f"    </rng>\n")


class Rng(Device):
    kind = "rng"
    spec = RngSpec
    models = virtio_or_none("virtio_rng", "CONFIG_HW_RANDOM_VIRTIO", "virtio-rng")
    optional = False  # virtio-rng by default: guests boot faster with it
    presets = {"virtio": "virtio", "emulated": "none"}
    headline_metrics = ("hwrng_read_rate", "crng_init_time", "getrandom_latency")
    facts_script = f"""echo "rng_current=$(cat {CURRENT} 2>/dev/null || echo absent)"
echo "rng_available=$(cat /sys/class/misc/hw_random/rng_available 2>/dev/null)"
"""

    def xml(self, spec: RngSpec, ctx: GuestContext) -> Fragment:
        return Fragment(devices=rng_xml(spec.model, spec.backend, spec.rate_bytes,
                                        spec.rate_period_ms))

    def check(self, spec: RngSpec, facts: dict[str, Any], ctx: GuestContext) -> DriverCheck:
        cur = facts.get("rng_current", "absent") or "absent"
        if spec.model == "virtio":
            return DriverCheck("rng", "virtio", "virtio_rng", cur, cur.startswith("virtio_rng"),
                               CURRENT)
        return DriverCheck("rng", "none", "none", cur, cur in ("none", "absent"), CURRENT)


DEVICE = Rng()
