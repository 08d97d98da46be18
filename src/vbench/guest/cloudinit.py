"""The cloud-init NoCloud seed vbench gives a guest of a user's own image.

A seed is a small ISO 9660 image labelled ``cidata`` (what virt-install and cloud images use)
holding three files: ``meta-data`` (instance id, host name), ``user-data`` (#cloud-config: this
run's client key for root, and an SSH host key that vbench generated, so the guest's host key is
known before it boots and stays pinned) and ``network-config`` (DHCP on each NIC, matched by the
MAC address vbench gave it). Everything in it is vbench's own data; nothing comes from the image.
The ISO is written by genisoimage, xorriso or cloud-localds (Debian packages), never by a shell.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from vbench.core import procs
from vbench.core.errors import ImageError

VOLUME_LABEL = "cidata"
# Interface names the seed gives the NICs (cloud-init renames them by MAC before networking):
# stable names, whatever PCI slot layout a profile produces.
NIC_NAMES = {"mgmt": "vbm0", "test": "vbt0"}


def new_host_key() -> tuple[str, str]:
    """A fresh ed25519 host key: (private key in OpenSSH format, public key line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption()).decode()
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                        serialization.PublicFormat.OpenSSH).decode()
    return priv, f"{pub} vbench-seed-hostkey"


def _yaml_str(s: str) -> str:
    # JSON strings are YAML strings: quoting without a YAML emitter's surprises
    return json.dumps(s)


def seed_files(instance_id: str, client_pub: str, host_priv: str, host_pub: str,
               nics: dict[str, str], hostname: str = "vbench-guest") -> dict[str, str]:
    """The seed's three files. ``nics``: role (mgmt, test) -> MAC address."""
    meta = f"instance-id: {_yaml_str(instance_id)}\nlocal-hostname: {_yaml_str(hostname)}\n"
    priv_block = "".join(f"    {line}\n" for line in host_priv.strip().splitlines())
    user = ("#cloud-config\n"
            "# vbench: key-only root login with this run's client key, and a host key vbench\n"
            "# generated (pinned by vbench); no default user, no passwords, no other host keys.\n"
            "users: []\n"
            "disable_root: false\n"
            "ssh_pwauth: false\n"
            f"ssh_authorized_keys:\n  - {_yaml_str(client_pub.strip())}\n"
            "ssh_deletekeys: true\n"
            "ssh_genkeytypes: []\n"
            "ssh_keys:\n"
            f"  ed25519_private: |\n{priv_block}"
            f"  ed25519_public: {_yaml_str(host_pub.strip())}\n")
    net = ["version: 1", "config:"]
    for role, mac in nics.items():
        net += [f"  - type: physical", f"    name: {NIC_NAMES[role]}",
                f"    mac_address: {_yaml_str(mac.lower())}", "    subnets:", "      - type: dhcp"]
    return {"meta-data": meta, "user-data": user, "network-config": "\n".join(net) + "\n"}


def iso_tool() -> list[str] | None:
    """argv prefix of an installed ISO writer (the volume label and files follow), or None."""
    for tool, prefix in (("genisoimage", ["genisoimage"]), ("xorriso", ["xorriso", "-as", "mkisofs"]),
                         ("mkisofs", ["mkisofs"])):
        if shutil.which(tool):
            return prefix
    return None


def write_seed(path: Path, files: dict[str, str]) -> None:
    """Write the ``cidata`` ISO with ``files`` to ``path``."""
    prefix = iso_tool()
    with tempfile.TemporaryDirectory(prefix="vbench-seed-") as d:
        names = []
        for name, text in files.items():
            (Path(d) / name).write_text(text)
            names.append(str(Path(d) / name))
        if prefix is not None:
            argv = prefix + ["-quiet", "-output", str(path), "-volid", VOLUME_LABEL, "-joliet",
                             "-rock", *names]
        elif shutil.which("cloud-localds"):
            argv = ["cloud-localds", "--network-config", str(Path(d) / "network-config"), str(path),
                    str(Path(d) / "user-data"), str(Path(d) / "meta-data")]
        else:
            raise ImageError("no ISO writer for the cloud-init seed: install genisoimage (or "
                             "xorriso, or cloud-image-utils); `scripts/setup.sh` does")
        res = procs.run(argv, timeout=60)
        if not res.ok:
            raise ImageError(f"cannot write the cloud-init seed {path}: {res.tail()}")
    from vbench.host.images import restrict_base

    restrict_base(path)  # it holds the guest's private host key: root and QEMU's group only
