# Guest kernel + busybox initramfs, derived from the cached rootfs. Sourced by prepare.sh
# (which defines CACHE, KEY, ROOTFS, HERE, log, die and holds the cache lock).
#
# Output in $CACHE/guest-<gkey>/ (gkey = rootfs key + hash of these guest scripts):
#   vmlinuz                  the Debian bzImage
#   vmlinux                  its uncompressed ELF (PVH entry; saves the in-guest decompressor
#                            under TCG), absent when extraction fails
#   initramfs-nofw.cpio      busybox, modules, tools, /etc, /init — no QLogic firmware files,
#                            so qla2xxx falls back to the firmware image in the adapter's flash
#   initramfs.cpio           the same plus lib/firmware/ql2400_fw.bin and ql2500_fw.bin
#   kernel-release           the kernel's `uname -r`
#   modules.txt              module load order used by /init
# The archives are uncompressed newc cpio: under TCG the kernel's gunzip costs more boot time
# than QEMU copying the larger file, and the harness appends its own cpio at run time.

GUEST_SCRIPTS=("$HERE/build-guest.sh" "$HERE/init.sh" "$HERE/guest-functions.sh")
GKEY="$( { echo "$KEY"; cat "${GUEST_SCRIPTS[@]}"; } | sha256sum | cut -c1-16)"
GUEST="$CACHE/guest-$GKEY"
GUEST_STAMP="$GUEST/.ok"

# Modules whose dependency closures are loaded at boot, in this order: the SCSI upper drivers
# and device handlers first so they attach as qla2xxx discovers LUNs, the HBA driver last.
GUEST_MODULE_TARGETS=(
  sd_mod sg
  scsi_dh_alua scsi_dh_emc scsi_dh_rdac scsi_dh_hp_sw
  dm-mod dm-multipath dm-round-robin dm-service-time dm-queue-length
  qla2xxx
  9p 9pnet_virtio
)
GUEST_FIRMWARE=(ql2400_fw.bin ql2500_fw.bin)
# Dynamically linked tools copied with their library closure (paths inside the rootfs).
GUEST_BINARIES=(
  /usr/bin/fio /usr/bin/lsscsi /usr/bin/lspci /usr/bin/setpci
  /usr/sbin/multipath /usr/sbin/multipathd /usr/sbin/mpathpersist /usr/sbin/kpartx
)
# Plugins dlopen()ed by libmultipath (path checkers, prioritizers): ldd cannot see them.
GUEST_PLUGIN_DIRS=(/usr/lib/multipath)

STEP_TIMEOUT=300

guest_rootfs_exec() { timeout "$STEP_TIMEOUT" chroot "$ROOTFS" "$@"; }

# Copies rootfs path $1 (following symlinks) to the same path under staging dir $2.
copy_from_rootfs() {
  local src="$1" stage="$2"
  mkdir -p "$stage$(dirname "$src")"
  cp -L "$ROOTFS$src" "$stage$src"
}

# Prints the shared libraries (and the loader) that the given rootfs binaries need.
library_closure() {
  local bin
  for bin in "$@"; do
    guest_rootfs_exec ldd "$bin" | awk '
      /not found/ { print "MISSING " $1; next }
      $2 == "=>" && $3 ~ /^\// { print $3; next }
      $1 ~ /^\// { print $1 }'
  done | sort -u
}

