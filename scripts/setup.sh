#!/usr/bin/env bash
# Install everything reef's demo and test suite need, from the package registries only.
#
#   scripts/setup.sh              every phase (what `make setup` runs)
#   scripts/setup.sh PHASE...     only these: packages python go tools kernel
#
# Works on a stock Debian 12 as root: Python packages go into the project virtualenv
# .venv (Debian's python3 refuses `pip install` outside one, PEP 668); a Go toolchain of
# the pinned version comes through the Go module proxy when the local go is older. It
# never starts a daemon (Debian's prometheus and docker-registry packages would).
# Idempotent and cached: a second run skips what is already there. Each phase prints
# how long it took. Used by `make setup` (and so by `make demo` / `make test`) and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  wireguard-go wireguard-tools iproute2 iputils-ping procps kmod openssl
  qemu-system-x86 podman buildah runc debootstrap uidmap
  containerd containernetworking-plugins iptables conntrack socat
  prometheus docker-registry
  graphviz  # `reef graph --format svg|png` and the test that `dot` accepts its output
)
# Needed by the python phase alone (so `make lint` on a fresh clone needs only these).
PYTHON_APT_PACKAGES=(python3 python3-venv ca-certificates)
# Commands the tools phase needs, as "command:Debian package"; a command already on
# PATH (e.g. a nodesource node) is used as it is.
TOOL_COMMANDS=(node:nodejs npm:npm unzip:unzip)

VENV="${REEF_VENV:-$PWD/.venv}"
pinned() { sed -n "s/^$1=//p" tests/testbed/versions.env; }
GO_TOOLCHAIN="$(pinned GO_TOOLCHAIN)"  # e.g. go1.26.8
# The Debian go used to fetch GO_TOOLCHAIN: GOTOOLCHAIN needs go >= 1.21, Debian 12 has
# 1.19, bookworm-backports has 1.23.
GO_BOOTSTRAP_PACKAGE=golang-1.23-go
GO_BOOTSTRAP=/usr/lib/go-1.23/bin/go

phase() {
  local name="$1"
  shift
  local started=$SECONDS
  echo "== setup: $name"
  "$@"
  echo "== setup: $name took $((SECONDS - started)) s"
}

