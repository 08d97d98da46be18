"""Issue 10: the host-baseline fio runs sandboxed (bubblewrap): it can write its scratch file and
nothing else, reaches no network, has no capabilities and no_new_privs. Runs the real bwrap (as
scripts/setup.sh installs it); no VM."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from vbench.core.errors import LabError
from vbench.workloads.fio import fio_argv, parse_fio_json
from vbench.host.sandbox import confine


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)


@pytest.fixture
def scratch(tmp_path):
    f = tmp_path / "scratch.raw"
    with open(f, "wb") as fh:
        fh.truncate(16 << 20)
    return f


def test_sandboxed_fio_measures_its_scratch_file(scratch):
    argv = fio_argv("w", str(scratch), {"ioengine": "psync", "rw": "randwrite", "bs": "4k",
                                        "size": "8m"}, 1, 0)
    res = run(confine(argv, scratch))
    assert res.returncode == 0, res.stderr
    assert any(s.metric == "iops" and s.value > 0 for s in parse_fio_json(res.stdout, "w"))


def test_sandbox_cannot_write_outside_its_scratch_file(scratch, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("original")
    code = (f"import pathlib\n"
            f"pathlib.Path({str(scratch)!r}).write_text('ok')\n"
            f"for p in ({str(victim)!r}, {str(tmp_path / 'new')!r}, '/etc/vbench-pwned', "
            f"'/root/vbench-pwned', '/var/tmp/vbench-pwned'):\n"
            f"    try:\n"
            f"        open(p, 'w').write('pwned'); print('WROTE', p)\n"
            f"    except OSError as e:\n"
            f"        print('refused', p, e.strerror)\n")
    res = run(confine([sys.executable, "-c", code], scratch))
    assert res.returncode == 0, res.stderr
    assert "WROTE" not in res.stdout and res.stdout.count("refused") == 5
    assert victim.read_text() == "original" and not (tmp_path / "new").exists()
    assert scratch.read_text() == "ok"


def test_sandboxed_fio_cannot_write_other_files(scratch, tmp_path):
    """fio itself, pointed at another file (as a hostile option might), cannot create it."""
    other = tmp_path / "other.raw"
    res = run(confine(["fio", "--name=x", f"--filename={other}", "--size=1m", "--rw=write",
                       "--output-format=json"], scratch))
    assert res.returncode != 0 and not other.exists()


def test_sandbox_has_no_network_and_no_privileges(scratch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    code = (f"import socket, pathlib\n"
            f"s = socket.socket(); s.settimeout(3)\n"
            f"try:\n    s.connect(('127.0.0.1', {port})); print('CONNECTED')\n"
            f"except OSError as e:\n    print('no connection', e)\n"
            f"print(sorted(pathlib.Path('/sys/class/net').iterdir()) and open('/proc/net/dev').read())\n"
            f"st = open('/proc/self/status').read()\n"
            f"print([l for l in st.splitlines() if l.startswith(('NoNewPrivs', 'CapEff', 'CapBnd'))])\n")
    try:
        res = run(confine([sys.executable, "-c", code], scratch))
    finally:
        listener.close()
    assert res.returncode == 0, res.stderr
    assert "CONNECTED" not in res.stdout and "no connection" in res.stdout
    devs = [line.split(":")[0].strip() for line in res.stdout.splitlines() if ":" in line
            and line.strip().split(":")[0] in ("lo", "eth0", "ens3", "veth0")]
    assert all(d == "lo" for d in devs)
    assert "'NoNewPrivs:\\t1'" in res.stdout
    assert "'CapEff:\\t0000000000000000'" in res.stdout


def test_sandbox_refuses_a_symlink_or_missing_target(tmp_path, scratch):
    link = tmp_path / "link"
    link.symlink_to("/etc/passwd")
    with pytest.raises(LabError):
        confine(["true"], link)
    with pytest.raises(LabError):
        confine(["true"], tmp_path / "missing")


def test_missing_bwrap_is_one_clear_line(monkeypatch, scratch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(LabError, match="setup.sh"):
        confine(["true"], scratch)
