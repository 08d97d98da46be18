"""Command line: argument parsing, progress display, exit statuses.

The only place that prints or exits. Every UserError becomes one line on stderr and the error
class's exit status; any other exception is a bug: one line plus a hint, the traceback only with
``--debug``. Heavy modules (pandas, matplotlib, libvirt, paramiko) are imported inside commands so
that ``vbench --help`` answers at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from . import __version__
from .errors import UserError

EXIT_INTERRUPTED = 130
EXIT_BUG = 70


def _say(msg: str) -> None:
    print(msg, flush=True)


def _table(rows: list[tuple], header: tuple | None = None) -> str:
    rows = [tuple(str(c) for c in r) for r in rows]
    if header:
        rows.insert(0, tuple(header))
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if header:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---- lab ---------------------------------------------------------------------------------------

def cmd_lab_up(args) -> int:
    from . import images, lab

    lb = lab.up(connect=args.connect, progress=_say)
    img = images.find_default()
    acc = lab.accelerator(lb, img.kernel if img else None, override=args.accel)
    _say(f"lab is up: libvirt {lb.uri}" + (f" in namespace {lb.netns}" if lb.netns else ""))
    _say(f"accelerator: {acc.name.upper()} ({acc.reason})")
    return 0


def cmd_lab_status(args) -> int:
    from . import lab

    _say(_table(lab.status(connect=args.connect)))
    return 0


def cmd_lab_down(args) -> int:
    from . import lab

    done = lab.down(progress=_say, force=args.force)
    if not done:
        _say("nothing of vbench's was running")
    return 0


def cmd_lab_gc(args) -> int:
    from . import gc

    done = gc.collect(connect=args.connect, progress=_say)
    _say(f"removed {len(done)} leftover(s)" if done else "no leftovers found")
    return 0


# ---- images ------------------------------------------------------------------------------------

def cmd_image_build(args) -> int:
    from . import images

    img, built, secs = images.build(args.recipe, force=args.force, progress=_say)
    verb = "built" if built else "reused cached"
    _say(f"{verb} image {img.name} (kernel {img.kernel_release}) in {secs:.1f} s: {img.dir}")
    return 0


def cmd_image_list(args) -> int:
    from . import paths

    d = paths.images_dir()
    rows = [(p.name, str(p)) for p in sorted(d.iterdir())] if d.is_dir() else []
    _say(_table(rows, ("image", "path")) if rows else "no images built")
    return 0


# ---- guests ------------------------------------------------------------------------------------

def cmd_guests_verify(args) -> int:
    from . import guests

    rows = guests.verify_profiles(args.profiles, connect=args.connect, accel=args.accel,
                                  progress=_say)
    _say(_table([(r["profile"], r["device"], r["model"], r["expected"], r["found"],
                  "ok" if r["ok"] else "MISMATCH", r["detail"]) for r in rows],
                ("profile", "device", "model", "expected", "bound driver", "", "where")))
    return 0 if all(r["ok"] for r in rows) else 7


def cmd_guest_check(args) -> int:
    from . import kconfig

    return kconfig.cli(args, _say)


# ---- run ---------------------------------------------------------------------------------------

def cmd_run(args) -> int:
    from . import runner

    return runner.cli(args, _say)


# ---- parser ------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vbench", description=(
        "Measure what paravirtual virtio devices gain over emulated ones on real libvirt/QEMU "
        "guests: disks, NICs, RNG and memory balloon."))
    p.add_argument("--version", action="version", version=f"vbench {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def connect_opts(sp):
        sp.add_argument("--connect", metavar="URI",
                        help="use this libvirt (e.g. qemu:///system on a KVM server) instead of the lab")
        sp.add_argument("--accel", choices=("kvm", "tcg"),
                        help="force the accelerator instead of probing")

    labp = sub.add_parser("lab", help="the local lab: libvirtd in a namespace, networks, accelerator")
    labsub = labp.add_subparsers(dest="lab_command", metavar="ACTION")
    labsub.required = True
    sp = labsub.add_parser("up", help="start the lab (idempotent) and probe the accelerator")
    connect_opts(sp)
    sp.set_defaults(func=cmd_lab_up)
    sp = labsub.add_parser("status", help="show what is up and which accelerator will be used")
    sp.add_argument("--connect", metavar="URI")
    sp.set_defaults(func=cmd_lab_status)
    sp = labsub.add_parser("down", help="stop and remove everything the lab started")
    sp.add_argument("--force", action="store_true", help="also when the lab record is unreadable")
    sp.set_defaults(func=cmd_lab_down)
    sp = labsub.add_parser("gc", help="remove leftovers of killed runs (tagged guests, overlays, peers)")
    sp.add_argument("--connect", metavar="URI")
    sp.set_defaults(func=cmd_lab_gc)

    imgp = sub.add_parser("image", help="guest images built from Debian packages")
    imgsub = imgp.add_subparsers(dest="image_command", metavar="ACTION")
    imgsub.required = True
    sp = imgsub.add_parser("build", help="build (or reuse the cached) guest image")
    sp.add_argument("recipe", nargs="?", default="debian12", help="recipe name under guests/ (e.g. debian12)")
    sp.add_argument("--force", action="store_true", help="rebuild even if cached")
    sp.set_defaults(func=cmd_image_build)
    sp = imgsub.add_parser("list", help="list built images")
    sp.set_defaults(func=cmd_image_list)

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
    sp.add_argument("--scenario", metavar="FILE", help="also say whether this scenario's variants can run")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_guest_check)

    sp = sub.add_parser("run", help="run a scenario and store its results")
    sp.add_argument("scenario", nargs="?", help="scenario YAML file (e.g. scenarios/disk.yaml)")
    sp.add_argument("--results", default=os.environ.get("VBENCH_RESULTS", "results"),
                    help="results root (default: ./results)")
    sp.add_argument("--reports", default=os.environ.get("VBENCH_REPORTS", "reports"),
                    help="reports root (default: ./reports)")
    sp.add_argument("--repetitions", type=int, help="override the scenario's repetitions")
    sp.add_argument("--resume", metavar="RUN", help="finish the missing repetitions of a run directory")
    sp.add_argument("--no-report", action="store_true", help="do not write the HTML report")
    sp.add_argument("--max-hours", type=float, default=24.0,
                    help="refuse scenarios whose estimated run time is longer (default: 24)")
    connect_opts(sp)
    sp.set_defaults(func=cmd_run)

    try:
        from . import reportcli
    except ImportError:  # pragma: no cover - while the report room is being built
        reportcli = None
    if reportcli is not None:
        reportcli.add_parsers(sub)
    from . import ab

    ab.add_parser(sub)

    from . import storecli

    storecli.add_publish_parser(sub)
    return p


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)  # SIGTERM cleans up like Ctrl-C
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"vbench: error: {exc}", file=sys.stderr, flush=True)
        tail = getattr(exc, "console_tail", "")
        if tail:
            print("guest console (last lines):\n" + tail, file=sys.stderr)
        if args.debug:
            raise
        return exc.exit_status
    except KeyboardInterrupt:
        print("vbench: interrupted; guests destroyed and results so far kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line, traceback with --debug
        if args.debug:
            raise
        print(f"vbench: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the "
              f"traceback and report it)", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
