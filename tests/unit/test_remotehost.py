"""Another host (vbench.host.remote): the pieces that need no VM and no network."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import types
from pathlib import Path, PurePosixPath

import pytest

from vbench.host import remote as rh

from vbench.host import remoteuri

from vbench.host import uris
from vbench.core.errors import LabError
from vbench.scenario.schema import load_scenario, load_scenario_text

ROOT = Path(__file__).resolve().parents[2]


def test_uri_parsing():
    t = remoteuri.parse_uri("qemu+ssh://root@10.0.0.5/system")
    assert (t.user, t.host, t.port, t.path) == ("root", "10.0.0.5", 22, "/system")
    assert t.known_hosts_name == "10.0.0.5"
    t = remoteuri.parse_uri("qemu+ssh://bench@hv1.example:2222/system")
    assert (t.user, t.host, t.port) == ("bench", "hv1.example", 2222)
    assert t.known_hosts_name == "[hv1.example]:2222"
    assert t.public_uri == "qemu+ssh://bench@hv1.example:2222/system"
    assert remoteuri.parse_uri("qemu+ssh://hv1/system").user == "root"
    assert uris.is_remote("qemu+ssh://hv1/system")
    assert not uris.is_remote("qemu:///system") and not uris.is_remote(None)
    assert not uris.is_remote("qemu+unix:///system?socket=/x")


@pytest.mark.parametrize("uri, why", [
    ("qemu+ssh://root:secret@hv1/system", "no password"),
    ("qemu+ssh://root@hv1/system?keyfile=/x", "no ?parameters"),
    ("qemu+ssh://root@hv1/session", "/system"),
    ("qemu+ssh:///system", "no valid host"),
    ("qemu+ssh://root@hv1:99999/system", "port"),
    ("qemu+ssh://ro%20ot@hv1/system", "no %-escapes"),
    ("qemu+ssh://Root@hv1/system", "not a user name"),
    ("qemu+ssh://root@-oProxyCommand=x/system", "no valid host"),
    ("qemu+tls://root@hv1/system", "qemu+ssh://"),
])
def test_uri_refusals_are_one_line(uri, why):
    with pytest.raises(LabError) as e:
        remoteuri.parse_uri(uri)
    assert why in str(e.value) and "\n" not in str(e.value)


def _known_hosts(tmp_path: Path, line: str) -> Path:
    p = tmp_path / "known_hosts"
    p.write_text(line)
    return p


def test_known_hosts_pinning(tmp_path):
    from vbench.host.ssh import new_client_key

    _, pub = new_client_key()
    kh = _known_hosts(tmp_path, f"10.0.0.5 {pub}\n[hv1]:2222 {pub}\n")
    keys = remoteuri.pinned_host_keys(remoteuri.parse_uri("qemu+ssh://root@10.0.0.5/system"), kh)
    assert list(keys) == ["ssh-ed25519"]
    assert remoteuri.pinned_host_keys(remoteuri.parse_uri("qemu+ssh://root@hv1:2222/system"), kh)
    # the same host on another port, or another host: refused with one line, never accepted
    for uri in ("qemu+ssh://root@hv1/system", "qemu+ssh://root@10.0.0.6/system"):
        with pytest.raises(LabError) as e:
            remoteuri.pinned_host_keys(remoteuri.parse_uri(uri), kh)
        assert "never accepts an unknown host key" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(LabError, match="cannot read known_hosts"):
        remoteuri.pinned_host_keys(remoteuri.parse_uri("qemu+ssh://root@hv1/system"), tmp_path / "missing")


def test_client_key_from_env_or_refusal(tmp_path, monkeypatch):
    monkeypatch.setenv("VBENCH_SSH_KEY", str(tmp_path / "k"))
    assert remoteuri.client_key_file() == tmp_path / "k"
    monkeypatch.delenv("VBENCH_SSH_KEY")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(LabError, match="VBENCH_SSH_KEY"):
        remoteuri.client_key_file()
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519").write_text("x")
    assert remoteuri.client_key_file() == tmp_path / ".ssh" / "id_ed25519"


def test_libvirt_ssh_transport_is_pinned_too(tmp_path):
    kh, key = tmp_path / "my known hosts", tmp_path / "id"
    w = remoteuri.ssh_wrapper(kh, key, tmp_path / "ssh" / "hv1-22.sh")
    argv = shlex.split(w.read_text().splitlines()[1])
    assert argv[:2] == ["exec", "ssh"] and argv[-1] == "$@"
    assert f"UserKnownHostsFile={kh}" in argv and "StrictHostKeyChecking=yes" in argv
    assert "BatchMode=yes" in argv and argv[argv.index("-i") + 1] == str(key)
    assert w.stat().st_mode & 0o777 == 0o700
    uri = remoteuri.libvirt_uri(remoteuri.parse_uri("qemu+ssh://root@hv1:2222/system"), w)
    assert uri.startswith("qemu+ssh://root@hv1:2222/system?command=") and "no_tty=1" in uri
    assert "StrictHostKeyChecking=no" not in w.read_text()


def test_remote_paths_stay_under_the_root():
    assert remoteuri.remote_path("guests", "vbench-x-0-a") == remoteuri.REMOTE_ROOT / "guests" / "vbench-x-0-a"
    for bad in ("..", "a/b", "$(reboot)", "a b", "", ".hidden;x", "-rf"):
        with pytest.raises(LabError):
            remoteuri.remote_path("guests", bad)
    for bad in ("/etc", "/var/lib/libvirt/vbench", "/var/lib/libvirt/vbench/../images"):
        with pytest.raises(LabError):
            remoteuri._inside_root(PurePosixPath(bad))


def test_scratch_commands_are_argv_lists():
    p = remoteuri.REMOTE_ROOT / "guests" / "vbench-r-0-v" / "scratch.raw"
    full = remoteuri.scratch_argv(p, 0.25, "full")
    assert full[0][0] == "dd" and f"of={p}" in full[0] and "count=256" in full[0]
    assert "conv=fsync" in full[0] and "if=/dev/urandom" in full[0]
    assert full[1] == ["truncate", "-s", str(2**28), str(p)]
    assert remoteuri.scratch_argv(p, 1, "falloc") == [["fallocate", "-l", str(2**30), str(p)]]
    assert remoteuri.scratch_argv(p, 1, "sparse") == [["truncate", "-s", str(2**30), str(p)]]
    with pytest.raises(LabError):
        remoteuri.scratch_argv(PurePosixPath("/tmp/x"), 1, "full")


class FakeSsh:
    def __init__(self) -> None:
        self.commands: list[str] = []

    def run_argv(self, argv, timeout=60.0, check=True):
        from vbench.core.metrics import CommandResult

        self.commands.append(shlex.join(argv))
        return CommandResult(shlex.join(argv), 0, "", "", 0.0)


class FakeSftp:
    def __init__(self) -> None:
        self.files: dict[str, io.StringIO] = {}

    def open(self, path, mode="r"):
        f = self.files[path] = io.StringIO()
        f.close = lambda: None  # type: ignore[method-assign]
        return contextlib.nullcontext(f)


def _host() -> rh.RemoteHost:
    h = rh.RemoteHost.__new__(rh.RemoteHost)
    h.target = remoteuri.parse_uri("qemu+ssh://root@hv1/system")
    h.libvirt_uri = "qemu+ssh://root@hv1/system?command=/w"
    h.ssh, h._sftp = FakeSsh(), FakeSftp()  # type: ignore[assignment]
    return h


def _lab(h: rh.RemoteHost):
    """A lab on the other host ``h`` (as lab.up makes it for qemu+ssh://)."""
    from vbench.host import hosts, lab

    return lab.Lab(h.libvirt_uri, None, lab.LabState(), hosts.OtherHost(h))


def test_remote_commands_are_quoted_and_confined():
    h = _host()
    f = h.host_scratch("20261127-083000-smoke", 0.25, "full")
    assert str(f) == "/var/lib/libvirt/vbench/guests/vbench-host-20261127-083000-smoke/scratch.raw"
    owner = json.loads(h._sftp.files[str(f.parent / "owner.json")].getvalue())  # type: ignore[attr-defined]
    assert owner["pid"] == os.getpid() and owner["client"]  # gc knows whose it is
    argv = ["fio", "--name=x; rm -rf /", f"--filename={f}"]
    h.run_confined(argv, f, ["timeout", "-k", "5", "30"], timeout=60)
    last = shlex.split(h.ssh.commands[-1])  # type: ignore[attr-defined]
    assert last[:4] == ["timeout", "-k", "5", "30"] and last[4] == "bwrap"
    assert last[last.index("--bind") + 1] == str(f) and "--unshare-all" in last
    assert last[-3:] == argv  # the hostile option is one argument, never shell syntax
    with pytest.raises(LabError):
        h.run_confined(argv, PurePosixPath("/etc/passwd"), [], timeout=60)
    with pytest.raises(LabError):
        h.guest_dir("../../etc")
    h.remove_dir(f.parent)
    assert shlex.split(h.ssh.commands[-1])[-1] == str(f.parent)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["smoke-disk.yaml", "disk.yaml", "smoke-net.yaml", "net.yaml"])
