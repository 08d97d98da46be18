"""Issue 21: generated hosts files, libvirt URIs and scenario device sections. Whatever is
accepted satisfies the rules of the second pass (checked here by independent oracles); whatever
is refused is one line. The number of generated inputs is printed at the end."""

from __future__ import annotations

import ipaddress
import re
import sys

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vbench.core.errors import ScenarioError, UserError
from vbench.scenario.schema import load_scenario_text

COUNT: dict[str, int] = {}
ACCEPTED: dict[str, int] = {}  # how many of them were accepted: a property no input passes checks nothing
SETTINGS = settings(max_examples=400, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# ---- the rules, written independently of vbench's code --------------------------------------------

_SSH = re.compile(r"qemu\+ssh://(?:([a-z_][a-z0-9_.-]{0,31})@)?"
                  r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*)(?::([1-9][0-9]{0,4}))?/system")
RFC1918 = [ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


_UNIX = re.compile(r"qemu\+unix:///system\?socket=(/[A-Za-z0-9_.+-]+)+")


def uri_ok(uri: str) -> bool:
    if uri in ("qemu:///system", "qemu:///session"):
        return True
    if _UNIX.fullmatch(uri) and len(uri) <= 255:  # a local socket; the socket is checked when opened
        return "/../" not in uri + "/" and "/./" not in uri + "/"
    m = _SSH.fullmatch(uri)
    if not m or len(uri) > 255:
        return False
    port = m.group(3)
    return port is None or 1 <= int(port) <= 65535


def subnet_ok(text: str) -> bool:
    net = ipaddress.IPv4Network(text)
    return any(net.subnet_of(r) for r in RFC1918) and 64 <= net.num_addresses <= 65536


def home_ok(text: str) -> bool:
    return re.fullmatch(r"/var/lib/vbench/homes/[A-Za-z0-9][A-Za-z0-9_-]{0,31}", text) is not None


def one_line(msg: str) -> None:
    assert "\n" not in msg and len(msg) < 600 and "Traceback" not in msg, msg[:700]


def one_line_each(exc: Exception) -> None:
    """Every problem of a refusal is one bounded line (the CLI prints one line per problem)."""
    for problem in getattr(exc, "problems", None) or [str(exc)]:
        one_line(problem)


# ---- generators ---------------------------------------------------------------------------------

SCHEMES = ["qemu", "qemu+ssh", "qemu+libssh", "qemu+libssh2", "qemu+tcp", "qemu+tls", "qemu+unix",
           "qemu+ext", "test", "QEMU+SSH", "qemu+ssh+x", ""]
USERS = ["", "root@", "bench@", "root:pw@", ":hunter2@", "ro%6Ft@", "-oProxyCommand=x@", "a b@",
         "root@root@", "ROOT@", "_x@"]
HOSTS = ["", "h", "kvm-b.example", "10.0.0.7", "[::1]", "[fd00::7]", "[::1", "[zz::1]", "-x",
         "h_x", "KVM-B", "a" * 260, "h%0a", "h/x", "0"]
PORTS = ["", ":", ":0", ":00", ":22", ":2222", ":65535", ":65536", ":-1", ":+22", ":22x",
         ":99999999999"]
PATHS = ["/system", "/session", "", "/", "/system/", "/embed", "//system", "/system#x"]
QUERIES = ["", "?", "?socket=/tmp/s", "?no_verify=1", "?command=/tmp/evil&no_tty=1",
           "?known_hosts=/etc/ld.so.preload", "?keyfile=/root/.ssh/id_rsa"]

GOOD = ["qemu+ssh", "root@", "kvm-b.example", ":2222", "/system", ""]
PARTS = [SCHEMES, USERS, HOSTS, PORTS, PATHS, QUERIES]


@st.composite
def one_part_off(draw):
    """A good qemu+ssh URI with one part replaced (the near misses an allow-list must catch)."""
    parts = list(GOOD)
    i = draw(st.integers(0, len(parts) - 1))
    parts[i] = draw(st.sampled_from(PARTS[i] + (["ro%6Ft@", "r%40@"] if i == 1 else [])
                                    + (["[fe80::1%eth0]", "[::ffff:10.0.0.1]"] if i == 2 else [])
                                    + ([":0022", ":1%32"] if i == 3 else [])))
    s, u, h, p, pa, q = parts
    return f"{s}://{u}{h}{p}{pa}{q}"


uris = st.one_of(
    one_part_off(),
    st.builds(lambda s, u, h, p, pa, q: f"{s}://{u}{h}{p}{pa}{q}", st.sampled_from(SCHEMES),
              st.sampled_from(USERS), st.sampled_from(HOSTS), st.sampled_from(PORTS),
              st.sampled_from(PATHS), st.sampled_from(QUERIES)),
    st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=60),
    st.builds(lambda a, b: a + b, st.sampled_from(["qemu:///system", "qemu+ssh://h/system"]),
              st.text(max_size=8)),
)

subnet_texts = st.one_of(
    st.builds(lambda a, b, c, p: f"{a}.{b}.{c}.0/{p}", st.sampled_from(
        [0, 8, 10, 100, 127, 169, 172, 192, 198, 203, 224, 240, 255]),
        st.sampled_from([0, 16, 18, 31, 32, 64, 168, 254]), st.integers(0, 255),
        st.integers(8, 30)),
    st.text(max_size=20))
env_values = st.dictionaries(
    st.sampled_from(["VBENCH_MGMT_SUBNET", "VBENCH_TEST_SUBNET", "VBENCH_HOME", "VBENCH_ACCEL",
                     "PATH", "LD_PRELOAD", "VBENCH_SSH_KEY"]),
    st.one_of(subnet_texts, st.sampled_from(
        ["/var/lib/vbench/homes/a", "/var/lib/vbench/homes/../x", "/tmp/x", "/var/lib/vbench",
         "/var/lib/vbench/homes/a/b", "kvm", "tcg", "/var/lib/vbench/homes/A-1"])),
    max_size=3)
host_items = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "A", "b", "kvm-b", "../x", "x y", "c" * 40])},
    optional={"connect": uris, "env": env_values, "netns": st.sampled_from(["ns1", "a b"]),
              "machine": st.sampled_from(["m1", "M1"]), "shell": st.just("id")})


