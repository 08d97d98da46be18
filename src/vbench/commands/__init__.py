"""Command line: argument parsing, progress display, exit statuses.

The only place that prints or exits. Every UserError becomes one line on stderr and the error
class's :class:`~vbench.core.errors.ExitStatus`; any other exception is a bug: one line plus a hint
(``INTERNAL_ERROR``), the traceback only with ``--debug``. One module per command group builds
its own subparsers (argparse stays at this edge: the rooms below take plain values). Heavy
modules (pandas, matplotlib, libvirt, paramiko) are imported inside commands so that
``vbench --help`` answers at once.
"""

from __future__ import annotations

import argparse
import signal
import sys

from vbench import __version__
from vbench.core.errors import ExitStatus, UserError
from vbench.commands import ab, fleet, guests, lab, report, run, publish as store

GROUPS = (lab, guests, run, report, ab, store, fleet)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vbench", description=(
        "Measure what paravirtual virtio devices gain over emulated ones on real libvirt/QEMU "
        "guests: disks, NICs, RNG and memory balloon."))
    p.add_argument("--version", action="version", version=f"vbench {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in GROUPS:
        group.add_parsers(sub)
    return p


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)  # SIGTERM cleans up like Ctrl-C
    try:
        return int(args.func(args) or ExitStatus.SUCCESS)
    except UserError as exc:
        print(f"vbench: error: {exc}", file=sys.stderr, flush=True)
        tail = getattr(exc, "console_tail", "")
        if tail:
            print("guest console (last lines):\n" + tail, file=sys.stderr)
        if args.debug:
            raise
        return int(exc.exit_status)
    except KeyboardInterrupt:
        print("vbench: interrupted; guests destroyed and results so far kept", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except Exception as exc:  # a bug: one line, traceback with --debug
        if args.debug:
            raise
        print(f"vbench: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the "
              f"traceback and report it)", file=sys.stderr)
        return ExitStatus.INTERNAL_ERROR
