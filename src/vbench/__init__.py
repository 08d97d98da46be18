"""vbench: how much do paravirtual virtio devices gain over emulated devices on this host?"""

__version__ = "0.1.0"
