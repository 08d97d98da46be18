"""The one allow-list of libvirt URIs, used by every entry point (``--connect``, ``vbench ab
uri=``, a hosts file's ``connect:``, the lab's own state, the fleet's identity probe) and again
where a connection is opened (:func:`check_opened_uri`): ``qemu:///system``, ``qemu:///session``,
``qemu+ssh://[USER@]HOST[:PORT]/system`` (HOST a name, an IPv4 address or an IPv6 address in
brackets; PORT 1-65535) and, for a second libvirtd of this machine, ``qemu+unix:///system?socket=
/ABSOLUTE/PATH`` (a plain path; when the connection is opened the socket must be a socket, not a
link, owned by root or the caller, in directories others cannot write). Nothing else: no other
transport, no other ``?parameters`` (libvirt's ``no_verify``, ``known_hosts``, ``keyfile``,
``command`` choose files and programs), no password. Imports nothing of vbench but its errors
(and, lazily, its paths)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from vbench.core.errors import BadUri

SCHEMES = ("qemu+ssh",)
LOCAL_URIS = ("qemu:///system", "qemu:///session")
URI_RULE = ("qemu:///system, qemu:///session, qemu+unix:///system?socket=/ABSOLUTE/PATH or "
            "qemu+ssh://[USER@]HOST[:PORT]/system (no other ?parameters, no password)")
# A libvirtd of this machine on another socket (a second daemon, a container's): the one parameter
# allowed, a plain absolute path; the socket itself is checked when the connection is opened.
_UNIX_RE = re.compile(r"^qemu\+unix:///system\?socket=(/[A-Za-z0-9_.+-]+(?:/[A-Za-z0-9_.+-]+)*)$")
MAX_URI = 255
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$|^\[[0-9A-Fa-f:]+\]$")


def is_remote(uri: str | None) -> bool:
    return bool(uri) and (uri or "").partition(":")[0] in SCHEMES


@dataclass(frozen=True)
class Target:
    """Where ``--connect qemu+ssh://...`` points."""

    user: str
    host: str
    port: int
    path: str

    @property
    def known_hosts_name(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    @property
    def url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def public_uri(self) -> str:
        """The URI as recorded: no password, no query (vbench's key/known_hosts paths)."""
        port = "" if self.port == 22 else f":{self.port}"
        return f"qemu+ssh://{self.user}@{self.url_host}{port}{self.path}"


def _shown(uri: str) -> str:
    """The URI for a message: printable, short, and without a password."""
    text = re.sub(r"(//[^/@]*?):[^/@]*@", r"\1:***@", uri)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_uri(uri: str, where: str = "--connect") -> Target:
    """``qemu+ssh://[USER@]HOST[:PORT]/system``; anything else is refused with one line."""
    if not isinstance(uri, str) or len(uri) > MAX_URI or not uri.isascii() \
            or any(not c.isprintable() or c.isspace() for c in uri):
        raise BadUri(f"{where} {_shown(str(uri))}: not a libvirt URI (at most {MAX_URI} printable "
                     f"ASCII characters, no spaces)")
    try:
        parts = urlsplit(uri)
        parts.hostname, parts.port  # noqa: B018  (both raise ValueError on a malformed netloc)
    except ValueError:
        raise BadUri(f"{where} {_shown(uri)}: no valid host name or port") from None
    if parts.scheme not in SCHEMES:
        raise BadUri(f"{where} {_shown(uri)}: another host is reached as "
                     f"qemu+ssh://USER@HOST[:PORT]/system")
    if parts.password is not None or ":" in parts.netloc.rpartition("@")[0]:
        raise BadUri(f"{where.rstrip(':')}: put no password in the URI; vbench logs in with a key "
                     f"(VBENCH_SSH_KEY or ~/.ssh/id_*)")
    if "%" in uri:  # no percent-encoding (a user "ro%6Ft" is root) and no IPv6 zone (fe80::1%eth0)
        raise BadUri(f"{where} {_shown(uri)}: no %-escapes in the URI; write it plainly")
    if parts.query or parts.fragment or "?" in uri or "#" in uri:
        raise BadUri(f"{where} {parts.scheme}://...: no ?parameters please; vbench sets the key "
                     f"and known_hosts itself (VBENCH_SSH_KEY, VBENCH_KNOWN_HOSTS)")
    hostport = parts.netloc.rpartition("@")[2]
    host = parts.hostname or ""
    if hostport.startswith("["):
        try:
            ok = ipaddress.ip_address(host).version == 6
        except ValueError:
            ok = False
    else:
        ok = bool(_HOST_RE.match(host)) and ":" not in host and "%" not in hostport
    if not host or not ok:
        raise BadUri(f"{where} {_shown(uri)}: no valid host name")
    port = parts.port
    port_text = hostport.rpartition("]")[2].partition(":")[2] if ":" in hostport.rpartition("]")[2] \
        else None
    if hostport.endswith(":") or (port is not None and not 1 <= port <= 65535) \
            or (port_text is not None and not re.fullmatch(r"[1-9][0-9]{0,4}", port_text)):
        raise BadUri(f"{where} {_shown(uri)}: the port is not a number from 1 to 65535")
    user = unquote(parts.username or "root")
    if not re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}", user):
        raise BadUri(f"{where} {_shown(uri)}: {user!r} is not a user name")
    if parts.path != "/system":
        raise BadUri(f"{where} {_shown(uri)}: only the system daemon (/system) is supported on "
                     f"another host")
    return Target(user, host, port or 22, parts.path)


