"""The fio options a scenario may set: an exact allow-list of names, each with a checked value.

Scenarios are untrusted and the host baseline runs fio as root on the host, so nothing outside
this table reaches fio: no option that runs a program (``exec_prerun``, ``ioengine=exec``,
``external:``), opens a socket (``server``, ``client``), writes or deletes a file other than the
scratch target (``write_iolog``, ``directory``, ``unlink``, ``opendir``), or changes the host
(``ioscheduler``, ``cgroup``). fio also accepts unique prefixes (``runtim``) and aliases
(``timeout``) of its names; only the exact names below pass, so those are refused too. Values are
typed and bounded; the text given to fio is rebuilt from the checked value (``canonical``).

``OPTIONS`` is the supported set documented in the README.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vbench.core.untrusted import shown

IOENGINES = ("libaio", "io_uring", "psync", "sync", "posixaio", "mmap")  # mmap: pmem DAX files
RW_MODES = ("read", "write", "randread", "randwrite", "rw", "randrw")

KIB, MIB, GIB, TIB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
_SIZE_RE = re.compile(r"^([0-9]{1,15})([kKmMgGtT]?)$")
_SIZE_UNIT = {"": 1, "k": KIB, "m": MIB, "g": GIB, "t": TIB}
_CPUS_RE = re.compile(r"^[0-9]{1,4}(-[0-9]{1,4})?(,[0-9]{1,4}(-[0-9]{1,4})?){0,63}$")
_DIST_RE = re.compile(r"^(random|(zipf|pareto|normal):[0-9]{1,3}(\.[0-9]{1,6})?)$")


class FioOptionError(ValueError):
    """An option name or value outside the allow-list; the message is one line."""


SUPPORTED_HINT = " (supported: see 'Running scenarios you did not write' in the README)"


@dataclass(frozen=True)
class Opt:
    kind: str                      # bool | int | size | choice | cpus | dist | bssplit
    lo: int = 0
    hi: int = 0
    choices: tuple[str, ...] = ()
    help: str = ""


def _b(help_: str) -> Opt:
    return Opt("bool", help=help_)


OPTIONS: dict[str, Opt] = {
    "ioengine": Opt("choice", choices=IOENGINES, help="I/O engine"),
    "rw": Opt("choice", choices=RW_MODES, help="I/O pattern"),
    "bs": Opt("size", 512, 64 * MIB, help="block size"),
    "iodepth": Opt("int", 1, 1024, help="I/Os in flight per job"),
    "iodepth_low": Opt("int", 0, 1024, help="low water mark of the queue"),
    "iodepth_batch_complete_min": Opt("int", 0, 1024, help="completions reaped at least"),
    "iodepth_batch_complete_max": Opt("int", 0, 1024, help="completions reaped at most"),
    "numjobs": Opt("int", 1, 64, help="parallel jobs"),
    "direct": _b("O_DIRECT (bypass the page cache)"),
    "buffered": _b("use the page cache"),
    "group_reporting": _b("report the jobs as one group"),
    "norandommap": _b("random offsets may repeat"),
    "randrepeat": _b("repeatable random pattern"),
    "randseed": Opt("int", 0, 2**63 - 1, help="random seed"),
    "random_distribution": Opt("dist", help="random, zipf:X, pareto:X or normal:X"),
    "percentage_random": Opt("int", 0, 100, help="share of random I/O (%)"),
    "rwmixread": Opt("int", 0, 100, help="share of reads in mixed I/O (%)"),
    "rwmixwrite": Opt("int", 0, 100, help="share of writes in mixed I/O (%)"),
    "size": Opt("size", 4 * KIB, 16 * TIB, help="bytes of the target used"),
    "io_size": Opt("size", 4 * KIB, 16 * TIB, help="bytes of I/O per loop"),
    "offset": Opt("size", 0, 16 * TIB, help="start offset in the target"),
    "ba": Opt("size", 512, 64 * MIB, help="offset alignment"),
    "rate": Opt("size", 1 * KIB, 1024 * GIB, help="bandwidth cap per job (bytes/s)"),
    "rate_iops": Opt("int", 1, 100_000_000, help="IOPS cap per job"),
    "rate_process": Opt("choice", choices=("linear", "poisson"), help="how the rate is spread"),
    "fsync": Opt("int", 0, 1_000_000, help="fsync every N writes"),
    "fdatasync": Opt("int", 0, 1_000_000, help="fdatasync every N writes"),
    "end_fsync": _b("fsync when the job ends"),
    "sync": _b("O_SYNC writes"),
    "thread": _b("threads instead of processes"),
    "invalidate": _b("drop the page cache of the file first"),
    "zero_buffers": _b("write zeroes"),
    "refill_buffers": _b("new random data for every write"),
    "buffer_compress_percentage": Opt("int", 0, 100, help="compressibility of written data (%)"),
    "cpus_allowed": Opt("cpus", help="CPU list, e.g. 0,2-3"),
    "bssplit": Opt("bssplit", 512, 64 * MIB,
                   help="block sizes and their shares, e.g. 4k/10:64k/50:32k/40 (reads,writes)"),
}


def _size_bytes(text: str) -> int | None:
    m = _SIZE_RE.match(text)
    if not m:
        return None
    return int(m.group(1)) * _SIZE_UNIT[m.group(2).lower()]


def _int_of(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,19}", value):
        return int(value)
    return None


def canonical(key: object, value: object) -> str:
    """The text fio gets for ``key=value``; FioOptionError (one line) if either is not allowed."""
    if not isinstance(key, str) or key not in OPTIONS:
        raise FioOptionError(f"fio option {shown(key)} is not supported by vbench{SUPPORTED_HINT}")
    opt = OPTIONS[key]
    bad = f"fio option {key}={shown(value)} is invalid"
    if opt.kind == "bool":
        if isinstance(value, bool):
            return "1" if value else "0"
        if value in (0, 1, "0", "1") and not isinstance(value, float):
            return str(int(value))
        raise FioOptionError(f"{bad}: give true/false or 0/1")
    if opt.kind == "int":
        n = _int_of(value)
        if n is None or not opt.lo <= n <= opt.hi:
            raise FioOptionError(f"{bad}: give a whole number from {opt.lo} to {opt.hi}")
        return str(n)
    if opt.kind == "size":
        text = str(value) if _int_of(value) is not None else value
        n = _size_bytes(text) if isinstance(text, str) else None
        if n is None or not isinstance(text, str) or not opt.lo <= n <= opt.hi:
            raise FioOptionError(f"{bad}: give a size like 4k, 1m or 2g from {opt.lo} to "
                                 f"{opt.hi} bytes")
        return text
    if opt.kind == "choice":
        if not isinstance(value, str) or value not in opt.choices:
            raise FioOptionError(f"{bad}: must be one of {', '.join(opt.choices)}")
        return value
    if opt.kind == "cpus":
        text = str(value) if _int_of(value) is not None else value
        if not isinstance(text, str) or not _CPUS_RE.match(text):
            raise FioOptionError(f"{bad}: give a CPU list like 0,2-3")
        return text
    if opt.kind == "dist":
        if not isinstance(value, str) or not _DIST_RE.match(value):
            raise FioOptionError(f"{bad}: give random, zipf:X, pareto:X or normal:X")
        return value
    if opt.kind == "bssplit":
        if not isinstance(value, str) or not _bssplit_ok(value, opt):
            raise FioOptionError(f"{bad}: give SIZE/PERCENT pairs like 4k/10:64k/90 (at most 2 "
                                 f"lists, comma-separated: reads,writes; sizes {opt.lo} to "
                                 f"{opt.hi} bytes; shares adding up to at most 100)")
        return value
    raise AssertionError(opt.kind)  # pragma: no cover - the table above has no other kind


def _bssplit_ok(text: str, opt: Opt) -> bool:
    lists = text.split(",")
    if not 1 <= len(lists) <= 2 or len(text) > 512:
        return False
    for part in lists:
        pairs = part.split(":")
        if not 1 <= len(pairs) <= 64:
            return False
        total = 0
        for pair in pairs:
            size, sep, pct = pair.partition("/")
            n = _size_bytes(size)
            if not sep or n is None or not opt.lo <= n <= opt.hi or not re.fullmatch(
                    r"[0-9]{1,3}", pct):
                return False
            total += int(pct)
        if total > 100:
            return False
    return True


def check_options(options: object, max_options: int = len(OPTIONS), names_only: bool = False) -> dict:
    """Every ``key: value`` checked against the allow-list; returns ``options`` unchanged.
    ``names_only``: only that it is a mapping of at most ``max_options`` (the caller checks each)."""
    if not isinstance(options, dict):
        raise FioOptionError("fio options must be a mapping of option: value")
    if len(options) > max_options:
        raise FioOptionError(f"{len(options)} fio options given; at most {max_options}")
    if not names_only:
        for key, value in options.items():
            canonical(key, value)
    return options


def _human(n: int) -> str:
    for unit, size in (("t", TIB), ("g", GIB), ("m", MIB), ("k", KIB)):
        if n and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def supported_table() -> list[tuple[str, str]]:
    """(option, accepted values) rows for documentation."""
    rows = []
    for name, opt in OPTIONS.items():
        if opt.kind == "bool":
            what = "true/false"
        elif opt.kind == "int":
            what = f"{opt.lo}..{opt.hi}"
        elif opt.kind == "size":
            what = f"size {_human(opt.lo)}..{_human(opt.hi)} (k, m, g, t suffixes)"
        elif opt.kind == "choice":
            what = ", ".join(opt.choices)
        else:
            what = opt.help
        rows.append((name, what))
    return rows