def test_disk_and_net_scenarios_are_supported(name):
    scn = load_scenario(str(ROOT / "scenarios" / name))
    assert remoteuri.unsupported(scn) == []
    remoteuri.refuse_unsupported(scn)


def test_vhost_is_refused_on_a_remote_host():
    text = (ROOT / "scenarios" / "smoke-net.yaml").read_text().replace(
        "nic: {model: virtio}", "nic: {model: virtio, vhost: true}")
    assert "vhost: true" in text
    assert remoteuri.unsupported(load_scenario_text(text, where="t")) == ["variant virtio-net: device nic"]


@pytest.mark.parametrize("name, what", [
    ("rng.yaml", "device rng"),
    ("balloon.yaml", "device balloon"),
    ("disk-nvme.yaml", "disk bus nvme"),
    ("fs.yaml", "device fs"),
])
def test_unsupported_scenarios_are_refused_in_one_line(name, what):
    scn = load_scenario(str(ROOT / "scenarios" / name))
    with pytest.raises(LabError) as e:
        remoteuri.refuse_unsupported(scn)
    msg = str(e.value)
    assert what in msg and "not supported on a remote host yet" in msg and "\n" not in msg


def test_ab_is_refused_on_a_remote_host():
    scn = load_scenario(str(ROOT / "scenarios" / "smoke-disk.yaml"))
    with pytest.raises(LabError, match="vbench ab: not supported on a remote host yet"):
        remoteuri.refuse_unsupported(scn, ab=True)


