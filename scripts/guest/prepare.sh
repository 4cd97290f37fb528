#!/usr/bin/env bash
# One-time, cached setup for the real-QEMU / real-Linux-guest tests.
#
# Builds (or restores from cache) a Debian forky rootfs that carries QEMU >= 10.1 (the first
# release with the vfio-user-pci client), the Debian guest kernel with the stock qla2xxx driver,
# QLogic firmware, busybox and guest tools; then derives the guest kernel and busybox
# initramfs variants that src/harness/guest.ts boots.
#
# Host rules: the host stays bookworm. Only bookworm packages (mmdebstrap, zstd) are installed
# on it, pinned with -t bookworm; everything newer lives inside the rootfs and is run through
# the rootfs's own dynamic loader (scripts/guest/qemu.sh, scripts/guest/tshark.sh).
#
# Cache layout under ${NPIV_HBA_CACHE:-/var/cache/npiv-hba}:
#   rootfs-<key>.tar.zst    packed rootfs (survives deleting the extracted tree)
#   rootfs-<key>/           extracted rootfs; complete only when rootfs-<key>.ok exists
#   guest-<key>/            vmlinuz, vmlinux, initramfs variants, module list; complete with .ok
#   guest-env.json          paths of the above for the TypeScript harness (written last)
# <key> hashes the package list, the suite and SCRIPT_VERSION; bump SCRIPT_VERSION whenever
# the rootfs or guest build below changes in a way that needs a rebuild.
#
# Safe to run concurrently (flock) and idempotent: a second run finishes in well under a second.
set -euo pipefail

SCRIPT_VERSION=1
SUITE=forky
CACHE="${NPIV_HBA_CACHE:-/var/cache/npiv-hba}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Packages inside the rootfs (never on the host). tiny-initramfs keeps apt from choosing dracut
# (which drags in udev and a 43 MB initrd) for forky's linux-image.
# nodejs: a guest can mount this rootfs over 9p and run npiv-hba itself (enter_rootfs in
# guest-functions.sh), which is how the two-level host-backend tests work without FC hardware.
ROOTFS_PACKAGES=(
  qemu-system-x86 tiny-initramfs linux-image-amd64 busybox-static firmware-qlogic kmod
  pciutils sg3-utils fio multipath-tools tshark lsscsi nodejs
)
# Host packages for the rootfs build (bookworm only; build-guest.sh also ensures xz-utils).
HOST_PACKAGES=(mmdebstrap zstd)
# `--with-bench` (npm run bench): host fio measures the limit path (fio on the backing file).
BENCH_HOST_PACKAGES=(fio)
WITH_BENCH=0
for arg in "$@"; do
  case "$arg" in
    --with-bench) WITH_BENCH=1 ;;
    *) printf '[guest-prepare] ERROR: unknown argument %s (known: --with-bench)\n' "$arg" >&2; exit 2 ;;
  esac
done

MMDEBSTRAP_TIMEOUT=1800 # seconds; a fresh build measured 1-1.5 min
RESTORE_TIMEOUT=600

log() { printf '[guest-prepare] %s\n' "$*" >&2; }
die() { printf '[guest-prepare] ERROR: %s\n' "$*" >&2; exit 1; }

KEY="$(printf '%s\n' "v$SCRIPT_VERSION" "$SUITE" "${ROOTFS_PACKAGES[@]}" | sha256sum | cut -c1-16)"
ROOTFS="$CACHE/rootfs-$KEY"
ROOTFS_TARBALL="$CACHE/rootfs-$KEY.tar.zst"
ROOTFS_STAMP="$CACHE/rootfs-$KEY.ok"

mkdir -p "$CACHE" 2>/dev/null || true
if [ -w "$CACHE" ]; then
  exec 9>>"$CACHE/.prepare.lock"
  if ! flock -n 9; then
    log "another prepare.sh holds $CACHE/.prepare.lock; waiting"
    flock 9
  fi
else
  # A read-only cache is fine when it is complete (e.g. prepared earlier by root).
  [ -e "$CACHE/rootfs-$KEY.ok" ] || die "cache $CACHE is not writable and not prepared; run this script as root once"
fi

# Leftovers of interrupted builds (only ever used under the lock held now).
[ -w "$CACHE" ] && rm -rf "$CACHE"/.build-*

need_root() { [ "$(id -u)" -eq 0 ] || die "$1 needs root (run: sudo bash scripts/guest/prepare.sh)"; }

install_host_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  need_root "installing host packages (${missing[*]})"
  log "installing host packages from bookworm: ${missing[*]}"
  timeout 600 apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive timeout 900 \
    apt-get install -y -q -t bookworm --no-install-recommends "${missing[@]}" >&2
}

build_rootfs_tarball() {
  need_root "building the rootfs"
  install_host_packages "${HOST_PACKAGES[@]}"
  local work="$CACHE/.build-rootfs-$KEY"
  rm -rf "$work"
  mkdir -p "$work"
  local include
  include="$(IFS=,; echo "${ROOTFS_PACKAGES[*]}")"
  log "building the $SUITE rootfs with mmdebstrap (downloads ~350 MB; takes a few minutes)"
  log "packages: $include"
  # One --dpkgopt per pattern: dpkg path filters are fnmatch globs without brace expansion.
  timeout "$MMDEBSTRAP_TIMEOUT" mmdebstrap --mode=root --variant=minbase \
    --components=main,non-free-firmware \
    --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --include="$include" \
    "$SUITE" "$work/rootfs" >&2
  log "packing the rootfs into $ROOTFS_TARBALL"
  timeout "$RESTORE_TIMEOUT" tar -C "$work/rootfs" --numeric-owner -cf - . \
    | zstd -q -T0 -3 -o "$work/rootfs.tar.zst"
  mv "$work/rootfs.tar.zst" "$ROOTFS_TARBALL"
  # The freshly built tree becomes the extracted cache directly (no second extraction).
  rm -rf "$ROOTFS"
  mv "$work/rootfs" "$ROOTFS"
  rm -rf "$work"
  touch "$ROOTFS_STAMP"
}

restore_rootfs() {
  command -v zstd >/dev/null || install_host_packages zstd
  log "restoring the rootfs from $ROOTFS_TARBALL"
  rm -rf "$ROOTFS"
  mkdir -p "$ROOTFS"
  zstd -q -dc "$ROOTFS_TARBALL" | timeout "$RESTORE_TIMEOUT" tar -C "$ROOTFS" --numeric-owner -xpf -
  touch "$ROOTFS_STAMP"
}

if [ ! -e "$ROOTFS_STAMP" ]; then
  if [ -s "$ROOTFS_TARBALL" ]; then
    restore_rootfs
  else
    build_rootfs_tarball
  fi
fi
log "rootfs ready: $ROOTFS"
if [ "$WITH_BENCH" -eq 1 ]; then install_host_packages "${BENCH_HOST_PACKAGES[@]}"; fi

# ---- guest kernel + initramfs ------------------------------------------------------------
# shellcheck source=build-guest.sh
source "$HERE/build-guest.sh"
