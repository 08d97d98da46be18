"""`vbench lab ...` and `vbench image ...`: the host side and the guest images."""

from __future__ import annotations

import argparse

from vbench.core.errors import ExitStatus
from vbench.commands.output import say, table


def connect_opts(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--connect", metavar="URI",
                    help="use this libvirt (e.g. qemu:///system on a KVM server) instead of the lab")
    sp.add_argument("--accel", choices=("kvm", "tcg"), help="force the accelerator instead of probing")


def cmd_lab_up(args: argparse.Namespace) -> ExitStatus:
    from vbench.host import images, lab

    from vbench.core.extras import require_lab

    require_lab("vbench lab up")
    if getattr(args, "nested", False):
        return _nested_up(args)
    lb = lab.up(connect=args.connect, progress=say)
    img = images.find_default()
    acc = lb.host.accelerator(img.kernel if img else None, override=args.accel)
    say(f"lab is up: libvirt {lb.uri}" + (f" in namespace {lb.netns}" if lb.netns else ""))
    say(f"accelerator: {acc.name.upper()} ({acc.reason})")
    return ExitStatus.SUCCESS


def _nested_up(args: argparse.Namespace) -> ExitStatus:
    import time

    from vbench.run import nested
    from vbench.core.errors import UserError

    if args.connect or args.accel:
        raise UserError("--nested boots its hypervisor guest in the local lab: no --connect or "
                        "--accel with it (the inner lab probes its own accelerator)")
    t0 = time.monotonic()
    st = nested.up(say)
    f = st.get("facts", {})
    say(f"nested lab: {st['domain']} at {st['ip']}; outside {str(f.get('outer_accelerator')).upper()}"
        f", inside {f.get('inner_lab_accelerator')} ({time.monotonic() - t0:.0f} s)")
    return ExitStatus.SUCCESS


def cmd_lab_status(args: argparse.Namespace) -> ExitStatus:
    from vbench.host import lab
    from vbench.run import nested

    rows = lab.status(connect=args.connect)
    if not args.connect:
        rows += nested.status_rows()
    say(table(rows))
    return ExitStatus.SUCCESS


def cmd_lab_down(args: argparse.Namespace) -> ExitStatus:
    from vbench.host import lab
    from vbench.run import nested

    if getattr(args, "nested", False):
        if not nested.down(say):
            say("no nested lab was up")
        return ExitStatus.SUCCESS
    gone = nested.down(say)  # the hypervisor guest would go with the lab's domains; its record too
    if not lab.down(progress=say, force=args.force) and not gone:
        say("nothing of vbench's was running")
    return ExitStatus.SUCCESS


def cmd_lab_gc(args: argparse.Namespace) -> ExitStatus:
    from vbench.host import gc

    done = gc.collect(connect=args.connect, progress=say)
    say(f"removed {len(done)} leftover(s)" if done else "no leftovers found")
    return ExitStatus.SUCCESS


def cmd_image_build(args: argparse.Namespace) -> ExitStatus:
    from vbench.host import images

    from vbench.core.extras import require_lab

    require_lab("vbench image build")
    img, built, secs = images.build(args.recipe, force=args.force, progress=say)
    verb = "built" if built else "reused cached"
    say(f"{verb} image {img.name} (kernel {img.kernel_release}) in {secs:.1f} s: {img.dir}")
    return ExitStatus.SUCCESS


def cmd_image_list(args: argparse.Namespace) -> ExitStatus:
    from vbench.core import paths

    d = paths.images_dir()
    rows = [(p.name, str(p)) for p in sorted(d.iterdir())] if d.is_dir() else []
    say(table(rows, ("image", "path")) if rows else "no images built")
    return ExitStatus.SUCCESS


def add_parsers(sub: argparse._SubParsersAction) -> None:
    labp = sub.add_parser("lab", help="the local lab: libvirtd in a namespace, networks, accelerator")
    labsub = labp.add_subparsers(dest="lab_command", metavar="ACTION")
    labsub.required = True
    sp = labsub.add_parser("up", help="start the lab (idempotent) and probe the accelerator")
    connect_opts(sp)
    sp.add_argument("--nested", action="store_true",
                    help="also boot the nested lab: a hypervisor guest with KVM inside (TCG hosts)")
    sp.set_defaults(func=cmd_lab_up)
    sp = labsub.add_parser("status", help="show what is up and which accelerator will be used")
    sp.add_argument("--connect", metavar="URI")
    sp.set_defaults(func=cmd_lab_status)
    sp = labsub.add_parser("down", help="stop and remove everything the lab started")
    sp.add_argument("--force", action="store_true", help="also when the lab record is unreadable")
    sp.add_argument("--nested", action="store_true",
                    help="only remove the nested lab's hypervisor guest (the lab stays up)")
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