build_guest() {
  # Host tools used below (module / kernel decompression); usually present already.
  install_host_packages xz-utils zstd
  local work="$CACHE/.build-guest-$GKEY"
  rm -rf "$work"
  mkdir -p "$work"
  local stage="$work/stage"

  local kv
  kv="$(ls "$ROOTFS/usr/lib/modules")"
  [ "$(echo "$kv" | wc -l)" -eq 1 ] || die "expected one kernel in the rootfs, found: $kv"
  log "building guest kernel + initramfs for kernel $kv in $GUEST"
  echo "$kv" >"$work/kernel-release"
  cp "$ROOTFS/usr/lib/modules/$kv/vmlinuz" "$work/vmlinuz"

  # Uncompressed vmlinux: the payload starts at the first zstd frame magic (28 b5 2f fd).
  # zstd exits 1 on the trailing data after the frame; the ELF is complete nonetheless.
  local offset
  offset="$(LC_ALL=C grep -obUaP '\x28\xb5\x2f\xfd' "$work/vmlinuz" | head -n1 | cut -d: -f1 || true)"
  if [ -n "$offset" ]; then
    tail -c +"$((offset + 1))" "$work/vmlinuz" | zstd -q -dc >"$work/vmlinux" 2>/dev/null || true
    if [ "$(head -c4 "$work/vmlinux" | od -An -tx1 | tr -d ' ')" != 7f454c46 ]; then
      log "could not extract vmlinux (not an ELF); the harness will boot vmlinuz"
      rm -f "$work/vmlinux"
    fi
  fi

  # Merged-/usr layout like the rootfs, so library paths from ldd resolve either way.
  mkdir -p "$stage"/{usr/bin,usr/sbin,usr/lib/modules,usr/lib64,proc,sys,dev,run,tmp,root,etc/multipath/conf.d,mnt}
  ln -s usr/bin "$stage/bin"
  ln -s usr/sbin "$stage/sbin"
  ln -s usr/lib "$stage/lib"
  ln -s usr/lib64 "$stage/lib64"

  cp "$ROOTFS/usr/bin/busybox" "$stage/usr/bin/busybox"
  install -m 0755 "$HERE/init.sh" "$stage/init"
  install -m 0644 "$HERE/guest-functions.sh" "$stage/usr/lib/guest-functions.sh"

  # Modules: union of the --show-depends closures, first occurrence wins, decompressed
  # (busybox insmod loads plain .ko files only).
  log "resolving module order with modprobe --show-depends"
  local target line path name
  : >"$work/modules.txt"
  for target in "${GUEST_MODULE_TARGETS[@]}"; do
    guest_rootfs_exec modprobe -S "$kv" --show-depends "$target" >"$work/deps" \
      || die "modprobe --show-depends $target failed"
    while read -r line; do
      case "$line" in
        insmod\ *) path="$(echo "$line" | awk '{print $2}')" ;;
        builtin\ *) continue ;;
        *) die "unexpected modprobe output: $line" ;;
      esac
      name="$(basename "$path")"
      name="${name%.xz}"; name="${name%.zst}"; name="${name%.gz}"; name="${name%.ko}"
      grep -qx "$name" "$work/modules.txt" && continue
      echo "$name" >>"$work/modules.txt"
      case "$path" in
        *.ko.xz) xz -dc "$ROOTFS$path" >"$stage/usr/lib/modules/$name.ko" ;;
        *.ko.zst) zstd -q -dc "$ROOTFS$path" >"$stage/usr/lib/modules/$name.ko" ;;
        *.ko) cp "$ROOTFS$path" "$stage/usr/lib/modules/$name.ko" ;;
        *) die "unsupported module file $path" ;;
      esac
    done <"$work/deps"
  done
  cp "$work/modules.txt" "$stage/usr/lib/modules/order"
  log "modules: $(tr '\n' ' ' <"$work/modules.txt")"

  # sg3-utils: every sg_* tool plus the scsi_* helpers; then the other tools.
  local binaries=("${GUEST_BINARIES[@]}") bin
  for bin in "$ROOTFS"/usr/bin/sg_* "$ROOTFS"/usr/bin/scsi_*; do
    [ -f "$bin" ] && [ -x "$bin" ] && binaries+=("${bin#"$ROOTFS"}")
  done
  local plugins=() dir
  for dir in "${GUEST_PLUGIN_DIRS[@]}"; do
    for bin in "$ROOTFS$dir"/*.so; do plugins+=("${bin#"$ROOTFS"}"); done
  done
  log "copying ${#binaries[@]} tools and ${#plugins[@]} plugins with their library closure (ldd in the rootfs)"
  local shell_tools=()
  for bin in "${binaries[@]}"; do
    # Some scsi_* helpers are shell scripts: they run under busybox sh, no libraries needed.
    if head -c2 "$ROOTFS$bin" | grep -q '#!'; then shell_tools+=("$bin"); fi
    copy_from_rootfs "$bin" "$stage"
  done
  for bin in "${plugins[@]}"; do copy_from_rootfs "$bin" "$stage"; done
  local elf=()
  for bin in "${binaries[@]}" "${plugins[@]}"; do
    printf '%s\n' "${shell_tools[@]}" | grep -qx "$bin" || elf+=("$bin")
  done
  library_closure "${elf[@]}" >"$work/libs"
  if grep -q '^MISSING' "$work/libs"; then
    die "unresolved libraries: $(grep '^MISSING' "$work/libs" | tr '\n' ' ')"
  fi
  while read -r path; do copy_from_rootfs "$path" "$stage"; done <"$work/libs"
  copy_from_rootfs /usr/share/misc/pci.ids "$stage"

  # /etc: enough for the tools above (no udev, no systemd in this guest).
  cat >"$stage/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
EOF
  cat >"$stage/etc/group" <<'EOF'
root:x:0:
disk:x:6:
EOF
  cat >"$stage/etc/multipath.conf" <<'EOF'
# Guest test configuration: every SCSI disk with a WWID is a multipath candidate; no udev.
defaults {
	user_friendly_names no
	find_multipaths off
	enable_foreign "^$"
}
EOF
  echo npiv-guest >"$stage/etc/hostname"

  log "packing initramfs archives"
  (cd "$stage" && find . -path ./usr/lib/firmware -prune -o -print | LC_ALL=C sort \
    | "$ROOTFS/usr/bin/busybox" cpio -o -H newc 2>/dev/null) >"$work/initramfs-nofw.cpio"
  local fwstage="$work/fwstage" fw
  mkdir -p "$fwstage/usr/lib/firmware"
  for fw in "${GUEST_FIRMWARE[@]}"; do
    if [ -f "$ROOTFS/usr/lib/firmware/$fw" ]; then
      cp "$ROOTFS/usr/lib/firmware/$fw" "$fwstage/usr/lib/firmware/$fw"
    elif [ -f "$ROOTFS/usr/lib/firmware/$fw.zst" ]; then
      zstd -q -dc "$ROOTFS/usr/lib/firmware/$fw.zst" >"$fwstage/usr/lib/firmware/$fw"
    elif [ -f "$ROOTFS/usr/lib/firmware/$fw.xz" ]; then
      xz -dc "$ROOTFS/usr/lib/firmware/$fw.xz" >"$fwstage/usr/lib/firmware/$fw"
    else
      die "firmware $fw not found in the rootfs (package firmware-qlogic)"
    fi
  done
  # Linux unpacks concatenated newc archives in sequence: base + firmware overlay.
  (cd "$fwstage" && find ./usr ./usr/lib ./usr/lib/firmware ./usr/lib/firmware/* \
    | "$ROOTFS/usr/bin/busybox" cpio -o -H newc 2>/dev/null) >"$work/firmware.cpio"
  cat "$work/initramfs-nofw.cpio" "$work/firmware.cpio" >"$work/initramfs.cpio"
  rm -rf "$stage" "$fwstage" "$work/deps" "$work/libs" "$work/firmware.cpio"

  touch "$work/.ok"
  rm -rf "$GUEST"
  mv "$work" "$GUEST"
  log "initramfs: $(du -h "$GUEST/initramfs.cpio" | cut -f1); kernel $(du -h "$GUEST/vmlinuz" | cut -f1)"
}

if [ ! -e "$GUEST_STAMP" ]; then
  build_guest
fi
# Superseded guest builds are cheap to redo: mark them, and delete them once they have been
# superseded for a while (a test that started a moment ago may still be copying its initramfs).
# Rootfs trees are kept: they are costly to rebuild.
if [ -w "$CACHE" ]; then
  rm -f "$GUEST/.superseded"
  for old in "$CACHE"/guest-*; do
    [ -d "$old" ] && [ "$old" != "$GUEST" ] || continue
    [ -e "$old/.superseded" ] || touch "$old/.superseded"
    if [ -n "$(find "$old/.superseded" -mmin +30 2>/dev/null)" ]; then rm -rf "$old"; fi
  done
fi

# Tell the TypeScript harness where everything is (written last, atomically, and only when it
# changed, so that a prepared cache can be used read-only).
guest_env_json() {
  local vmlinux=null
  [ -f "$GUEST/vmlinux" ] && vmlinux="\"$GUEST/vmlinux\""
  cat <<EOF
{
  "version": $SCRIPT_VERSION,
  "rootfs": "$ROOTFS",
  "guestDir": "$GUEST",
  "kernelRelease": "$(cat "$GUEST/kernel-release")",
  "vmlinuz": "$GUEST/vmlinuz",
  "vmlinux": $vmlinux,
  "initramfs": "$GUEST/initramfs.cpio",
  "initramfsNoFirmware": "$GUEST/initramfs-nofw.cpio"
}
EOF
}
if [ "$(guest_env_json)" != "$(cat "$CACHE/guest-env.json" 2>/dev/null)" ]; then
  guest_env_json >"$CACHE/.guest-env.json.tmp"
  mv "$CACHE/.guest-env.json.tmp" "$CACHE/guest-env.json"
fi
log "guest ready: $GUEST"
