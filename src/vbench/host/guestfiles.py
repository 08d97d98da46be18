"""What vbench writes into every guest image it builds (vbench.host.images): sshd with a
pinned host key and a per-boot client key from the kernel line, systemd-networkd on every NIC,
the early-boot getrandom probe. Constants only; the image build decides where each goes."""

AUTHORIZED_KEYS_CMD = """#!/bin/sh
# vbench: the client key of this boot comes on the kernel command line (vbench.sshkey=TYPE:BASE64),
# so every run can use a fresh key without rebuilding or writing into the image.
[ "$1" = root ] || exit 0
for arg in $(cat /proc/cmdline); do
  case "$arg" in vbench.sshkey=*) echo "${arg#vbench.sshkey=}" | tr ':' ' ';; esac
done
"""

SSHD_CONFIG = """# vbench: key-only root login, pinned ed25519 host key, no DNS lookups.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile none
AuthorizedKeysCommand /usr/local/sbin/vbench-authorized-keys %u
AuthorizedKeysCommandUser nobody
UseDNS no
"""

# sshd checks its configuration itself as it starts (and exits if it is wrong): the separate
# `sshd -t` before it is a second exec of sshd on every boot, about a second under TCG.
SSH_SERVICE_DROPIN = """[Service]
ExecStartPre=
"""

NETWORKD = """[Match]
Name=eth*

[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no

[DHCPv4]
ClientIdentifier=mac
UseDNS=no
UseRoutes=no
"""

EARLY_RANDOM_UNIT = """[Unit]
Description=vbench: how long a blocking read of /dev/random waits early in boot
DefaultDependencies=no
After=systemd-tmpfiles-setup-dev.service
Before=sysinit.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/vbench-early-random

[Install]
WantedBy=sysinit.target
"""

EARLY_RANDOM = """#!/bin/sh
s=$(date +%s%N)
head -c 1 /dev/random > /dev/null
e=$(date +%s%N)
mkdir -p /run/vbench
echo $((e - s)) > /run/vbench/getrandom_ns
cut -d' ' -f1 /proc/uptime > /run/vbench/getrandom_uptime
"""
