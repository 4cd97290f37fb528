#!/usr/bin/env bash
# Runs the cached rootfs's qemu-system-x86_64 (QEMU >= 10.1, with the vfio-user-pci client)
# on this host through the rootfs's dynamic loader. Arguments are passed to QEMU unchanged;
# the firmware search path (-L) and module directory point into the rootfs.
#   NPIV_HBA_CACHE   cache directory (default /var/cache/npiv-hba), as for prepare.sh
# Example: scripts/guest/qemu.sh --version
set -euo pipefail
# shellcheck source=rootfs-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/rootfs-env.sh"
export QEMU_MODULE_DIR="$ROOTFS_LIBDIR/qemu"
rootfs_exec /usr/bin/qemu-system-x86_64 -L "$ROOTFS/usr/share/qemu" -L "$ROOTFS/usr/share/seabios" "$@"