def test_a_workload_other_than_fio_iperf3_ping_is_refused():
    scn = load_scenario(str(ROOT / "scenarios" / "rng.yaml"))
    assert any(w.startswith("workload ") for w in remoteuri.unsupported(scn))


def test_remote_image_points_at_the_uploaded_copy():
    class Local:
        base, kernel, initrd = Path("/l/base.qcow2"), Path("/l/vmlinuz"), Path("/l/initrd.img")
        base_format, user, host_key_pub = "qcow2", "root", "ssh-ed25519 AAAA"

    d = remoteuri.remote_path("images", "ab" * 16)
    img = rh.RemoteImage(Local(), d)
    assert (img.base, img.kernel, img.initrd) == (d / "base", d / "kernel", d / "initrd")
    assert img.base_format == "qcow2" and img.host_key_pub == "ssh-ed25519 AAAA"


def test_remote_accelerator_is_tcg_unless_forced(monkeypatch):
    host = _lab(_host()).host
    monkeypatch.delenv("VBENCH_ACCEL", raising=False)
    a = host.accelerator(Path("/nowhere/vmlinuz"), None)
    assert a.name == "tcg" and "hv1" in a.reason
    assert host.accelerator(None, "kvm").name == "kvm"


def test_guest_checks_and_ab_sides_refuse_a_remote_host():
    from vbench.run import ab
    from vbench.host import lab

    with pytest.raises(LabError, match="not supported on a remote host yet"):
        lab.current("qemu+ssh://root@hv1/system")
    scn = load_scenario(str(ROOT / "scenarios" / "smoke-disk.yaml"))
    side = type("Side", (), {"uri": "qemu+ssh://root@hv1/system", "name": "b"})()
    with pytest.raises(LabError, match="vbench ab: not supported on a remote host yet"):
        ab.session_parts(scn, (side, side), None, print)


