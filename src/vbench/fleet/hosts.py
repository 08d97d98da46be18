"""The hosts file of ``vbench fleet run``: a small YAML list, read as untrusted input.

::

    hosts:
      - name: lab                      # the local lab (no connect: vbench's own libvirtd)
      - name: kvm-b
        connect: qemu+ssh://root@kvm-b.example/system
      - name: users-libvirtd
        connect: qemu+unix:///system?socket=/run/other/libvirt-sock
        netns: users-ns                # run vbench inside this network namespace (local only)
        env: {VBENCH_MGMT_SUBNET: 10.231.0.0/24, VBENCH_TEST_SUBNET: 10.231.1.0/24}
      - name: vm-on-kvm-b
        connect: qemu+ssh://root@10.0.0.7/system
        machine: kvm-b                 # declared: shares kvm-b's CPUs (never measured with it)

Only these fields are accepted; names are short and of a safe charset (they become directory
names and column headings); at most :data:`MAX_HOSTS` hosts; ``env`` only carries the variables
in :data:`ENV_ALLOWED`, each value checked. Nothing here ever reaches a shell: every value ends up
as one argv element or one environment value of a child process.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vbench.core import untrusted
from vbench.core.errors import UserError

MAX_HOSTS = 32
MAX_FILE_BYTES = 64 * 1024
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
NETNS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
URI = re.compile(r"^qemu(\+(ssh|libssh|libssh2|unix|tcp|tls))?://[\x21-\x7e]{0,480}$")
HOST_FIELDS = {"name", "connect", "netns", "env", "machine"}
LOCAL_TRANSPORTS = {"qemu", "qemu+unix"}


def _subnet(value: str) -> str:
    net = ipaddress.ip_network(value, strict=True)
    if net.version != 4 or net.prefixlen > 28:
        raise ValueError("an IPv4 network of /28 or larger")
    return value


def _accel(value: str) -> str:
    if value not in ("kvm", "tcg"):
        raise ValueError("kvm or tcg")
    return value


def _abs_path(value: str) -> str:
    p = Path(value)
    if not p.is_absolute() or ".." in p.parts or len(value) > 255:
        raise ValueError("an absolute path without '..'")
    return value


ENV_ALLOWED = {"VBENCH_MGMT_SUBNET": _subnet, "VBENCH_TEST_SUBNET": _subnet,
               "VBENCH_ACCEL": _accel, "VBENCH_HOME": _abs_path}


@dataclass(frozen=True)
class Host:
    """One host of a fleet: where its libvirt is and how to run vbench against it."""

    name: str
    connect: str | None = None           # None: the local lab
    netns: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    machine: str | None = None          # a declared machine: hosts naming the same one run in turn

    @property
    def local(self) -> bool:
        """True when the libvirt daemon runs on this machine (no host part in the URI)."""
        if self.connect is None:
            return True
        parts = urlsplit(self.connect)
        return parts.scheme in LOCAL_TRANSPORTS and not parts.hostname

    def describe(self) -> str:
        return self.connect or "the local lab"


def _fail(where: str, what: str) -> UserError:
    return UserError(f"{where}: {what}")


def _text(value: Any, where: str, pattern: re.Pattern, what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise _fail(where, f"{untrusted.shown(value)} is not {what}")
    return value


def _env(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _fail(where, "env must be a mapping of VARIABLE: value")
    out: dict[str, str] = {}
    for key, val in value.items():
        check = ENV_ALLOWED.get(key) if isinstance(key, str) else None
        if check is None:
            raise _fail(where, f"env {untrusted.shown(key)} is not allowed (allowed: "
                               f"{', '.join(sorted(ENV_ALLOWED))})")
        if not isinstance(val, str) or len(val) > 255 or not val.isprintable():
            raise _fail(where, f"env {key}: {untrusted.shown(val)} is not a short string")
        try:
            out[key] = check(val)
        except ValueError as exc:
            raise _fail(where, f"env {key}: {untrusted.shown(val)} is not {exc}") from None
    return out


def parse_host(item: Any, where: str) -> Host:
    if not isinstance(item, dict):
        raise _fail(where, "each host is a mapping with a name (and connect, netns, env, machine)")
    extra = [k for k in item if k not in HOST_FIELDS]
    if extra:
        raise _fail(where, f"unknown field {untrusted.shown(extra[0])} (allowed: "
                           f"{', '.join(sorted(HOST_FIELDS))})")
    name = _text(item.get("name"), where, NAME, "a host name (letters, digits, '-', '_'; "
                                                "at most 32, starting with a letter or digit)")
    where = f"{where} ({name})"
    connect = item.get("connect")
    if connect is not None:
        connect = _text(connect, where, URI, "a libvirt URI such as qemu+ssh://root@HOST/system")
    netns = item.get("netns")
    if netns is not None:
        netns = _text(netns, where, NETNS, "a network namespace name")
    machine = item.get("machine")
    if machine is not None:
        machine = _text(machine, where, NAME, "a machine name (like a host name)")
    host = Host(name=name, connect=connect, netns=netns, env=_env(item.get("env", {}), where),
                machine=machine)
    if host.netns and not host.local:
        raise _fail(where, "netns only applies to a libvirt on this machine")
    return host


def parse_hosts(doc: Any, where: str = "hosts file") -> list[Host]:
    """Validated hosts of a parsed hosts document (a list, or a mapping with ``hosts:``)."""
    if isinstance(doc, dict):
        if set(doc) != {"hosts"}:
            raise _fail(where, "expected a list of hosts, or a mapping with only `hosts:`")
        doc = doc["hosts"]
    if not isinstance(doc, list) or not doc:
        raise _fail(where, "expected a non-empty list of hosts")
    if len(doc) > MAX_HOSTS:
        raise _fail(where, f"{len(doc)} hosts; at most {MAX_HOSTS}")
    hosts = [parse_host(item, f"{where}: host {i + 1}") for i, item in enumerate(doc)]
    seen: set[str] = set()
    for h in hosts:
        if h.name.lower() in seen:  # names become directories: no two that differ in case only
            raise _fail(where, f"host name {h.name!r} appears twice")
        seen.add(h.name.lower())
    return hosts


def load_hosts(path: Path) -> list[Host]:
    """The hosts of a hosts file (bounded read, no YAML aliases, allow-listed fields)."""
    import yaml

    where = str(path)
    try:
        text = untrusted.read_text(Path(path), max_bytes=MAX_FILE_BYTES)
        doc = untrusted.load_yaml(text, max_bytes=MAX_FILE_BYTES)
    except OSError as exc:
        raise _fail(where, f"cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, untrusted.UntrustedInputError) as exc:
        raise _fail(where, str(exc).splitlines()[0] if str(exc) else "not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise _fail(where, f"not valid YAML: {' '.join(str(exc).split())[:200]}") from None
    return parse_hosts(doc, where)
