"""Guest kernel check: option states from a kernel config or, failing that, from modules.builtin.

Crafted inputs live in tests/data/crafted-kconfig-*: a config shaped like Debian 12's with
CONFIG_SCSI_VIRTIO deliberately missing, and a modules.builtin of a kernel with virtio built in.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from vbench.commands.guests import guest_check
from vbench.guest import kconfig
from vbench.core.errors import ImageError
from vbench.scenario.schema import load_scenario_text

DATA = Path(__file__).resolve().parents[1] / "data"
CONFIG = (DATA / "crafted-kconfig-config.txt").read_text()
BUILTIN = (DATA / "crafted-kconfig-modules.builtin.txt").read_text()

# The source guide's list of virtio options, in its order.
GUIDE_OPTIONS = [
    "CONFIG_BLK_MQ_VIRTIO", "CONFIG_VIRTIO_VSOCKETS", "CONFIG_VIRTIO_VSOCKETS_COMMON",
    "CONFIG_NET_9P_VIRTIO", "CONFIG_VIRTIO_BLK", "CONFIG_SCSI_VIRTIO", "CONFIG_VIRTIO_NET",
    "CONFIG_VIRTIO_CONSOLE", "CONFIG_HW_RANDOM_VIRTIO", "CONFIG_DRM_VIRTIO_GPU", "CONFIG_VIRTIO",
    "CONFIG_VIRTIO_MENU", "CONFIG_VIRTIO_PCI", "CONFIG_VIRTIO_PCI_LEGACY", "CONFIG_VIRTIO_PMEM",
    "CONFIG_VIRTIO_BALLOON", "CONFIG_VIRTIO_MEM", "CONFIG_VIRTIO_INPUT", "CONFIG_VIRTIO_MMIO",
    "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES", "CONFIG_RPMSG_VIRTIO", "CONFIG_VIRTIO_FS",
    "CONFIG_CRYPTO_DEV_VIRTIO",
]

DISK_SCENARIO = """\
name: k
device: disk
variants:
  - {name: vblk, disk: {bus: virtio}}
  - {name: vscsi, disk: {bus: scsi}}
  - {name: sata, disk: {bus: sata}}
workloads:
  - {name: rr, fio: {rw: randread}}
