"""`vbench guests verify` and `vbench guest check`: device profiles and the guest kernel."""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from vbench.core.errors import ExitStatus, ImageError
from vbench.commands.lab import connect_opts
from vbench.commands.output import say, table


def cmd_guests_verify(args: argparse.Namespace) -> ExitStatus:
    from vbench.guest import boot as guests

    rows = guests.verify_profiles(args.profiles, connect=args.connect, accel=args.accel,
                                  progress=say)
    say(table([(r["profile"], r["device"], r["model"], r["expected"], r["found"],
                "ok" if r["ok"] else "MISMATCH", r["detail"]) for r in rows],
              ("profile", "device", "model", "expected", "bound driver", "", "where")))
    return ExitStatus.SUCCESS if all(r["ok"] for r in rows) else ExitStatus.DRIVER_MISMATCH


def cmd_guest_check(args: argparse.Namespace) -> ExitStatus:
    return guest_check(args, say)


def _kernel_values(args: argparse.Namespace, out: Callable[[str], None]) -> tuple[Any, ...]:
    """(values, source, label, bound drivers or None) of the kernel the options ask about."""
    from vbench.host import images
    from vbench.guest import kconfig

    if getattr(args, "boot", False):
        release, values, bound = kconfig.check_running_guest(
            out if not args.json else None, image_file=getattr(args, "image_file", None),
            firmware=getattr(args, "firmware", "bios"))
        return values, "config", f"running guest (kernel {release})", bound
    if getattr(args, "image_file", None):
        raise ImageError("vbench reads your own image only by booting it: add --boot")
    if args.config:
        try:
            text = open(args.config).read()
        except OSError as exc:
            raise ImageError(f"cannot read kernel config {args.config}: {exc.strerror}") from None
        return kconfig.parse_config(text), "config", args.config, None
    img = images.require(args.image)
    values, source = kconfig.image_values(img)
    return values, source, f"image {img.name} (kernel {img.kernel_release})", None


def guest_check(args: argparse.Namespace, out: Callable[[str], None]) -> ExitStatus:
    """Which virtio options the guest kernel has; KERNEL_OPTIONS if a scenario cannot run."""
    from vbench.guest import kconfig
    from vbench.scenario.schema import load_scenario

    values, source, label, bound = _kernel_values(args, out)
    rows = kconfig.states(values, source=source)
    result: dict[str, Any] = {"target": label, "source": source,
                              "options": [{"option": r.option, "state": r.state} for r in rows]}
    if bound is not None:
        result["bound"] = bound
    if args.scenario:
        result["scenario_missing"] = kconfig.missing_for_scenario(load_scenario(args.scenario), values)
    if args.json:
        out(json.dumps(result, indent=2))
    else:
        out(f"virtio options of {label} (from the kernel {source}):")
        out(table([(r.option, r.state) for r in rows], ("option", "state")))
        if bound is not None:
            out("virtio drivers bound now:")
            out(table([(b["driver"], b["device"]) for b in bound], ("driver", "device")))
        if args.scenario:
            miss = result["scenario_missing"]
            out("scenario can run: yes" if not miss else "scenario cannot run: " + "; ".join(
                f"{v} needs {', '.join(o)}" for v, o in miss.items()))
    return ExitStatus.KERNEL_OPTIONS if result.get("scenario_missing") else ExitStatus.SUCCESS


def add_parsers(sub: argparse._SubParsersAction) -> None:
    gp = sub.add_parser("guests", help="boot guests of device profiles")
    gsub = gp.add_subparsers(dest="guests_command", metavar="ACTION")
    gsub.required = True
    sp = gsub.add_parser("verify", help="boot one guest per profile and show the bound drivers")
    sp.add_argument("profiles", nargs="+", metavar="PROFILE",
                    help="'virtio', 'emulated', or items like disk=sata,nic=e1000,rng=none,balloon=none")
    connect_opts(sp)
    sp.set_defaults(func=cmd_guests_verify)

    sp = sub.add_parser("guest", help="guest kernel checks")
    gcs = sp.add_subparsers(dest="guest_command", metavar="ACTION")
    gcs.required = True
    sp = gcs.add_parser("check", help="which virtio options the guest kernel has (built-in/module/missing)")
    sp.add_argument("--image", default="default", help="image to check (default: the built default)")
    sp.add_argument("--config", metavar="FILE", help="check a kernel config file instead")
    sp.add_argument("--boot", action="store_true",
                    help="boot a guest of the image with every virtio device and check its running "
                         "kernel, listing the virtio drivers bound now")
    sp.add_argument("--image-file", metavar="PATH",
                    help="with --boot: your own qcow2/raw image (booted by its own bootloader with a "
                         "cloud-init seed; it must lie in VBENCH_IMAGE_DIRS, see README)")
    sp.add_argument("--firmware", choices=("bios", "uefi"), default="bios",
                    help="how --image-file boots (uefi needs the ovmf package)")
    sp.add_argument("--scenario", metavar="FILE", help="also say whether this scenario's variants can run")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_guest_check)