def test_gc_removes_only_dead_leftovers_of_this_machine(monkeypatch):
    import platform

    from vbench.core import procs

    h = _host()
    g = remoteuri.REMOTE_ROOT / "guests"
    owners = {"vbench-a-0-x": {"client": platform.node(), "pid": 1, "starttime": 1},  # dead
              "vbench-b-0-x": {"client": platform.node(), "pid": os.getpid(), "starttime": 2},
              "vbench-c-0-x": {"client": "elsewhere", "pid": 1, "starttime": 1},
              "vbench-d-0-x": {"client": platform.node(), "pid": 1, "starttime": 1}}
    monkeypatch.setattr(procs, "alive", lambda ref: ref.pid == os.getpid())

    class Ls(FakeSsh):
        def run_argv(self, argv, timeout=60.0, check=True):
            res = super().run_argv(argv, timeout, check)
            if argv[0] == "ls":
                res.stdout = "\n".join([*owners, "other-dir", "..", "x;rm"])
            return res

    h.ssh = Ls()  # type: ignore[assignment]
    monkeypatch.setattr(h, "read_tail", lambda p, n: json.dumps(owners[p.parent.name]).encode())
    done = h.remove_leftovers(live={str(g / "vbench-d-0-x")})
    removed = [shlex.split(c)[-1] for c in h.ssh.commands if c.startswith("rm ")]  # type: ignore[attr-defined]
    assert removed == [str(g / "vbench-a-0-x")]
    assert sum(d.startswith("left ") for d in done) == 2  # in use (b), made elsewhere (c); d is a live domain's


def test_a_remote_guest_lives_on_the_host_and_is_reached_through_it(monkeypatch):
    from vbench.guest.domain import guest_class
    from vbench.host import ssh as remote

    lb = _lab(_host())
    scn = load_scenario(str(ROOT / "scenarios" / "smoke-disk.yaml"))
    g = guest_class(lb)("vbench-r-0-virtio-blk", lb, type("Img", (), {"user": "root"})(),
                        scn.profile(scn.variants[0]), scn.guest, None, None, "")
    seen = {}

    def wait(*args, **kwargs):
        seen.update(kwargs)
        return FakeSsh()

    monkeypatch.setattr(remote, "wait_for_ssh", wait)
    g.ip = "10.254.0.9"
    g.reconnect()
    assert seen["via"] is lb.host.via is lb.host.session  # SSH through the host's session (a jump)
    assert str(g.dir) == "/var/lib/libvirt/vbench/guests/vbench-r-0-virtio-blk"
    assert g.qemu_pid() is None


def test_remote_peer_runs_on_the_host_and_is_killed_by_its_pid():
    class Chan:
        def __init__(self) -> None:
            self.sent, self.out, self.closed = "", [b"4321\n"], False

        def exec_command(self, cmd):
            self.sent = cmd

        def recv_ready(self):
            return bool(self.out)

        def recv(self, n):
            return self.out.pop(0)

        def exit_status_ready(self):
            return False

        def close(self):
            self.closed = True

    chan = Chan()
    transport = type("T", (), {"is_active": lambda s: True, "open_session": lambda s, timeout: chan})()
    h = _host()
    h._client = type("C", (), {"get_transport": lambda s: transport})()

    class Ss(FakeSsh):
        def run_argv(self, argv, timeout=60.0, check=True):
            res = super().run_argv(argv, timeout, check)
            if argv[0] == "ss":
                res.stdout = "LISTEN 0 5 10.254.1.1:5201 0.0.0.0:*"
            return res

    h.ssh = Ss()  # type: ignore[assignment]
    lab = _lab(h)
    with lab.host.peer(["iperf3", "-s", "-1", "-B", "10.254.1.1", "-p", "5201"], 5201) as p:
        assert p.pid == 4321
    argv = shlex.split(chan.sent)
    assert argv[:3] == ["sh", "-c", 'echo "$$"; exec "$@"'] and argv[-7:] == [
        "iperf3", "-s", "-1", "-B", "10.254.1.1", "-p", "5201"]
    assert "timeout" in argv and chan.closed
    assert h.ssh.commands[-1] == "kill -TERM 4321"  # type: ignore[attr-defined]
    lab.host.run(["ping", "-c", "1", "10.254.1.9"], timeout=10)
    assert h.ssh.commands[-1] == "ping -c 1 10.254.1.9"  # type: ignore[attr-defined]


