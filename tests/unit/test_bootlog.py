"""Where a boot stopped, from console text (captured from real guests under tests/data/console/,
and crafted) and the lease table: vbench.host.bootlog, and the stall rule the boot wait uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from vbench.host import bootlog

DATA = Path(__file__).resolve().parents[1] / "data" / "console"

KERNEL = ("[    0.000000] Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) (gcc-12)\n"
          "[    0.000000] Command line: root=LABEL=vbench-root rw console=ttyS0,115200\n")
INITRAMFS = "[    9.387129] Run /init as init process\nLoading, please wait...\n"
SYSTEMD = ("[   25.810444] systemd[1]: systemd 252.39-1~deb12u2 running in system mode\n"
           "[   34.291076] vbench-boot: userspace \n")
NETWORK = "[   64.589165] vbench-boot: network eth0 10.254.0.18/24\n"
SSHD = "[   62.470959] vbench-boot: sshd \n"


def test_captured_initramfs_hang_stopped_after_the_kernel():
    text = (DATA / "initramfs-shell.log").read_text(errors="replace")
    p = bootlog.read(text)
    assert p.kernel and p.initramfs and p.initramfs_shell and not p.userspace
    assert p.stage == "kernel"
    d = bootlog.explain(text)
    assert d.stage == "kernel"
    assert d.reason.startswith("kernel booted, userspace did not start (the initramfs dropped "
                               "to its emergency shell)")
    assert "'(initramfs)'" in d.reason


def test_captured_full_boot_reaches_every_stage():
    text = (DATA / "full-boot.log").read_text(errors="replace")
    p = bootlog.read(text)
    assert p.kernel and p.userspace and p.sshd and p.network.startswith("eth0 10.254.")
    assert p.stage == "sshd" and not p.panic


@pytest.mark.parametrize("text, lease, stage, reason", [
    ("", None, "none", "no console output at all"),
    ("SeaBIOS (version 1.16.2-debian-1.16.2-1)\n", None, "console",
     "console output, but the kernel did not start"),
    (KERNEL, None, "kernel", "kernel booted, userspace did not start"),
    (KERNEL + INITRAMFS, None, "kernel", "kernel booted, userspace did not start (stopped in the "
                                         "initramfs)"),
    (KERNEL + INITRAMFS + SYSTEMD, None, "userspace",
     "userspace up, no DHCP lease (no DHCP server log to tell whether it asked)"),
    # the lease table says the DHCP server gave a lease, whatever the console shows
    (KERNEL + INITRAMFS + SYSTEMD, "10.254.0.18", "network", "lease given, no SSH (10.254.0.18)"),
    (KERNEL + INITRAMFS + SYSTEMD + NETWORK, "10.254.0.18", "network",
     "lease given, no SSH (10.254.0.18)"),
    # no lease on the management NIC: stuck at userspace, whatever else the guest reports
    (KERNEL + INITRAMFS + SYSTEMD + SSHD + NETWORK, None, "userspace",
     "userspace up, no DHCP lease (no DHCP server log to tell whether it asked) (the guest "
     "reports network eth0 10.254.0.18/24, sshd started)"),
    (KERNEL + INITRAMFS + SYSTEMD + SSHD + NETWORK, "10.254.0.18", "sshd",
     "sshd started, but SSH did not answer"),
])
def test_each_stage_is_named(text, lease, stage, reason):
    d = bootlog.explain(text, lease=lease)
    assert d.stage == stage
    assert d.reason.startswith(reason), d.reason
    assert str(d) == d.reason


def test_a_users_image_without_markers_counts_systemd_as_userspace():
    p = bootlog.read(KERNEL + "[    3.1] systemd[1]: Hostname set to <ubuntu>.\n")
    assert p.userspace and p.stage == "userspace"
    assert bootlog.read(KERNEL + "Welcome to Ubuntu 24.04 LTS!\n").userspace


def test_dhcp_server_log_tells_asked_from_never_asked():
    d = bootlog.explain(KERNEL + SYSTEMD, dhcp_seen=True)
    assert d.reason.startswith("userspace up, DHCP requested but no lease given")
    d = bootlog.explain(KERNEL + SYSTEMD, dhcp_seen=False)
    assert d.stage == "userspace" and d.reason.startswith("userspace up, no DHCP request seen")
    d = bootlog.explain(KERNEL + SYSTEMD + SSHD, dhcp_seen=False)  # the no-lease fault's console
    assert d.stage == "userspace"
    assert d.reason.startswith("userspace up, no DHCP request seen (the guest reports sshd started)")


DNSMASQ_LOG = """\
Dec  5 00:09:55 dnsmasq-dhcp[32134]: DHCP, IP range 10.254.0.10 -- 10.254.0.250, lease time 1h
Dec  5 00:10:31 dnsmasq-dhcp[32134]: DHCPDISCOVER(vbmgmt0) 52:54:00:aa:bb:cc
Dec  5 00:10:31 dnsmasq-dhcp[32134]: DHCPOFFER(vbmgmt0) 10.254.0.97 52:54:00:aa:bb:cc
Dec  5 00:10:32 dnsmasq-dhcp[32134]: DHCPREQUEST(vbmgmt0) 10.254.0.98 52:54:00:dd:ee:ff
"""


@pytest.mark.parametrize("mac, seen", [("52:54:00:aa:bb:cc", True), ("52:54:00:DD:EE:FF", True),
                                       ("52:54:00:aa:bb:cd", False), ("52:54:00:aa:bb:c", False)])
def test_dhcp_requests_are_found_in_dnsmasqs_log(mac, seen):
    assert bootlog.dhcp_requested(DNSMASQ_LOG, mac) is seen


def test_the_local_lab_reads_its_dnsmasq_log(tmp_path, monkeypatch):
    from vbench.host import lab, networks as topology

    monkeypatch.setenv("VBENCH_HOME", str(tmp_path))
    here = lab.Lab("qemu:///system", "vbench", lab.LabState())
    assert here.dhcp_seen("52:54:00:aa:bb:cc") is None  # no log (yet): cannot tell
    (tmp_path / "lab").mkdir()
    lab.dhcp_log(topology.MGMT.name).write_text(DNSMASQ_LOG)
    assert here.dhcp_seen("52:54:00:aa:bb:cc") is True
    assert here.dhcp_seen("52:54:00:00:00:01") is False
    users = lab.Lab("qemu:///system", None, lab.LabState())  # a user's libvirt: not our dnsmasq
    assert users.dhcp_seen("52:54:00:aa:bb:cc") is None
    xml = topology.MGMT.xml(dhcp_log=str(lab.dhcp_log(topology.MGMT.name)))
    assert "xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'" in xml
    assert f"<dnsmasq:option value=\"log-facility={tmp_path}/lab/dnsmasq-vbench-mgmt.log\"/>" in xml
    assert "log-facility" not in topology.MGMT.xml()  # a user's libvirt: its dnsmasq logs its way


def test_a_panic_is_named_with_the_stage_it_hit():
    text = KERNEL + INITRAMFS + ("[   10.1] Kernel panic - not syncing: Attempted to kill init! "
                                 "exitcode=0x00000100\n")
    d = bootlog.explain(text)
    assert d.stage == "kernel"
    assert d.reason == ("kernel panicked at stage 'kernel': [   10.1] Kernel panic - not syncing: "
                        "Attempted to kill init! exitcode=0x00000100")


def test_carriage_returns_and_binary_noise_do_not_hide_markers():
    text = (KERNEL + "\x1b[0m\r\n" + SYSTEMD.replace("\n", "\r\n")).encode().decode()
    assert bootlog.read(text).userspace
    assert bootlog.read("\x00\x00").stage == "console"


@pytest.mark.parametrize("text, quiet, own, expected", [
    ("", 61, False, True),                    # nothing at all for longer than the budget
    ("", 59, False, False),
    (KERNEL, 61, False, True),                # kernel stopped printing before userspace
    (KERNEL + SYSTEMD, 600, False, False),    # userspace may be silent for long: not a hang
    ("", 600, True, False),                   # a user's image: firmware may be silent
    (KERNEL, 61, True, True),                 # ... but not once its kernel runs
    (KERNEL + "Kernel panic - not syncing: x\n", 600, False, False),  # a panic is reported as one
])
def test_stall_rule(text, quiet, own, expected):
    assert bootlog.stalled(bootlog.read(text), quiet, 60, own_boot=own) is expected


def test_stages_are_ordered_and_all_explained():
    assert bootlog.STAGES[0] == "none" and bootlog.STAGES[-1] == "sshd"
    assert set(bootlog.REASONS) == set(bootlog.STAGES)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_boot_watch_gives_up_on_a_console_that_stopped_before_userspace():
    clock, console = Clock(), [""]
    w = bootlog.BootWatch(60, clock=clock)
    reads = []

    def read_console() -> str:
        reads.append(clock.t)
        return console[0]

    assert w.check(read_console) is None
    clock.t += 0.5
    assert w.check(read_console) is None and len(reads) == 1  # read at most once a second
    for _ in range(5):                     # the kernel prints: never stalled while it grows
        clock.t += 30
        console[0] += KERNEL
        assert w.check(read_console) is None
    clock.t += 59
    assert w.check(read_console) is None
    clock.t += 2
    assert w.check(read_console) == pytest.approx(61)
    assert w.progress.stage == "kernel"


def test_boot_watch_never_gives_up_once_userspace_runs():
    clock = Clock()
    w = bootlog.BootWatch(60, clock=clock)
    text = KERNEL + SYSTEMD
    assert w.check(lambda: text) is None
    clock.t += 3600

    def no_more_reads() -> str:
        raise AssertionError("the console is not read once userspace runs")

    assert w.check(no_more_reads) is None


def test_boot_watch_counts_a_silent_console_from_the_start():
    clock = Clock()
    w = bootlog.BootWatch(20, clock=clock)
    clock.t += 21
    assert w.check(lambda: "") == pytest.approx(21)  # "no console output at all"


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


SSHD_UP = "[ 20.1] vbench-boot: userspace\n[ 38.7] vbench-boot: sshd\n"


def test_dhcp_silence_gives_up_only_after_sshd_plus_grace_and_only_when_the_log_says_no():
    clock = _Clock()
    w = bootlog.DhcpSilence(grace_s=30, every_s=1, clock=clock)
    console = {"text": "[ 2.0] Linux version 6.1\n"}
    seen: dict = {"v": False}
    check = lambda: w.check(lambda: console["text"], lambda: seen["v"])  # noqa: E731
    for t in range(0, 100, 2):  # no sshd yet: never, however long
        clock.t = t
        assert check() is None
    console["text"] += SSHD_UP
    clock.t = 100
    assert check() is None          # sshd just came up
    clock.t = 129
    assert check() is None          # within the grace
    clock.t = 131
    assert check() == 31            # no request in the DHCP log: give up
    seen["v"] = None                # the log cannot tell (a user's libvirt): never
    clock.t = 400
    assert check() is None
    seen["v"] = True                # a request came: the lease may still come, keep waiting
    clock.t = 500
    assert check() is None


def test_dhcp_silence_reads_the_console_at_most_every_period():
    clock, reads = _Clock(), []
    w = bootlog.DhcpSilence(grace_s=30, every_s=2, clock=clock)

    def console() -> str:
        reads.append(clock.t)
        return ""
    for i in range(10):
        clock.t = i * 0.5
        w.check(console, lambda: False)
    assert reads == [0.0, 2.0, 4.0]


LOCKUP = ("[  204.112233] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [systemd-udevd:171]\n"
          "[  204.112240] Modules linked in: e1000 ahci libahci\n"
          "[  228.698785]  asm_sysvec_apic_timer_interrupt+0x16/0x20\n")


@pytest.mark.parametrize("headline", [
    "watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [systemd-udevd:171]",
    "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
    "rcu: INFO: rcu_preempt self-detected stall on CPU",
    "INFO: task systemd-udevd:171 blocked for more than 120 seconds.",
    "BUG: kernel NULL pointer dereference, address: 0000000000000008",
    "WARNING: CPU: 0 PID: 1 at drivers/ata/libata-core.c:1234 ata_qc_issue+0x1/0x2",
    "general protection fault, probably for non-canonical address 0xdead: 0000 [#1] SMP NOPTI",
])
def test_a_kernel_warning_is_named_above_its_backtrace(headline):
    text = KERNEL + INITRAMFS + SYSTEMD + f"[  204.1] {headline}\n[  228.6]  ? do_syscall_64+0x69/0xb0\n"
    d = bootlog.explain(text, dhcp_seen=False)
    assert d.stage == "userspace"
    assert d.reason == (f"userspace up, no DHCP request seen; the kernel reported: "
                        f"'[  204.1] {headline}'; last console line: '[  228.6]  ? "
                        f"do_syscall_64+0x69/0xb0'")


def test_the_first_warning_is_the_one_named_and_a_clean_boot_names_none():
    d = bootlog.explain(KERNEL + INITRAMFS + SYSTEMD + LOCKUP + "[  250.0] BUG: later\n")
    assert "the kernel reported: '[  204.112233] watchdog: BUG: soft lockup - CPU#1 stuck" in d.reason
    assert "later'" in d.reason and d.reason.count("BUG:") == 2  # the later one only as last line
    for f in sorted(DATA.glob("*.log")):
        assert bootlog.read(f.read_text(errors="replace")).kernel_warning == "", f.name
    # the lines of a normal boot that look alike are not warnings
    assert bootlog.read("[    0.5] NMI watchdog: Perf NMI watchdog permanently disabled\n"
                        "[    0.6] rcu: Hierarchical SRCU implementation.\n").kernel_warning == ""