die() {
  echo "setup: $*" >&2
  exit 1
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing_packages() {
  local package
  for package in "$@"; do
    installed "$package" || echo "$package"
  done
}

# apt_install [-t SUITE] PACKAGE...: install those not yet installed, starting no service.
apt_install() {
  local suite=()
  if [[ "$1" == -t ]]; then
    suite=(-t "$2")
    shift 2
  fi
  local missing
  mapfile -t missing < <(missing_packages "$@")
  ((${#missing[@]} == 0)) && return
  echo "installing: ${missing[*]}"
  apt-get update -qq
  # policy-rc.d exit 101 = "do not start services" (the Debian way, used by containers):
  # package installs on a shared machine must not leave daemons listening.
  local policy=/usr/sbin/policy-rc.d ours=""
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && ours=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${suite[@]}" "${missing[@]}" || { [[ -n "$ours" ]] && rm -f "$policy"; return 1; }
  [[ -n "$ours" ]] && rm -f "$policy"
  return 0
}

go_at_least() {  # go_at_least GO 1.21: GO runs and is at least that version
  local have
  have="$("$1" env GOVERSION 2>/dev/null)" || return 1
  have="${have#go}"
  [[ "$(printf '%s\n%s\n' "$2" "$have" | sort -V | head -1)" == "$2" ]]
}
go_version_ok() {  # go_version_ok GO: at least GO_TOOLCHAIN's minor (go1.26.8 -> 1.26)
  local want="${GO_TOOLCHAIN#go}"
  go_at_least "$1" "${want%.*}"
}
go_bootstrap_ok() { go_at_least "$GO_BOOTSTRAP" 1.21; }  # GOTOOLCHAIN arrived in 1.21

tool_packages_missing() {
  local entry
  for entry in "${TOOL_COMMANDS[@]}"; do
    command -v "${entry%%:*}" >/dev/null || echo "${entry#*:}"
  done
}

# Runs first, in a second or two: everything that cannot be installed here is named at
# once, before any long phase starts.
preflight() {
  local need=() missing
  for phase_name in "${PHASES[@]}"; do
    case "$phase_name" in
      packages) need+=("${APT_PACKAGES[@]}") ;;
      python) python_can_venv || need+=("${PYTHON_APT_PACKAGES[@]}") ;;
      tools) mapfile -t -O "${#need[@]}" need < <(tool_packages_missing) ;;
      go)
        if ! go_version_ok go && ! go_bootstrap_ok; then
          need+=("$GO_BOOTSTRAP_PACKAGE (bookworm-backports)")
        fi
        ;;
    esac
  done
  ((${#need[@]} == 0)) && return
  mapfile -t missing < <(missing_packages "${need[@]}")
  ((${#missing[@]} == 0)) && return
  if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
    die "missing Debian packages: ${missing[*]} — run as root on Debian 12 (apt-get), or install them yourself"
  fi
}

packages() {
  apt_install "${APT_PACKAGES[@]}"
}

# A python3 that can make a virtualenv with pip in it (Debian: python3-venv ships ensurepip).
python_can_venv() { command -v python3 >/dev/null && python3 -c 'import ensurepip, venv' 2>/dev/null; }

python_packages() {
  python_can_venv || apt_install "${PYTHON_APT_PACKAGES[@]}"
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
  # Reinstall only when the dependencies changed: pyproject.toml's hash is the stamp.
  local stamp="$VENV/.reef-installed" want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "virtualenv $VENV: up to date"
    return
  fi
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev,vm]'
  echo "$want" >"$stamp"
}

go_toolchain() {
  if go_version_ok go; then
    echo "go: $(go env GOVERSION) ($(command -v go))"
    return
  fi
  if ! go_bootstrap_ok; then
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      cat >/etc/apt/sources.list.d/bookworm-backports.sources <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    fi
    apt_install -t bookworm-backports "$GO_BOOTSTRAP_PACKAGE"
  fi
  # Debian's go.env says GOTOOLCHAIN=local; naming a version makes the go command fetch
  # that toolchain from the module proxy (checksum-verified) and run it.
  export GOTOOLCHAIN="$GO_TOOLCHAIN"
  export PATH="${GO_BOOTSTRAP%/go}:$PATH"
  go_version_ok go || die "go $GO_TOOLCHAIN could not be fetched through the Go module proxy ($(go env GOPROXY))"
  echo "go: $(go env GOVERSION) via GOTOOLCHAIN from $GO_BOOTSTRAP"
}

tools() {
  local missing
  mapfile -t missing < <(tool_packages_missing)
  ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
}

control_plane() {
  go_version_ok go || go_toolchain  # `setup.sh builds` alone still gets the pinned Go
  bash tests/testbed/build-binaries.sh all
  bash tests/testbed/tools.sh
}

kernel() {
  bash tests/testbed/fetch-kernel.sh >/dev/null
}

if (($# == 0)); then
  PHASES=(packages python go tools builds kernel)
else
  PHASES=("$@")
fi
phase "preflight" preflight
for phase_name in "${PHASES[@]}"; do
  case "$phase_name" in
    packages) phase "Debian packages" packages ;;
    python) phase "Python packages (virtualenv $VENV)" python_packages ;;
    go) phase "Go toolchain" go_toolchain ;;
    tools) phase "Node/npm and unzip" tools ;;
    builds) phase "control plane binaries (Go builds, kubectl, helm)" control_plane ;;
    kernel) phase "kernel for the WireGuard VM" kernel ;;
    *) die "unknown phase $phase_name (packages python go tools builds kernel)" ;;
  esac
done