"""


# ---- parse_config -------------------------------------------------------------------------------

def test_parse_config_y_m_and_unset():
    v = kconfig.parse_config(CONFIG)
    assert v["CONFIG_VIRTIO"] == "y" and v["CONFIG_VIRTIO_PCI"] == "y"
    assert v["CONFIG_VIRTIO_BLK"] == "m" and v["CONFIG_8139CP"] == "m"
    for unset in ("CONFIG_SCSI_VIRTIO", "CONFIG_VIRTIO_PMEM", "CONFIG_RPMSG_VIRTIO",
                  "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES"):
        assert unset not in v  # '# CONFIG_X is not set' is absent, not a value
    # Only y/m options: strings, numbers and 'n' are not states.
    assert "CONFIG_HZ" not in v and "CONFIG_CC_VERSION_TEXT" not in v
    assert "CONFIG_LOCALVERSION" not in v and "CONFIG_LOWERCASE_VALUE" not in v
    assert set(v.values()) == {"y", "m"}


def test_parse_config_exact_small_input():
    text = "# comment\nCONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D=n\nCONFIG_E=\"y\"\n" \
           "CONFIG_F=y   \nCONFIG_G=ym\n\nnot a line\n"
    assert kconfig.parse_config(text) == {"CONFIG_A": "y", "CONFIG_B": "m", "CONFIG_F": "y"}


def test_parse_config_empty():
    assert kconfig.parse_config("") == {}


# ---- from_modules ---------------------------------------------------------------------------------

def test_from_modules_builtin_and_loadable():
    v = kconfig.from_modules(BUILTIN, {"virtio_scsi", "virtio_net", "virtio_balloon", "e1000",
                                       "8139cp", "virtio-gpu", "unrelated_mod"})
    assert v["CONFIG_VIRTIO"] == "y" and v["CONFIG_VIRTIO_PCI"] == "y"
    assert v["CONFIG_VIRTIO_BLK"] == "y"
    assert v["CONFIG_HW_RANDOM_VIRTIO"] == "y"  # virtio-rng.ko: '-' and '_' are the same
    assert v["CONFIG_SATA_AHCI"] == "y"
    assert v["CONFIG_SCSI_VIRTIO"] == "m" and v["CONFIG_VIRTIO_NET"] == "m"
    assert v["CONFIG_VIRTIO_BALLOON"] == "m" and v["CONFIG_E1000"] == "m"
    assert v["CONFIG_8139CP"] == "m"
    assert v["CONFIG_DRM_VIRTIO_GPU"] == "m"  # virtio-gpu given with a '-'
    assert "CONFIG_VIRTIO_FS" not in v and "CONFIG_E1000E" not in v and "CONFIG_ATA_PIIX" not in v


def test_from_modules_builtin_wins_over_module():
    v = kconfig.from_modules("kernel/drivers/block/virtio_blk.ko\n", {"virtio_blk"})
    assert v == {"CONFIG_VIRTIO_BLK": "y"}


def test_from_modules_compressed_names():
    v = kconfig.from_modules("kernel/drivers/net/virtio_net.ko.xz\n", set())
    assert v == {"CONFIG_VIRTIO_NET": "y"}


def test_from_modules_nothing():
    assert kconfig.from_modules("", set()) == {}


# ---- states ---------------------------------------------------------------------------------------

def test_seed_options_are_the_guides_23():
    assert list(kconfig.SEED_OPTIONS) == GUIDE_OPTIONS
    assert len(kconfig.SEED_OPTIONS) == 23


def test_states_lists_every_seed_option_with_its_state():
    rows = kconfig.states(kconfig.parse_config(CONFIG))
    assert [r.option for r in rows] == GUIDE_OPTIONS
    by = {r.option: r.state for r in rows}
    assert by["CONFIG_BLK_MQ_VIRTIO"] == "built-in"
    assert by["CONFIG_VIRTIO_BLK"] == "module"
    assert by["CONFIG_SCSI_VIRTIO"] == "missing"
    assert [o for o, s in by.items() if s == "missing"] == [
        "CONFIG_SCSI_VIRTIO", "CONFIG_VIRTIO_PMEM", "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES",
        "CONFIG_RPMSG_VIRTIO"]
    assert [o for o, s in by.items() if s == "built-in"] == [
        "CONFIG_BLK_MQ_VIRTIO", "CONFIG_VIRTIO", "CONFIG_VIRTIO_MENU", "CONFIG_VIRTIO_PCI",
        "CONFIG_VIRTIO_PCI_LEGACY"]
    assert {r.source for r in rows} == {"config"}


def test_states_of_nothing_are_all_missing():
    rows = kconfig.states({}, source="modules")
    assert len(rows) == 23 and {r.state for r in rows} == {"missing"}
    assert {r.source for r in rows} == {"modules"}


# ---- scenario needs -------------------------------------------------------------------------------

def test_missing_for_scenario_names_the_variant_and_option():
    scn = load_scenario_text(DISK_SCENARIO)
    values = kconfig.parse_config(CONFIG)
    assert kconfig.missing_for_scenario(scn, values) == {"vscsi": ["CONFIG_SCSI_VIRTIO"]}


def test_needed_options_per_variant():
    scn = load_scenario_text(DISK_SCENARIO)
    need = kconfig.needed_options(scn)
    base = {"CONFIG_VIRTIO_PCI", "CONFIG_VIRTIO_BLK", "CONFIG_VIRTIO_NET",
            "CONFIG_HW_RANDOM_VIRTIO"}  # boot disk, SSH NIC, default virtio-rng
    assert set(need["vblk"]) == base
    assert set(need["vscsi"]) == base | {"CONFIG_SCSI_VIRTIO"}
    assert set(need["sata"]) == base | {"CONFIG_SATA_AHCI"}
    assert need["sata"] == sorted(need["sata"])


def test_nothing_missing_when_all_present():
    scn = load_scenario_text(DISK_SCENARIO)
    values = {**kconfig.parse_config(CONFIG), "CONFIG_SCSI_VIRTIO": "m"}
    assert kconfig.missing_for_scenario(scn, values) == {}


def test_nic_scenario_needs_the_emulated_driver():
    scn = load_scenario_text("name: n\ndevice: nic\nvariants:\n  - {name: r, nic: {model: rtl8139}}\n"
                             "  - {name: e, nic: {model: e1000e}}\n"
                             "workloads:\n  - {name: p, ping: {count: 10}}\n")
    values = kconfig.parse_config(CONFIG)
    del values["CONFIG_8139CP"]
    assert kconfig.missing_for_scenario(scn, values) == {"r": ["CONFIG_8139CP"]}


# ---- images -----------------------------------------------------------------------------------------

@dataclass
class FakeImage:
    dir: Path
    kernel_release: str = "6.1.0-28-amd64"
    name: str = "debian12"

    @property
    def kernel_config(self) -> Path:
        return self.dir / "config"


def test_image_values_prefers_config(tmp_path):
    (tmp_path / "config").write_text(CONFIG)
    (tmp_path / "modules.builtin").write_text(BUILTIN)
    values, source = kconfig.image_values(FakeImage(tmp_path))
    assert source == "config" and values == kconfig.parse_config(CONFIG)


def test_image_values_falls_back_to_modules_builtin(tmp_path):
    (tmp_path / "modules.builtin").write_text(BUILTIN)
    values, source = kconfig.image_values(FakeImage(tmp_path))
    assert source == "modules" and values["CONFIG_VIRTIO_BLK"] == "y"


def test_image_values_without_either(tmp_path):
    with pytest.raises(ImageError, match="neither a kernel config nor modules.builtin"):
        kconfig.image_values(FakeImage(tmp_path))


def test_image_values_fallback_sees_loadable_modules(tmp_path):
    (tmp_path / "modules.builtin").write_text(BUILTIN)
    # What a fix could read: the kernel's own list of loadable modules, kept beside the image.
    order = "kernel/drivers/scsi/virtio_scsi.ko\nkernel/drivers/net/virtio_net.ko\n"
    (tmp_path / "modules.order").write_text(order)
    (tmp_path / "modules.dep").write_text(order.replace(".ko\n", ".ko:\n"))
    values, _ = kconfig.image_values(FakeImage(tmp_path))
    assert values.get("CONFIG_SCSI_VIRTIO") == "m"


def test_require_for_scenario_refuses_with_one_line(tmp_path):
    (tmp_path / "config").write_text(CONFIG)
    with pytest.raises(ImageError) as exc:
        kconfig.require_for_scenario(load_scenario_text(DISK_SCENARIO), FakeImage(tmp_path))
    msg = str(exc.value)
    assert "vscsi needs CONFIG_SCSI_VIRTIO" in msg and "6.1.0-28-amd64" in msg and "\n" not in msg


# ---- `vbench guest check --config FILE` -------------------------------------------------------------

def cli_args(**kw):
    base = dict(config=str(DATA / "crafted-kconfig-config.txt"), image="default", scenario=None,
                json=True)
    base.update(kw)
    return argparse.Namespace(**base)


def test_cli_json_lists_options_and_scenario_verdict(tmp_path):
    scn = tmp_path / "s.yaml"
    scn.write_text(DISK_SCENARIO)
    out: list[str] = []
    status = guest_check(cli_args(scenario=str(scn)), out.append)
    assert status == 12  # the scenario cannot run on this kernel
    doc = json.loads("\n".join(out))
    assert doc["source"] == "config"
    assert [o["option"] for o in doc["options"]] == GUIDE_OPTIONS
    assert doc["scenario_missing"] == {"vscsi": ["CONFIG_SCSI_VIRTIO"]}


def test_cli_table_without_scenario():
    out: list[str] = []
    assert guest_check(cli_args(json=False), out.append) == 0
    text = "\n".join(out)
    assert "CONFIG_SCSI_VIRTIO" in text and "missing" in text and "built-in" in text


def test_cli_unreadable_config(tmp_path):
    with pytest.raises(ImageError, match="cannot read kernel config"):
        guest_check(cli_args(config=str(tmp_path / "nope")), print)
