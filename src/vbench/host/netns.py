"""Network namespaces: create/delete the lab's namespace and open sockets inside it.

The lab's bridges, guests and every host-side peer live in a namespace vbench creates. vbench
itself stays in the host namespace; to talk to a guest it opens a socket *inside* the lab
namespace from a short-lived thread that has switched namespaces (setns affects only the calling
thread, and a socket keeps the namespace it was created in), then hands the socket to paramiko.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import threading
from pathlib import Path
from typing import Callable, TypeVar

from vbench.core.errors import LabError
from vbench.core.procs import run
from vbench.host.networks import NETWORKS

CLONE_NEWNET = 0x40000000
T = TypeVar("T")
NETNS_DIR = Path("/run/netns")


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def create(name: str) -> None:
    res = run(["ip", "netns", "add", name], timeout=20, check=False)
    if not res.ok:
        raise LabError(f"cannot create network namespace {name}: {res.tail()}")
    run(["ip", "-n", name, "link", "set", "lo", "up"], timeout=20, check=True)


def delete(name: str) -> None:
    if exists(name):
        run(["ip", "netns", "delete", name], timeout=20, check=False)


def exec_argv(name: str | None, argv: list[str]) -> list[str]:
    """argv run inside the namespace (or as is when there is none)."""
    return ["ip", "netns", "exec", name, *argv] if name else list(argv)


_libc = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def allowed_networks() -> list[ipaddress.IPv4Network]:
    """Loopback and the lab's own private subnets: the only destinations ever dialled (network
    rule: traffic goes to loopback or the project's own guests in its namespace)."""
    return [ipaddress.IPv4Network("127.0.0.0/8")] + [ipaddress.IPv4Network(n.cidr) for n in NETWORKS]


def check_target(addr: str) -> None:
    """Refuse any destination that is not loopback or a lab subnet."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        raise LabError(f"refusing to send traffic to {addr!r}: vbench only dials addresses of "
                       f"loopback and the lab's own networks, never names") from None
    allowed = allowed_networks()
    if not any(ip in n for n in allowed):
        raise LabError(f"refusing to send traffic to {addr}: vbench only talks to loopback and the "
                       f"lab's own networks ({', '.join(map(str, allowed))})")


def connect(addr: str, port: int, netns: str | None, timeout: float = 5.0) -> socket.socket:
    """A TCP socket connected to addr:port, created inside ``netns`` when given."""
    check_target(addr)
    if netns is None:
        return socket.create_connection((addr, port), timeout=timeout)
    return inside(netns, lambda: socket.create_connection((addr, port), timeout=timeout),
                  timeout + 5, f"connect to {addr}:{port}")


def inside(netns: str, fn: Callable[[], T], timeout: float, what: str) -> T:
    """``fn()`` called in a short-lived thread switched into namespace ``netns`` (and back):
    a socket it creates, or a /proc/sys/net file it opens, belongs to that namespace."""
    box: dict = {}

    def worker() -> None:
        try:
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            target = os.open(str(NETNS_DIR / netns), os.O_RDONLY)
            try:
                _setns(target)
                try:
                    box["out"] = fn()
                finally:
                    _setns(own)
            finally:
                os.close(own)
                os.close(target)
        except BaseException as exc:  # handed to the caller's thread
            box["err"] = exc

    t = threading.Thread(target=worker, name=f"netns-{what}", daemon=True)
    t.start()
    t.join(timeout)
    if "err" in box:
        raise box["err"]
    if "out" not in box:
        raise TimeoutError(f"{what} in namespace {netns} timed out")
    return box["out"]


IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def ip_forwarding(netns: str, on: bool | None = None) -> bool:
    """Whether namespace ``netns`` forwards IPv4 between its interfaces; with ``on`` given, set it
    first. (libvirt turns it on when it starts a network in forward mode 'open'.)"""
    def sysctl() -> bool:
        if on is not None:
            IP_FORWARD.write_text("1\n" if on else "0\n")
        return IP_FORWARD.read_text().strip() == "1"

    try:
        return inside(netns, sysctl, 10, "ip_forward")
    except (OSError, TimeoutError) as exc:
        raise LabError(f"cannot {'set' if on is not None else 'read'} IPv4 forwarding in network "
                       f"namespace {netns}: {exc}") from None
