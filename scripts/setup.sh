#!/usr/bin/env bash
# Installs everything vbench needs on Debian 12 (run as root): Debian packages, then a Python
# virtual environment in .venv with vbench and its test dependencies. Idempotent and quiet when
# everything is already there. Starts no daemon: `vbench lab up` does that, recording what it starts.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages)" >&2
  exit 2
fi

DEB_PACKAGES=(
  qemu-system-x86 qemu-utils
  libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients libvirt-dev pkg-config
  mmdebstrap e2fsprogs dnsmasq-base iproute2 iptables busybox-static
  fio iperf3 iputils-ping procps coreutils
  python3 python3-venv python3-dev gcc
  libxml2-utils
  chromium
  postgresql
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.vbench-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing vbench and its Python dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e '.[test]' 2>&1 | grep -v -e '^WARNING: Location' -e 'as the .root. user' || true
  .venv/bin/python -c "import vbench, libvirt, paramiko, pandas, matplotlib" 
  touch "$stamp"
fi
echo "setup: done (vbench at $(pwd)/.venv/bin/vbench)"
