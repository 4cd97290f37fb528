# Shell helpers available in the guest (installed as /lib/guest-functions.sh; /init sources it
# and so does every /test.sh run). Busybox sh. Waits poll every 0.2 s so a test does not lose
# up to a second per wait; every wait has a limit in seconds (default 30).

GUEST_POLL_SECONDS=0.2
GUEST_POLLS_PER_SECOND=5

# load_qla [param=value ...]: insmod the stock qla2xxx driver with the given module parameters.
load_qla() {
  echo "GUEST:INSMOD qla2xxx${*:+ $*}"
  insmod /lib/modules/qla2xxx.ko "$@"
  local status=$?
  [ "$status" = 0 ] || echo "GUEST:INSMOD qla2xxx failed status=$status"
  return "$status"
}

# wait_until SECONDS COMMAND [ARGS...]: run COMMAND until it succeeds; status 1 on timeout.
wait_until() {
  local left=$(($1 * GUEST_POLLS_PER_SECOND))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$left" -le 0 ] && return 1
    sleep "$GUEST_POLL_SECONDS"
    left=$((left - 1))
  done
  return 0
}

# wait_for PATH [SECONDS]: poll until PATH exists; status 1 on timeout.
wait_for() {
  wait_until "${2:-30}" test -e "$1"
}

# fc_host [N]: prints the sysfs directory of the Nth FC host (default the first), status 1 if none.
fc_host() {
  local index="${1:-0}" host
  for host in /sys/class/fc_host/host*; do
    [ -e "$host/port_state" ] || continue
    if [ "$index" = 0 ]; then
      echo "$host"
      return 0
    fi
    index=$((index - 1))
  done
  return 1
}

_fc_host_online() {
  local host
  host="$(fc_host "$1")" || return 1
  [ "$(cat "$host/port_state")" = Online ]
}

# wait_fc_online [N] [SECONDS]: wait until the Nth FC host (default 0) reports port_state Online.
wait_fc_online() {
  wait_until "${2:-30}" _fc_host_online "${1:-0}"
}

# enter_rootfs: mount the forky rootfs the harness shares over 9p (runGuest `shareRootfs: true`,
# tag "rootfs") read-only at /rootfs with the guest's /proc, /sys, /dev and a fresh /tmp and /run
# inside, and any other shares (tag "<name>", runGuest `shares`) under /rootfs/run/share/<name>. Then
# `in_rootfs CMD ARGS...` runs a program of the full Debian system (e.g. node) by chroot.
enter_rootfs() {
  mkdir -p /rootfs
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose rootfs /rootfs || return 1
  mount --bind /proc /rootfs/proc && mount --bind /sys /rootfs/sys && mount --bind /dev /rootfs/dev \
    && mount -t tmpfs -o mode=1777 tmpfs /rootfs/tmp && mount -t tmpfs -o mode=0755 tmpfs /rootfs/run \
    || return 1
  local tag
  for tag in $(cat /sys/bus/virtio/drivers/9pnet_virtio/virtio*/mount_tag 2>/dev/null | tr '\0' ' '); do
    [ "$tag" = rootfs ] && continue
    # /rootfs is read-only: shares are mounted on a tmpfs under /rootfs/run.
    mkdir -p "/rootfs/run/share/$tag"
    mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose "$tag" "/rootfs/run/share/$tag" || return 1
  done
  return 0
}

# in_rootfs CMD [ARGS...]: run CMD inside the mounted rootfs (after enter_rootfs).
in_rootfs() {
  chroot /rootfs "$@"
}
