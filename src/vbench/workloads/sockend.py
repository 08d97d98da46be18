"""The host's end of the socket byte-stream probe (:mod:`vbench.workloads.sockstream`): a small
program run on the host side of the lab (inside its namespace, through ``lab.host.run``) as

    python -I sockend.py FAMILY ADDRESS PORT G2H_BYTES H2G_BYTES PINGS TIMEOUT_S

FAMILY is ``vsock`` (ADDRESS: the guest's CID) or ``tcp`` (ADDRESS: the guest's IPv4 address on
the test network). The guest listens on three ports, PORT to PORT + 2, one connection each:

- PORT, guest to host: the guest sends G2H_BYTES; this end reads them and prints
  ``g2h <bytes after the first chunk> <seconds from the first chunk to the last>``;
- PORT + 1, host to guest: this end sends H2G_BYTES zero bytes and waits for the guest's one-byte
  answer, sent once it has read them all; prints ``h2g <bytes> <seconds from the first send to
  the answer>``;
- PORT + 2, round trips: PINGS one-byte round trips through the guest's echo; prints
  ``rtt_us <microseconds> ...``.

Both directions are timed with this end's clock, the same way over either transport. Standard
library only (``-I``: vbench is not on its path); every size is bounded by its argument. A failure
prints one line, ``sockend: <phase>: <reason>``, on stderr and exits 1.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import time

CHUNK = 256 << 10          # bytes per send/recv call
CONNECT_WAIT_S = 15.0      # the guest's listeners were started just before: wait for them
MAX_BYTES = 1 << 30
MAX_PINGS = 100000
FAMILIES = ("vsock", "tcp")


class Failed(Exception):
    """One phase failed; the message is the line printed."""


def address(family: str, addr: str, port: int) -> tuple[int, tuple]:
    """(socket family, address tuple) for ``family``; ValueError for anything else."""
    if family == "vsock":
        cid = int(addr)
        if not 3 <= cid < 0xFFFFFFFF:
            raise ValueError(f"guest CID {addr!r} is not 3..2^32-2")
        return socket.AF_VSOCK, (cid, port)
    if family == "tcp":
        return socket.AF_INET, (str(ipaddress.IPv4Address(addr)), port)
    raise ValueError(f"family {family!r} is not one of {', '.join(FAMILIES)}")


def connect(family: str, addr: str, port: int, timeout: float) -> socket.socket:
    """A connected stream socket, retried until the guest's listener answers."""
    fam, where = address(family, addr, port)
    deadline = time.monotonic() + min(timeout, CONNECT_WAIT_S)
    while True:
        sock = socket.socket(fam, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(where)
        except (ConnectionRefusedError, ConnectionResetError) as exc:
            sock.close()  # vsock without a listener: reset; TCP: refused
            if time.monotonic() > deadline:
                raise Failed(f"nothing listens on {family} {addr} port {port}: {exc}") from None
            time.sleep(0.05)
            continue
        if fam == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def read_timed(sock: socket.socket, n: int) -> tuple[int, float]:
    """Read n bytes: (bytes after the first chunk, seconds from the first chunk to the last)."""
    got, first_len, t_first, t_last = 0, 0, 0.0, 0.0
    while got < n:
        b = sock.recv(min(CHUNK, n - got))
        if not b:
            raise Failed(f"the guest closed after {got} of {n} bytes")
        t_last = time.perf_counter()
        if got == 0:
            t_first, first_len = t_last, len(b)
        got += len(b)
    return got - first_len, t_last - t_first


def send_timed(sock: socket.socket, n: int) -> float:
    """Send n zero bytes, then wait for the guest's answer: seconds from the first send."""
    block = memoryview(bytes(CHUNK))
    t0 = time.perf_counter()
    left = n
    while left:
        k = min(CHUNK, left)
        sock.sendall(block[:k])
        left -= k
    answer = sock.recv(1)
    elapsed = time.perf_counter() - t0
    if answer != b"x":
        raise Failed(f"the guest answered {answer!r} instead of b'x' after {n} bytes")
    return elapsed


def round_trips(sock: socket.socket, pings: int) -> list[float]:
    """Microseconds of each one-byte round trip through the guest's echo."""
    out = []
    for _ in range(pings):
        t0 = time.perf_counter()
        sock.sendall(b"x")
        if sock.recv(1) != b"x":
            raise Failed("the echo returned another byte, or closed")
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def measure(family: str, addr: str, port: int, g2h: int, h2g: int, pings: int,
            timeout: float) -> list[str]:
    """The three result lines (see the module docstring)."""
    lines = []
    for phase, offset in (("g2h", 0), ("h2g", 1), ("rtt", 2)):
        try:
            with connect(family, addr, port + offset, timeout) as sock:
                if phase == "g2h":
                    n, secs = read_timed(sock, g2h)
                    lines.append(f"g2h {n} {secs:.9f}")
                elif phase == "h2g":
                    lines.append(f"h2g {h2g} {send_timed(sock, h2g):.9f}")
                else:
                    lines.append("rtt_us " + " ".join(f"{x:.1f}" for x in round_trips(sock, pings)))
        except Failed as exc:
            raise Failed(f"{phase}: {exc}") from None
        except OSError as exc:
            raise Failed(f"{phase}: {family} {addr} port {port + offset}: {exc}") from None
    return lines


def parse_args(argv: list[str]) -> tuple[str, str, int, int, int, int, float]:
    """The checked arguments; ValueError names the bad one."""
    if len(argv) != 7:
        raise ValueError("usage: sockend.py FAMILY ADDRESS PORT G2H_BYTES H2G_BYTES PINGS "
                         "TIMEOUT_S")
    family, addr = argv[0], argv[1]
    port, g2h, h2g, pings, timeout = (int(x) for x in argv[2:])
    address(family, addr, 1)
    if not 1 <= port <= 0xFFFFFFFF - 2 or (family == "tcp" and port > 65533):
        raise ValueError(f"port {port} is out of range")
    if not (1024 <= g2h <= MAX_BYTES and 1024 <= h2g <= MAX_BYTES and 1 <= pings <= MAX_PINGS
            and 1 <= timeout <= 3600):
        raise ValueError("sizes, pings or timeout out of range")
    return family, addr, port, g2h, h2g, pings, float(timeout)


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
        print("\n".join(measure(*args)), flush=True)
    except ValueError as exc:
        print(f"sockend: arguments: {exc}", file=sys.stderr)
        return 1
    except Failed as exc:
        print(f"sockend: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
