"""Guest kernel check: which of the source guide's virtio options the guest kernel has.

Reads the kernel config shipped with the image (``/boot/config-*``), or, when there is none,
``modules.builtin`` plus the module list. Each option is built-in (y), module (m) or missing.
A scenario whose variants need an option the kernel lacks is refused before anything boots.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vbench import devices
from vbench.core.errors import ImageError

# The list of the source document, in its order.
SEED_OPTIONS = (
    "CONFIG_BLK_MQ_VIRTIO", "CONFIG_VIRTIO_VSOCKETS", "CONFIG_VIRTIO_VSOCKETS_COMMON",
    "CONFIG_NET_9P_VIRTIO", "CONFIG_VIRTIO_BLK", "CONFIG_SCSI_VIRTIO", "CONFIG_VIRTIO_NET",
    "CONFIG_VIRTIO_CONSOLE", "CONFIG_HW_RANDOM_VIRTIO", "CONFIG_DRM_VIRTIO_GPU", "CONFIG_VIRTIO",
    "CONFIG_VIRTIO_MENU", "CONFIG_VIRTIO_PCI", "CONFIG_VIRTIO_PCI_LEGACY", "CONFIG_VIRTIO_PMEM",
    "CONFIG_VIRTIO_BALLOON", "CONFIG_VIRTIO_MEM", "CONFIG_VIRTIO_INPUT", "CONFIG_VIRTIO_MMIO",
    "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES", "CONFIG_RPMSG_VIRTIO", "CONFIG_VIRTIO_FS",
    "CONFIG_CRYPTO_DEV_VIRTIO",
)

# Module file names for the fallback when no config is shipped (option -> module basename);
# the device modules add the options of their models (CONFIG_SATA_AHCI -> ahci, ...).
OPTION_MODULES = {
    "CONFIG_VIRTIO_BLK": "virtio_blk", "CONFIG_SCSI_VIRTIO": "virtio_scsi",
    "CONFIG_VIRTIO_NET": "virtio_net", "CONFIG_HW_RANDOM_VIRTIO": "virtio-rng",
    "CONFIG_VIRTIO_BALLOON": "virtio_balloon", "CONFIG_VIRTIO_CONSOLE": "virtio_console",
    "CONFIG_VIRTIO_PCI": "virtio_pci", "CONFIG_VIRTIO": "virtio", "CONFIG_VIRTIO_MMIO": "virtio_mmio",
    "CONFIG_VIRTIO_INPUT": "virtio_input", "CONFIG_VIRTIO_FS": "virtiofs",
    "CONFIG_VIRTIO_PMEM": "virtio_pmem", "CONFIG_VIRTIO_MEM": "virtio_mem",
    "CONFIG_DRM_VIRTIO_GPU": "virtio-gpu", "CONFIG_NET_9P_VIRTIO": "9pnet_virtio",
    "CONFIG_VIRTIO_VSOCKETS": "vmw_vsock_virtio_transport",
    "CONFIG_VIRTIO_VSOCKETS_COMMON": "vmw_vsock_virtio_transport_common",
    "CONFIG_RPMSG_VIRTIO": "virtio_rpmsg_bus", "CONFIG_CRYPTO_DEV_VIRTIO": "virtio_crypto",
    **devices.option_modules(),
}

# What every guest needs, whatever its devices under test (which say what they need themselves).
ALWAYS = ("CONFIG_VIRTIO_PCI", "CONFIG_VIRTIO_BLK", "CONFIG_VIRTIO_NET")  # boot disk, SSH NIC
STATE_WORDS = {"y": "built-in", "m": "module", None: "missing"}
_LINE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(y|m)\s*$")


@dataclass(frozen=True)
class OptionState:
    option: str
    state: str   # built-in | module | missing
    source: str  # config | modules


def parse_config(text: str) -> dict[str, str]:
    """``CONFIG_X=y|m`` lines of a kernel config; unset and ``# ... is not set`` lines are absent."""
    out = {}
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def from_modules(builtin_text: str, module_names: set[str]) -> dict[str, str]:
    """Option states from modules.builtin (y) and the module tree (m), when no config exists."""
    builtin = {re.sub(r"\.ko.*$", "", line.strip().rsplit("/", 1)[-1]).replace("-", "_")
               for line in builtin_text.splitlines() if line.strip()}
    mods = {m.replace("-", "_") for m in module_names}
    out = {}
    for opt, mod in OPTION_MODULES.items():
        key = mod.replace("-", "_")
        if key in builtin:
            out[opt] = "y"
        elif key in mods:
            out[opt] = "m"
    return out


