#!/usr/bin/env bash
# Fetch the Debian kernel (and the busybox for its initramfs) that the test-bed
# VM boots (tests/testbed/vm.py).
#
# Why a distro kernel: the host kernel has no wireguard module, and the kernel
# backend of reef.dataplane can only be exercised where one exists. Debian's
# linux-image-<abi>-amd64 ships wireguard.ko, and virtme-ng boots it straight
# from an extracted package (no root filesystem image needed). Debian builds
# 9p as a module, so virtme-ng needs an initramfs, which it builds with busybox.
#
# `apt-get download` + `dpkg -x` install nothing on the host. Packages are
# extracted to $REEF_CACHE/kernel/<package>/ and reused when already there.
# Prints `vmlinuz=<path>` and `busybox=<path>` on stdout.
#
# Host prerequisites (the CI script installs them):
#   apt-get install -y qemu-system-x86 kmod   # kmod: virtme-ng runs depmod,
#                                              # the guest runs modprobe
#   pip install 'virtme-ng>=1.30'
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
REEF_CACHE="$(realpath -m "${REEF_CACHE:-$here/../../.cache}")"

# fetch PACKAGE: extract PACKAGE into $REEF_CACHE/kernel/PACKAGE unless cached.
fetch() {
  local package="$1" dest="$REEF_CACHE/kernel/$1"
  if [[ -f "$dest/.complete" ]]; then
    return
  fi
  local work
  work="$(mktemp -d)"
  chmod 755 "$work"  # apt-get download drops to user _apt for the fetch
  (cd "$work" && apt-get download "$package" >&2)
  rm -rf "$dest.partial" "$dest"
  mkdir -p "$dest.partial"
  dpkg -x "$work"/*.deb "$dest.partial"
  rm -rf "$work"
  touch "$dest.partial/.complete"
  # Publish atomically: a half-extracted tree is never mistaken for a cached one.
  mv "$dest.partial" "$dest"
}

# The metapackage linux-image-amd64 depends on the current ABI-versioned image.
kernel="${REEF_KERNEL_PACKAGE:-$(apt-cache depends linux-image-amd64 \
  | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')}"
if [[ -z "$kernel" ]]; then
  echo "fetch-kernel: cannot resolve linux-image-amd64 (run apt-get update?)" >&2
  exit 1
fi
fetch "$kernel"
fetch busybox-static
echo "vmlinuz=$REEF_CACHE/kernel/$kernel/boot/vmlinuz-${kernel#linux-image-}"
echo "busybox=$REEF_CACHE/kernel/busybox-static/bin/busybox"