# ---- properties ------------------------------------------------------------------------------

@SETTINGS
@given(uris)
def test_every_accepted_uri_satisfies_the_rule(uri):
    from vbench.core.errors import BadUri
    from vbench.host.uris import check_uri

    COUNT["uris"] = COUNT.get("uris", 0) + 1
    try:
        check_uri(uri)
    except BadUri as exc:
        one_line_each(exc)
        assert "hunter2" not in str(exc)
    else:
        assert uri_ok(uri), uri
        ACCEPTED["uris"] = ACCEPTED.get("uris", 0) + 1


@SETTINGS
@given(st.lists(host_items, min_size=1, max_size=4))
def test_every_accepted_hosts_file_satisfies_the_rules(items):
    COUNT["hosts files"] = COUNT.get("hosts files", 0) + 1
    if _accepted_hosts_satisfy_the_rules(items):
        ACCEPTED["hosts files"] = ACCEPTED.get("hosts files", 0) + 1


# Hosts whose env names only the keys a hosts file may set, with values near the rules' edges
# (RFC 1918 or not, 64 to 65536 addresses or not, a home under homes/ or not): the hosts files
# above almost never pass as a whole, so without these no accepted env value would be checked.
near_env = st.dictionaries(
    st.sampled_from(["VBENCH_MGMT_SUBNET", "VBENCH_TEST_SUBNET", "VBENCH_HOME", "VBENCH_ACCEL"]),
    st.one_of(st.builds(lambda a, b, p: f"{a}.{b}.0.0/{p}", st.sampled_from([10, 172, 192, 100, 127]),
                        st.sampled_from([0, 16, 31, 168, 199]), st.integers(14, 28)),
              st.sampled_from(["/var/lib/vbench/homes/a", "/var/lib/vbench/homes/A-1",
                               "/var/lib/vbench/homes/../x", "/var/lib/vbench/homes/a/b",
                               "/var/lib/vbench/homes/-a", "kvm", "tcg", "KVM", "hvf"])),
    min_size=1, max_size=2)


@SETTINGS
@given(near_env, st.sampled_from([None, "qemu:///system", "qemu+ssh://root@kvm-b.example/system"]))
def test_every_accepted_env_of_a_host_satisfies_the_rules(env, connect):
    COUNT["host envs"] = COUNT.get("host envs", 0) + 1
    item = {"name": "a", "env": env, **({"connect": connect} if connect else {})}
    if _accepted_hosts_satisfy_the_rules([item]):
        ACCEPTED["host envs"] = ACCEPTED.get("host envs", 0) + 1


