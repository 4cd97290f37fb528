# Shared by qemu.sh and tshark.sh: locate the cached rootfs written by prepare.sh and define
# rootfs_exec, which runs a rootfs binary through the rootfs's own dynamic loader and
# libraries (no chroot, no mounts, no root needed; the host keeps its bookworm libraries).

CACHE="${NPIV_HBA_CACHE:-/var/cache/npiv-hba}"
GUEST_ENV="$CACHE/guest-env.json"
if [ ! -f "$GUEST_ENV" ]; then
  echo "no guest environment in $CACHE: run 'bash scripts/guest/prepare.sh' first" >&2
  exit 127
fi
ROOTFS="$(sed -n 's/^ *"rootfs": "\(.*\)",\{0,1\}$/\1/p' "$GUEST_ENV")"
[ -d "$ROOTFS" ] || { echo "rootfs $ROOTFS missing: run 'bash scripts/guest/prepare.sh'" >&2; exit 127; }
ROOTFS_LIBDIR="$ROOTFS/usr/lib/x86_64-linux-gnu"
ROOTFS_LOADER="$ROOTFS_LIBDIR/ld-linux-x86-64.so.2"

# rootfs_exec BINARY-PATH-IN-ROOTFS ARGS...
rootfs_exec() {
  local bin="$1"
  shift
  exec "$ROOTFS_LOADER" --library-path "$ROOTFS_LIBDIR:$ROOTFS_LIBDIR/wireshark:$ROOTFS/usr/lib" \
    --argv0 "$(basename "$bin")" "$ROOTFS$bin" "$@"
}
