"""One colour per variant on every page (report and history), and the verdict colours.

A variant's colour depends on the variant alone (its name, and whether it is paravirtual or the
host baseline), never on which other variants a page happens to show: virtio-blk is the same blue
in a report, in a two-run report and on the scenario's history page. Paravirtual variants take
blues and greens, emulated ones oranges, reds and browns, the host-native baseline grey. Known
names have fixed colours; any other name is hashed into its family (and moved to the next free
colour if two variants of one page would share one).
"""

from __future__ import annotations

import zlib
from typing import Iterable

HOST_COLOUR = "#7f7f7f"
PV_COLOURS = ("#1f77b4", "#2ca02c", "#17becf", "#4c72b0", "#9467bd", "#006d5b")
EMU_COLOURS = ("#ff7f0e", "#d62728", "#8c564b", "#e377c2", "#bcbd22", "#b8860b")
KNOWN = {
    "virtio-blk": PV_COLOURS[0], "virtio-net": PV_COLOURS[0], "virtio-rng": PV_COLOURS[0],
    "virtio-balloon": PV_COLOURS[0], "virtio-scsi": PV_COLOURS[1], "virtio-net-mq": PV_COLOURS[2],
    "sata": EMU_COLOURS[0], "e1000": EMU_COLOURS[0], "no-rng": EMU_COLOURS[0],
    "no-balloon": EMU_COLOURS[0], "ide": EMU_COLOURS[1], "e1000e": EMU_COLOURS[1],
    "rtl8139": EMU_COLOURS[2], "scsi-lsi": EMU_COLOURS[3],
}
VERDICT_COLOURS = {"better": "#1a7f37", "worse": "#b42318"}
NEUTRAL = "#6e7781"
RUN_MARKERS = ("o", "s", "D", "^", "v", "P", "X")


def verdict_colour(verdict: str) -> str:
    return VERDICT_COLOURS.get(verdict, NEUTRAL)


class Palette:
    """Colours of the variants of one page:
    ``Palette([(name, paravirtual, baseline, device kind), ...])``. Variants of different device
    kinds never share a panel, so only variants of one kind need distinct colours."""

    def __init__(self, variants: Iterable[tuple[str, bool, bool, str]]):
        self.colour: dict[str, str] = {}
        used: dict[str, set[str]] = {}
        # known names first, so that an unknown one never takes a known one's colour
        items = sorted(variants, key=lambda v: (v[0] not in KNOWN, v[0]))
        for name, para, base, device in items:
            taken = used.setdefault(device, set())
            self.colour[name] = self._pick(name, para, base, taken)
            taken.add(self.colour[name])

    @staticmethod
    def _pick(name: str, para: bool, base: bool, used: set[str]) -> str:
        if base:
            return HOST_COLOUR
        family = PV_COLOURS if para else EMU_COLOURS
        first = KNOWN.get(name)
        start = family.index(first) if first in family else zlib.crc32(name.encode()) % len(family)
        for k in range(len(family)):
            c = family[(start + k) % len(family)]
            if c not in used:
                return c
        return family[start]

    def __getitem__(self, variant: str) -> str:
        return self.colour.get(variant, HOST_COLOUR)