def states(values: dict[str, str], options=SEED_OPTIONS, source: str = "config") -> list[OptionState]:
    return [OptionState(o, STATE_WORDS[values.get(o)], source) for o in options]


def image_values(img) -> tuple[dict[str, str], str]:
    if img.kernel_config.exists():
        return parse_config(img.kernel_config.read_text()), "config"
    mb = img.dir / "modules.builtin"
    if mb.exists():
        order = img.dir / "modules.order"
        mods = set()
        if order.exists():
            mods = {re.sub(r"\.ko.*$", "", line.strip().rsplit("/", 1)[-1])
                    for line in order.read_text().splitlines() if line.strip()}
        return from_modules(mb.read_text(), mods), "modules"
    raise ImageError(f"image {img.dir} has neither a kernel config nor modules.builtin")


def needed_options(scn) -> dict[str, list[str]]:
    """Per variant, the kernel options its devices need."""
    out = {}
    for v in scn.variants:
        opts = set(ALWAYS)
        for dev, spec in scn.profile(v).present():
            opts.update(dev.kernel_options(spec))
        out[v.name] = sorted(opts)
    return out


def missing_for_scenario(scn, values: dict[str, str]) -> dict[str, list[str]]:
    return {v: [o for o in opts if o not in values]
            for v, opts in needed_options(scn).items() if any(o not in values for o in opts)}


def require_for_scenario(scn, img) -> None:
    values, _ = image_values(img)
    missing = missing_for_scenario(scn, values)
    if missing:
        desc = "; ".join(f"{v} needs {', '.join(o)}" for v, o in missing.items())
        raise ImageError(f"the guest kernel ({img.kernel_release}) lacks options this scenario "
                         f"needs: {desc}. Use a kernel with them enabled (see `vbench guest check`)")


RUNNING_SCRIPT = r"""
echo "kernel=$(uname -r)"
grep -E '^CONFIG_[A-Za-z0-9_]+=(y|m)$' "/boot/config-$(uname -r)" 2>/dev/null
for d in /sys/bus/virtio/drivers/*; do
  for dev in "$d"/virtio*; do [ -e "$dev" ] && echo "bound=$(basename "$d") $(basename "$dev")"; done
done
"""


def parse_running(text: str) -> tuple[str, dict[str, str], list[dict]]:
    """(kernel release, config values, bound virtio drivers) from RUNNING_SCRIPT's output."""
    release, bound = "", []
    for line in text.splitlines():
        if line.startswith("kernel="):
            release = line[len("kernel="):].strip()
        elif line.startswith("bound="):
            parts = line[len("bound="):].split()
            if len(parts) == 2:
                bound.append({"driver": parts[0], "device": parts[1]})
    return release, parse_config(text), bound


def check_running_guest(progress, image_file: str | None = None, firmware: str = "bios",
                        connect: str | None = None) -> tuple[str, dict[str, str], list[dict]]:
    """Boot a guest of the default image (or of a user's ``image_file``) with every virtio device
    and read its running kernel."""
    from vbench.host import images, lab
    from vbench.guest import userimage
    from vbench.host import ssh as remote
    from vbench.guest.boot import guest_name, unmeasured, with_boot_retries
    from vbench.scenario.schema import GuestSpec, parse_profile
    from vbench.guest.domain import Guest

    lb = lab.current(connect)
    img = (userimage.open_image(image_file, firmware) if image_file
           else images.require("default"))
    acc = lb.host.accelerator(userimage.probe_kernel(img))
    pkey, pub = remote.new_client_key()
    spec = (GuestSpec.model_validate({"image_file": image_file, "firmware": firmware})
            if image_file else GuestSpec())
    prof = unmeasured(parse_profile("virtio"))

    def attempt(n: int) -> tuple[str, dict[str, str], list[dict]]:
        with Guest(guest_name("check", 0, "virtio", n), lb, img, prof, spec, acc, pkey, pub,
                   tags={"run": "guest-check", "variant": "virtio"}, progress=progress) as g:
            return parse_running(g.ssh.run(RUNNING_SCRIPT, timeout=30, check=True).stdout)

    return with_boot_retries(attempt, spec.boot_retries, "guest check", progress)
