#!/usr/bin/env bash
# Install everything reef's demo and test suite need, from the package registries only.
#
# Idempotent and cached: a second run skips what is already there. Each phase prints
# how long it took. Used by `make setup` (and so by `make demo` / `make test`) and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  wireguard-go wireguard-tools iproute2 iputils-ping procps kmod openssl
  qemu-system-x86 podman buildah runc debootstrap uidmap
  containerd containernetworking-plugins iptables conntrack socat
  graphviz  # `reef graph --format svg|png` and the test that `dot` accepts its output
)

phase() {
  local name="$1"
  shift
  local started=$SECONDS
  echo "== setup: $name"
  "$@"
  echo "== setup: $name took $((SECONDS - started)) s"
}

apt_packages() {
  local missing=()
  for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$package")
  done
  if ((${#missing[@]} == 0)); then
    echo "all Debian packages present"
    return
  fi
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

python_packages() {
  python3 -m pip install -q --disable-pip-version-check -e '.[dev,vm]'
}

control_plane() {
  bash tests/testbed/build-binaries.sh all
  bash tests/testbed/tools.sh
}

kernel() {
  bash tests/testbed/fetch-kernel.sh >/dev/null
}

phase "Debian packages" apt_packages
phase "Python packages" python_packages
phase "control plane binaries (Go builds, kubectl, helm)" control_plane
phase "kernel for the WireGuard VM" kernel
