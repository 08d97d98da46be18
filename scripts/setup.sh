#!/usr/bin/env bash
# Installs everything vbench needs on Debian 12 (run as root): Debian packages, then a Python
# virtual environment with vbench and its test dependencies. Idempotent and quiet when everything
# is already there. Starts no daemon, and the packages it installs start none either (see below):
# `vbench lab up` and the tests start what they need, recording what they start.
#
# Environment:
#   VBENCH_VENV      where the virtual environment goes (default: .venv in the checkout)
#   VBENCH_EDITABLE  1 (default): an editable install of this checkout (for development; pip writes
#                    src/vbench.egg-info). 0: a regular install built from a copy of the checkout in
#                    a temporary directory, so nothing is written into the checkout (the nightly
#                    job uses this with a venv outside the checkout: no root-owned files left there)
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
  genisoimage
  fio iperf3 iputils-ping procps coreutils
  bubblewrap
  openssh-client openssh-server
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
  # Installing must start no service (sshd on port 22, PostgreSQL, a second libvirtd): while apt
  # runs, a policy-rc.d (invoke-rc.d's own switch) refuses every start, unless one exists already.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# vbench setup.sh: no service starts while it installs packages\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$(trap -p EXIT)" != "" ]; then rm -f "$policy"; trap - EXIT; fi
fi

PY=${PYTHON:-python3}
VENV="${VBENCH_VENV:-.venv}"
EDITABLE="${VBENCH_EDITABLE:-1}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $($PY --version)"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.vbench-installed"
quiet_pip() { grep -v -e '^WARNING: Location' -e 'as the .root. user' || true; }
if [ "$EDITABLE" = "1" ]; then
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
    echo "setup: installing vbench (editable) and its Python dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    "$VENV/bin/python" -m pip install -q -e '.[lab,test]' 2>&1 | quiet_pip
    "$VENV/bin/python" -c "import vbench, libvirt, paramiko, pandas, matplotlib"
    touch "$stamp"
  fi
else
  # The source's hash decides whether to reinstall: a regular install does not follow the tree.
  want="$(find pyproject.toml setup.py src scenarios guests -type f ! -name '*.pyc' -print0 | LC_ALL=C sort -z \
          | xargs -0 sha256sum | sha256sum | cut -c1-16)"
  if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "setup: installing vbench ($want) and its Python dependencies into $VENV"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    tar --exclude=./.git --exclude=./.venv --exclude=./results --exclude=./reports \
        --exclude='__pycache__' --exclude='*.egg-info' --exclude=./build -cf - . | tar -xf - -C "$tmp"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    (cd "$tmp" && PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" -m pip install -q \
       "$tmp[lab,test]" 2>&1 | quiet_pip)
    "$VENV/bin/python" -c "import vbench, libvirt, paramiko, pandas, matplotlib"
    echo "$want" > "$stamp"
  fi
fi
echo "setup: done (vbench at $VENV/bin/vbench)"
