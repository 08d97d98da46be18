"""The hosts file of ``vbench fleet run``: a small YAML list, read as untrusted input.

::

    hosts:
      - name: lab                      # the local lab (no connect: vbench's own libvirtd)
      - name: kvm-b
        connect: qemu+ssh://root@kvm-b.example/system
      - name: users-libvirtd
        connect: qemu:///system        # qemu:///system, qemu:///session or pinned qemu+ssh only
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

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vbench.core import untrusted
from vbench.core.errors import BadUri, HostsFileError, UserError
from vbench.core.paths import FLEET_HOMES
from vbench.host.uris import URI_RULE, check_uri

MAX_HOSTS = 32
MAX_FILE_BYTES = 64 * 1024
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
NETNS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HOST_FIELDS = {"name", "connect", "netns", "env", "machine"}
LOCAL_TRANSPORTS = {"qemu", "qemu+unix"}


def _subnet(value: str) -> str:
    from vbench.host.networks import check_subnet

    return check_subnet(value)  # the lab's own rule (RFC 1918 only), raising ValueError


def _accel(value: str) -> str:
    if value not in ("kvm", "tcg"):
        raise ValueError("kvm or tcg")
    return value


def _fleet_home(value: str) -> str:
    """A host's own vbench home, only as FLEET_HOMES/NAME: a hosts file never chooses where root
    writes or which lab record, images and ssh wrapper it trusts; the directory under that
    root-owned place is made by vbench and checked (root-owned, not writable by others) in the
    child before use (:func:`vbench.core.paths.trusted_dir`)."""
    p = Path(value)
    if p.parent != FLEET_HOMES or not NAME.match(p.name) or str(p) != value:
        raise ValueError(f"{FLEET_HOMES}/NAME (NAME: letters, digits, '-', '_')")
    return value


ENV_ALLOWED = {"VBENCH_MGMT_SUBNET": _subnet, "VBENCH_TEST_SUBNET": _subnet,
               "VBENCH_ACCEL": _accel, "VBENCH_HOME": _fleet_home}


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
    return HostsFileError(f"{where}: {what}")


def _text(value: Any, where: str, pattern: re.Pattern, what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise _fail(where, f"{untrusted.shown(value)} is not {what}")
    return value


def _env(value: Any, where: str, problems: list[str]) -> dict[str, str]:
    if not isinstance(value, dict):
        problems.append(f"{where}: env must be a mapping of VARIABLE: value")
        return {}
    out: dict[str, str] = {}
    for key, val in value.items():
        check = ENV_ALLOWED.get(key) if isinstance(key, str) else None
        if check is None:
            problems.append(f"{where}: env {untrusted.shown(key)} is not allowed (allowed: "
                            f"{', '.join(sorted(ENV_ALLOWED))})")
            continue
        if not isinstance(val, str) or len(val) > 255 or not val.isprintable():
            problems.append(f"{where}: env {key}: {untrusted.shown(val)} is not a short string")
            continue
        try:
            out[key] = check(val)
        except ValueError as exc:
            problems.append(f"{where}: env {key}: {untrusted.shown(val)} is not {exc}")
    return out


def _field(item: dict, key: str, where: str, pattern: re.Pattern, what: str,
           problems: list[str]) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    try:
        return _text(value, where, pattern, what)
    except UserError as exc:
        problems.append(str(exc))
        return None


def host_problems(item: Any, where: str) -> tuple[Host | None, list[str]]:
    """(the host or None, every problem of one hosts-file entry, one line each)."""
    if not isinstance(item, dict):
        return None, [f"{where}: each host is a mapping with a name (and connect, netns, env, "
                      f"machine)"]
    problems = [f"{where}: unknown field {untrusted.shown(k)} (allowed: "
                f"{', '.join(sorted(HOST_FIELDS))})" for k in item if k not in HOST_FIELDS]
    name = _field(item, "name", where, NAME, "a host name (letters, digits, '-', '_'; at most 32, "
                  "starting with a letter or digit)", problems)
    if name is None and "name" not in item:
        problems.append(f"{where}: name is required")
    where = f"{where} ({name})" if name else where
    connect = item.get("connect")
    if connect is not None:
        if not isinstance(connect, str):
            problems.append(f"{where}: connect: {untrusted.shown(connect)} is not {URI_RULE}")
            connect = None
        else:
            try:
                connect = check_uri(connect, "connect:")
            except BadUri as exc:
                problems.append(f"{where}: {exc}")
                connect = None
    netns = _field(item, "netns", where, NETNS, "a network namespace name", problems)
    machine = _field(item, "machine", where, NAME, "a machine name (like a host name)", problems)
    env = _env(item.get("env", {}), where, problems)
    if problems or name is None:
        return None, problems
    host = Host(name=name, connect=connect, netns=netns, env=env, machine=machine)
    if host.netns and not host.local:
        return None, [f"{where}: netns only applies to a libvirt on this machine"]
    return host, []


def parse_host(item: Any, where: str) -> Host:
    host, problems = host_problems(item, where)
    if problems or host is None:
        raise HostsFileError.of(problems)
    return host


def hosts_problems(doc: Any, where: str = "hosts file") -> tuple[list[Host], list[str]]:
    """(the valid hosts, every problem of a parsed hosts document, one line each)."""
    if isinstance(doc, dict):
        if set(doc) != {"hosts"}:
            return [], [f"{where}: expected a list of hosts, or a mapping with only `hosts:`"]
        doc = doc["hosts"]
    if not isinstance(doc, list) or not doc:
        return [], [f"{where}: expected a non-empty list of hosts"]
    if len(doc) > MAX_HOSTS:
        return [], [f"{where}: {len(doc)} hosts; at most {MAX_HOSTS}"]
    hosts, problems = [], []
    seen: set[str] = set()
    for i, item in enumerate(doc):
        host, found = host_problems(item, f"{where}: host {i + 1}")
        problems += found
        if host is not None:
            hosts.append(host)
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and NAME.match(name):
            if name.lower() in seen:  # names become directories: none that differ in case only
                problems.append(f"{where}: host name {name!r} appears twice")
            seen.add(name.lower())
    targets: dict[str, str] = {}
    for h in hosts:
        target = (h.connect or "lab").lower() + (f" in {h.netns}" if h.netns else "")
        if target in targets and h.connect and not h.local:  # one libvirt measured twice at once
            problems.append(f"{where}: hosts {targets[target]!r} and {h.name!r} connect to the "
                            f"same libvirt ({h.connect}); list it once")
        targets.setdefault(target, h.name)
    return hosts, problems


def parse_hosts(doc: Any, where: str = "hosts file") -> list[Host]:
    """Validated hosts of a parsed hosts document (a list, or a mapping with ``hosts:``); a
    UserError listing every problem ("; "-separated) otherwise."""
    hosts, problems = hosts_problems(doc, where)
    if problems:
        raise HostsFileError.of(problems)
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