def test_sftp_requests_of_threads_booting_side_by_side_take_turns():
    # paramiko's SFTP client hands a reply to whichever thread reads it: two guests reading their
    # consoles at once over one session once waited forever, each for the reply the other took.
    import threading
    import time

    class OneAtATime:
        def __init__(self) -> None:
            self.inside = self.most = 0

        def open(self, path, mode="r"):
            sftp = self

            class F(io.BytesIO):
                def __enter__(self):
                    sftp.inside += 1
                    sftp.most = max(sftp.most, sftp.inside)
                    time.sleep(0.05)
                    return self

                def __exit__(self, *exc):
                    sftp.inside -= 1

                def stat(self):
                    return types.SimpleNamespace(st_size=5)

            return F(b"tail!")

    h = _host()
    h._sftp = OneAtATime()  # type: ignore[assignment]
    got: list[bytes] = []
    threads = [threading.Thread(target=lambda: got.append(h.read_tail(
        PurePosixPath("/var/lib/libvirt/vbench/guests/vbench-x/console.log"), 4)))
        for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [b"ail!"] * 4 and h._sftp.most == 1  # type: ignore[attr-defined]


def test_an_sftp_request_the_other_host_never_answers_times_out_and_a_new_client_follows():
    # A boot thread reading its console through a host that stopped answering used to wait
    # forever (Ctrl-C's cancel never reached it); now the read gives up and the client is dropped.
    import socket

    class Channel:
        timeout = None

        def settimeout(self, t):
            self.timeout = t

    class Hung:
        closed = False

        def __init__(self) -> None:
            self.channel = Channel()

        def get_channel(self):
            return self.channel

        def open(self, path, mode="r"):
            raise socket.timeout("timed out")

        def close(self):
            self.closed = True

    opened: list[Hung] = []

    def open_sftp():
        opened.append(Hung())
        return opened[-1]

    h = _host()
    h._sftp, h._client = None, types.SimpleNamespace(open_sftp=open_sftp)  # type: ignore[assignment]
    path = PurePosixPath("/var/lib/libvirt/vbench/guests/vbench-x/console.log")
    assert h.read_tail(path, 4) == b""
    assert opened[0].channel.timeout == rh.SFTP_TIMEOUT_S and opened[0].closed and h._sftp is None
    assert h.read_tail(path, 4) == b"" and len(opened) == 2  # a fresh client for the next request
    with pytest.raises(TimeoutError), h.sftp() as sftp:
        sftp.open(str(path))


def test_an_upload_or_claim_the_other_host_stops_answering_is_one_line_and_keeps_nothing(tmp_path):
    import socket

    class Stalls(FakeSftp):
        def put(self, *a, **k):
            raise socket.timeout("timed out")

        def open(self, path, mode="r"):
            raise socket.timeout("timed out")

        def close(self):
            pass

    h = _host()
    h._sftp = Stalls()  # type: ignore[assignment]
    files = {}
    for n in ("base", "kernel", "initrd"):
        files[n] = tmp_path / n
        files[n].write_bytes(n.encode())
    img = types.SimpleNamespace(**files)
    h.run = lambda argv, timeout=60.0, check=True: types.SimpleNamespace(ok=False, stdout="")  # type: ignore[method-assign]
    removed: list[str] = []
    h.remove_dir = lambda p: removed.append(str(p))  # type: ignore[method-assign]
    with pytest.raises(LabError, match=r"uploading the guest image to hv1 failed \(TimeoutError"):
        h.upload_image(img, say=lambda m: None)
    assert removed[-1].endswith(".part")  # the half-uploaded directory, and nothing else
    h._sftp = Stalls()  # type: ignore[assignment]
    with pytest.raises(LabError, match="owner.json on hv1"):
        h.claim(remoteuri.REMOTE_ROOT / "guests" / "vbench-x")


# ---- a remote host's facts, read by key -------------------------------------------------------

def _facts_of(monkeypatch, stdout: str) -> dict:
    from vbench.host import libvirtd

    host = object.__new__(rh.RemoteHost)
    host.ssh = types.SimpleNamespace(run=lambda script, timeout: types.SimpleNamespace(
        stdout=stdout))
    host.target = types.SimpleNamespace(public_uri="qemu+ssh://hv1/system", host="hv1",
                                        path=PurePosixPath("/"))
    monkeypatch.setattr(libvirtd, "daemon_facts", lambda uri: {})
    return host.host_facts("qemu+ssh://hv1/system")


def test_a_fact_the_remote_host_cannot_give_leaves_the_others_in_place(monkeypatch):
    """No QEMU and no "model name" (an ARM host's /proc/cpuinfo): both are empty, and the kernel,
    fio, KVM module and scheduler are still what the host said (by position, each later fact
    moved into the field before it)."""
    out = ("node=hv1\nkernel=6.1.0-18-arm64\ncpus=16\ncpu_model=\nmemory_mib=64000\nqemu=\n"
           "fio=fio-3.33\nkvm=\nautogroup=0\n")
    facts = _facts_of(monkeypatch, out)
    assert facts["qemu_version"] == "" and facts["cpu_model"] == ""
    assert facts["host_kernel"] == "6.1.0-18-arm64" and facts["memory_mib"] == 64000
    assert facts["fio_version_host"] == "fio-3.33" and facts["kvm_module"] == "none"
    assert facts["host_scheduler"] == "autogroup off"


def test_remote_fact_lines_are_read_by_an_allow_list_of_keys(monkeypatch):
    """Lines of another shape, keys not asked for and a second line for a key are ignored; a value
    keeps its own '=' and is cut to a bound; numbers that are not numbers are None."""
    out = ("motd: welcome\nnode=hv1\nnode=forged\nhost_kernel=forged\ncpu_model=a=b\n"
           f"qemu={'Q' * 10_000}\ncpus=eight\nmemory_mib=-5\n")
    facts = _facts_of(monkeypatch, out)
    assert facts["host"] == "hv1" and facts["host_kernel"] == ""
    assert facts["cpu_model"] == "a=b" and len(facts["qemu_version"]) == 200
    assert facts["cpus"] is None and facts["memory_mib"] is None


def test_the_remote_fact_shell_prints_every_key_on_this_machine():
    """The script itself, run by sh here: one line per key, whatever this machine has."""
    import subprocess

    from vbench.core.untrusted import labelled_lines

    out = subprocess.run(["sh", "-c", rh.host_facts_sh()], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    keys = {key for key, _ in rh.fact_commands()}
    got = labelled_lines(out, keys)
    assert set(got) == keys
    assert got["cpus"] == str(os.cpu_count()) and got["kernel"] == os.uname().release
    assert got["autogroup"] in ("0", "1", "none")


def test_no_kvm_module_is_the_same_word_here_and_on_another_host(monkeypatch):
    from vbench.host import accel

    monkeypatch.setattr(accel, "KVM_MODULES", ("vbench_no_such_module",))
    assert accel.kvm_module() == accel.NO_KVM_MODULE
    assert _facts_of(monkeypatch, "kvm=\n")["kvm_module"] == accel.NO_KVM_MODULE
