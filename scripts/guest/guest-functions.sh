# Shell helpers available in the guest (installed as /lib/guest-functions.sh; /init sources it
# and so does every /test.sh run). Busybox sh.

# load_qla [param=value ...]: insmod the stock qla2xxx driver with the given module parameters.
load_qla() {
  echo "GUEST:INSMOD qla2xxx${*:+ $*}"
  insmod /lib/modules/qla2xxx.ko "$@"
  local status=$?
  [ "$status" = 0 ] || echo "GUEST:INSMOD qla2xxx failed status=$status"
  return "$status"
}

# wait_for PATH [SECONDS]: poll until PATH exists (default 30 s); status 1 on timeout.
wait_for() {
  local path="$1" left="${2:-30}"
  while [ ! -e "$path" ]; do
    [ "$left" -le 0 ] && return 1
    sleep 1
    left=$((left - 1))
  done
  return 0
}