def _accepted_hosts_satisfy_the_rules(items) -> bool:
    """Parse a hosts file; a refusal is one bounded line, an acceptance satisfies every rule.
    True when accepted."""
    from vbench.fleet import hosts

    try:
        parsed = hosts.parse_hosts(yaml.safe_load(yaml.safe_dump(items)), "hosts.yaml")
    except UserError as exc:
        one_line_each(exc)
        assert "hunter2" not in str(exc)
        return False
    names = [h.name.lower() for h in parsed]
    assert len(set(names)) == len(names)
    remote = [h.connect.lower() for h in parsed if h.connect and not h.local]
    assert len(set(remote)) == len(remote)
    for h in parsed:
        assert h.connect is None or uri_ok(h.connect), h.connect
        assert set(h.env) <= {"VBENCH_MGMT_SUBNET", "VBENCH_TEST_SUBNET", "VBENCH_HOME",
                              "VBENCH_ACCEL"}
        for key, value in h.env.items():
            if key.endswith("_SUBNET"):
                assert subnet_ok(value), value
            elif key == "VBENCH_HOME":
                assert home_ok(value), value
            else:
                assert value in ("kvm", "tcg")
    return True


HOSTILE_PATHS = ["/tmp/evil", "/usr/lib/qemu/../../tmp/evil", "/usr/bin/sh", "./x",
                 "qemu+tcp://evil/system"]
EXTRA_KEYS = ["virtiofsd", "binary", "emulator", "path", "source", "file", "command", "connect",
              "helper", "script"]
DEVICES = {"fs": st.fixed_dictionaries({}, optional={"model": st.sampled_from(["virtiofs", "9p"]),
                                                     "accessmode": st.sampled_from(
                                                         ["mapped", "passthrough"])}),
           "disk": st.fixed_dictionaries({}, optional={"bus": st.sampled_from(
               ["virtio", "sata", "scsi", "nvme"]), "size_gib": st.sampled_from([1, 2, 8])}),
           "pmem": st.fixed_dictionaries({}, optional={"size_mib": st.sampled_from([128, 1024])}),
           "nic": st.fixed_dictionaries({}, optional={"model": st.sampled_from(
               ["virtio", "e1000", "rtl8139"])})}


@st.composite
def scenarios(draw):
    device = draw(st.sampled_from(sorted(DEVICES)))
    variants = []
    for i in range(draw(st.integers(1, 3))):
        spec = dict(draw(DEVICES[device]))
        if draw(st.booleans()):
            spec[draw(st.sampled_from(EXTRA_KEYS))] = draw(st.sampled_from(HOSTILE_PATHS))
        variants.append({"name": f"v{i}", device: spec})
    doc = {"name": "s", "device": device, "variants": variants,
           "workloads": [{"name": "w", "fio": {"rw": "randread"}}]}
    if draw(st.booleans()):
        doc[draw(st.sampled_from(["connect", "emulator", "binary"]))] = draw(
            st.sampled_from(HOSTILE_PATHS))
    return doc


def _strings(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


@SETTINGS
@given(scenarios())
def test_no_accepted_scenario_names_a_program(doc):
    from vbench.devices import DEVICES as REGISTRY
    from vbench.devices import GuestContext
    from vbench.devices.base import DomainFiles
    from vbench.devices.fs import VIRTIOFSD_PATHS

    COUNT["scenarios"] = COUNT.get("scenarios", 0) + 1
    try:
        scn = load_scenario_text(yaml.safe_dump(doc), "x.yaml")
    except ScenarioError as exc:
        one_line_each(exc)
        return
    assert "connect" not in scn.model_dump()
    from pathlib import Path

    files = DomainFiles(Path("/g/overlay.qcow2"), Path("/g/scratch.raw"), Path("/g/console.log"),
                        None, None)
    for v in scn.variants:
        prof = scn.profile(v)
        assert not set(HOSTILE_PATHS) & set(_strings(prof.model_dump()))
        for dev, spec in prof.present():
            frag = dev.xml(spec, GuestContext(name="g", files=files, memory_mib=1024, vcpus=1))
            for path in re.findall(r"<binary path=['\"]([^'\"]*)", frag.devices):
                assert path in VIRTIOFSD_PATHS
            assert not any(p in frag.devices + frag.domain + frag.qemu_args for p in HOSTILE_PATHS)
        assert REGISTRY  # the registry was used
    ACCEPTED["scenarios"] = ACCEPTED.get("scenarios", 0) + 1


def test_zz_print_the_number_of_generated_inputs(capsys):
    total = sum(COUNT.values())
    with capsys.disabled():
        print(f"\nissue 21 property tests: {total} generated inputs "
              f"({', '.join(f'{k}: {n}, {ACCEPTED.get(k, 0)} accepted' for k, n in sorted(COUNT.items()))})",
              file=sys.stderr)
    if len(COUNT) == 4:  # the whole file ran
        assert total >= 4 * 100
        # each property saw accepted inputs, or it checked nothing but refusals
        assert all(ACCEPTED.get(k, 0) > 0 for k in COUNT), ACCEPTED
    else:
        pytest.skip("run the whole file for the count")
