"""Booting guests of given device profiles outside a scenario (``vbench guests verify``)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
import time
from typing import Any, Callable, TypeVar

from vbench.host import images, lab
from vbench.host.libvirtd import DOMAIN_PREFIX
from vbench.guest import verify
from vbench.host import ssh as remote
from vbench.scenario.schema import GuestSpec, parse_profile
from vbench.guest.domain import Guest
from vbench.core.errors import BootError
from vbench.core.sidebyside import side_by_side
from vbench.scenario import budget

T = TypeVar("T")


def guest_name(kind: str, index: int, label: str, attempt: int = 0) -> str:
    """A retry is a fresh guest with a name of its own (its own MACs, no stale lease)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in label)[:24]
    again = f"a{attempt}-" if attempt else ""
    return f"{DOMAIN_PREFIX}{kind}-{os.getpid()}-{int(time.time()) % 100000}-{index}-{again}{safe}"


def with_boot_retries(attempt: Callable[[int], T], retries: int, label: str,
                      progress: Callable[[str], None] | None,
                      cancel: threading.Event | None = None) -> T:
    """``attempt(n)`` for n = 0, 1, ... until it does not raise BootError, at most ``retries``
    times more (each attempt boots a fresh guest, as a run does). Only a failed boot is retried
    (a guest that booted and then failed a check is not booted again), never after ``cancel``;
    the last failure carries every attempt's reason."""
    earlier: list[str] = []
    for n in range(retries + 1):
        try:
            return attempt(n)
        except BootError as exc:
            if (cancel is not None and cancel.is_set()) or n == retries:
                if not earlier:
                    raise
                raise exc.after_attempts(n + 1, earlier) from None
            earlier.append(f"attempt {n + 1}: {exc}")
            if progress is not None:
                progress(f"{label}: boot attempt {n + 1} failed ({exc}); retrying with a fresh "
                         f"guest")
    raise AssertionError("unreachable")  # pragma: no cover


def unmeasured(prof: Any) -> Any:
    """The profile of a guest that only proves its drivers bind (``guests verify``, ``guest
    check --boot``): the same devices, but a raw scratch disk is a sparse file (``preallocate:
    off``) instead of written in full: 2 GiB of writes and an fsync, about 7 s per guest here,
    for data no probe of such a guest reads."""
    disk = prof.disk
    if disk is None or disk.format != "raw" or disk.preallocate == "off":
        return prof
    return prof.model_copy(update={"disk": disk.model_copy(update={"preallocate": "off"})})


def verify_profiles(profile_texts: list[str], connect: str | None = None, accel: str | None = None,
                    progress=print, spec: GuestSpec | None = None) -> list[dict]:
    """Boot one guest per profile (side by side, one per host CPU as a run does), check its
    drivers, tear it down; the rows in the profiles' order. A boot that fails (BootError) is
    tried again with a fresh guest up to ``guest.boot_retries`` times, as in a run."""
    profiles = [(t, unmeasured(parse_profile(t))) for t in profile_texts]  # all valid before a boot
    lb = lab.current(connect)
    img = images.require("default")
    acc = lb.host.accelerator(img.kernel, override=accel)
    pkey, pub = remote.new_client_key()
    found: dict[int, list[dict]] = {}

    gspec = spec or GuestSpec()

    def attempt(i: int, text: str, prof: Any, n: int, cancel: threading.Event) -> list[dict]:
        g = Guest(guest_name("verify", i, text, n), lb, img, prof, gspec, acc, pkey, pub,
                  tags={"run": f"verify-{os.getpid()}", "variant": text}, progress=progress,
                  cancel=cancel)
        with g:
            checks, facts = verify.verify_guest_report(g, prof)
        return [{"profile": text, "device": c.device, "model": c.model, "expected": c.expected,
                 "found": c.found, "ok": c.ok, "detail": c.detail,
                 "boot_s": round(g.boot_seconds or 0, 1), "guest_kernel": facts.get("kernel", "")}
                for c in checks]

    def one(job: tuple[int, str, Any], own: contextlib.ExitStack,
            cancel: threading.Event) -> list[dict]:
        i, text, prof = job
        return with_boot_retries(lambda n: attempt(i, text, prof, n, cancel), gspec.boot_retries,
                                 text, progress, cancel)

    def done(job: tuple[int, str, Any], fut: concurrent.futures.Future) -> BaseException | None:
        exc = fut.exception()
        if exc is None:
            found[job[0]] = fut.result()[0]
        return exc

    jobs = [(i, text, prof) for i, (text, prof) in enumerate(profiles)]
    with contextlib.ExitStack() as stack:
        side_by_side(stack, jobs, budget.boot_width(lb.host.facts().get("cpus")), one, done)
    return [row for i in sorted(found) for row in found[i]]