def check_uri(uri: str, where: str = "--connect") -> str:
    """``uri`` when the allow-list admits it (see the module docstring), else :class:`BadUri`
    (one line, exit 3). The one validator of every libvirt URI vbench is given."""
    if uri in LOCAL_URIS:
        return uri
    m = _UNIX_RE.match(uri) if isinstance(uri, str) and len(uri) <= MAX_URI else None
    if m:
        if any(part in (".", "..") for part in m.group(1).split("/")):
            raise BadUri(f"{where} {_shown(uri)}: the socket path has . or .. in it")
        return uri
    if isinstance(uri, str) and uri.partition(":")[0] in SCHEMES:
        parse_uri(uri, where)
        return uri
    raise BadUri(f"{where} {_shown(str(uri))}: not a libvirt URI vbench accepts; use {URI_RULE}")


def check_opened_uri(uri: str) -> str:
    """The gate where a libvirt connection is opened: an allowed URI, or the pinned form vbench
    itself builds from one (:func:`libvirt_uri`: its ssh wrapper under the lab directory)."""
    from vbench.core import paths

    base, sep, query = uri.partition("?")
    if not sep:
        return check_uri(uri, "libvirt URI")
    if uri.startswith("qemu+unix:"):
        check_uri(uri, "libvirt URI")
        check_socket(Path(uri.partition("socket=")[2]))
        return uri
    t = parse_uri(base, "libvirt URI")
    wrapper = wrapper_path(t, paths.lab_dir())
    if uri != libvirt_uri(t, wrapper):
        raise BadUri(f"libvirt URI {_shown(base)}?...: only vbench's pinned ssh wrapper may be "
                     f"given as a parameter")
    return uri


def check_socket(path: Path) -> Path:
    """A libvirt socket vbench (root) may talk to: a socket, not a link, owned by root (or the
    user running vbench), in a directory chain nobody else can write (paths.trusted_dir)."""
    import os
    import stat

    from vbench.core import paths

    try:
        st = os.lstat(path)
    except OSError as exc:
        raise BadUri(f"libvirt socket {path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid not in (0, os.geteuid()):
        raise BadUri(f"libvirt socket {path}: not a socket owned by root")
    try:
        paths.trusted_dir(path.parent)
    except Exception as exc:  # a LabError saying which directory and why
        raise BadUri(f"libvirt socket {path}: {exc}") from None
    return path


def wrapper_path(t: Target, lab_dir: Path) -> Path:
    return lab_dir / "ssh" / f"{t.host.replace(':', '_')}-{t.port}.sh"


def libvirt_uri(t: Target, wrapper: Path) -> str:
    port = "" if t.port == 22 else f":{t.port}"
    return (f"qemu+ssh://{t.user}@{t.url_host}{port}{t.path}"
            f"?command={quote(str(wrapper), safe='/')}&no_tty=1")


