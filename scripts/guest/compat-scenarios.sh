# Guest side of `npiv-hba compat` (src/compat/scenarios.ts): the scenario suite run against a
# kernel's own qla2xxx on the emulated HBA. Installed as /lib/compat-scenarios.sh next to
# /lib/guest-functions.sh (whose wait_for, wait_until, fc_host and load_qla it uses); the test
# script sets the COMPAT_* expectations below and calls `compat_run NAME SECONDS` per scenario.
#
# Each scenario runs as `sc_<name>` in its own shell under a time limit, so a scenario that fails,
# hangs or exits cannot stop the others. It prints what it saw (`note`) and ends with `pass`,
# `fail WHY` or `skip WHY` (a precondition another scenario owns is missing). compat_run prints:
#   GUEST:SCBEGIN <name>
#   GUEST:SC <name> <pass|fail|skip> <milliseconds> <summary>
#   GUEST:SCLOG <name> <line>     on fail/skip: the scenario's own lines, then the kernel's
#                                 qla2xxx/SCSI lines logged while it ran
# Host actions (a target port joining, a LUN mapped, a port's link down/up) are asked for with
# `GUEST:REQ <action> <arg>` lines; the host performs them as it reads the line.
#
# Expectations (set by the host):
#   COMPAT_BDF            PCI address of the HBA (0000:01:00.0)
#   COMPAT_PCI_ID         vendor:device, e.g. 0x1077:0x2532
#   COMPAT_WWPN           the vport's WWPN as sysfs prints it (0x...)
#   COMPAT_TARGETS        WWPNs of the target ports present from the start
#   COMPAT_RSCN_TARGET    WWPN of the target port that joins on `REQ add-port`
#   COMPAT_LUNS           "lun:sectors ..." masked to the vport
#   COMPAT_NEW_LUN        "lun:sectors" mapped on `REQ map-lun`
#   COMPAT_NPIV           "wwpn:wwnn" (16 hex digits each) the host granted for vport_create

SC_EXIT_SKIP=77
COMPAT_EVIDENCE_LINES=15

note() { echo "$*"; }
# request ACTION [ARG]: ask the host for a SAN change. Written to fd 3, the script's own output
# (the scenario's stdout is its log file), so the host sees it at once.
request() { echo "GUEST:REQ $*" >&3; }
pass() { echo "RESULT $*"; exit 0; }
fail() { echo "FAIL $*"; exit 1; }
skip() { echo "SKIP $*"; exit "$SC_EXIT_SKIP"; }

# The qla2xxx version: the module's version attribute, else the line the driver logs at load.
driver_version() {
  local v
  v=$(cat /sys/module/qla2xxx/version 2>/dev/null)
  [ -n "$v" ] || v=$(dmesg | sed -n 's/.*QLogic Fibre Channel HBA Driver: \([^ ]*\)$/\1/p' | head -n 1)
  echo "${v%.}"
}

uptime_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }

# ---- helpers -------------------------------------------------------------------------------------
# The qla2xxx SCSI host number (from the fc_host of the HBA's PCI function); status 1 if none.
qla_host() {
  local h
  for h in /sys/bus/pci/devices/$COMPAT_BDF/host*; do
    [ -d "$h" ] || continue
    echo "${h##*/host}"
    return 0
  done
  return 1
}
fc_dir() { local n; n=$(qla_host) && echo "/sys/class/fc_host/host$n"; }
port_online() { local f; f=$(fc_dir) && [ "$(cat "$f/port_state" 2>/dev/null)" = Online ]; }
# Disks behind the HBA: "<sdX> <h:c:t:l>" per line.
hba_disks() {
  local n d hctl
  n=$(qla_host) || return 0
  for d in /sys/block/sd*; do
    [ -e "$d/device" ] || continue
    hctl=$(basename "$(readlink -f "$d/device")")
    case "$hctl" in "$n":*) echo "${d##*/} $hctl" ;; esac
  done
}
disk_count() { hba_disks | wc -l; }
# The first disk of LUN $1 whose SCSI device is running (not offline or blocked).
lun_disk() {
  local d
  for d in $(hba_disks | awk -v l="$1" '{ n = split($2, a, ":"); if (a[n] == l) print $1 }'); do
    [ "$(cat /sys/block/$d/device/state 2>/dev/null)" = running ] && { echo "$d"; return 0; }
  done
  return 0
}
# Disks behind the HBA whose SCSI device is not running: "<sdX>=<state>".
not_running() {
  local d hctl
  hba_disks | while read -r d hctl; do
    [ "$(cat /sys/block/$d/device/state 2>/dev/null)" = running ] || echo "$d=$(cat /sys/block/$d/device/state 2>/dev/null)"
  done
}
# Remote ports of the HBA with role FCP Target and state Online, by WWPN.
target_rports() {
  local n r
  n=$(qla_host) || return 0
  for r in /sys/class/fc_remote_ports/rport-"$n":*; do
    [ -e "$r/port_name" ] || continue
    case "$(cat "$r/roles")" in *"FCP Target"*) ;; *) continue ;; esac
    [ "$(cat "$r/port_state")" = Online ] && cat "$r/port_name"
  done
}
has_target() { target_rports | grep -qx "$1"; }
all_targets() { local t; for t in "$@"; do has_target "$t" || return 1; done; return 0; }
expected_disks() { echo $(($(echo $COMPAT_LUNS | wc -w) * $1)); }
disks_at_least() { [ "$(disk_count)" -ge "$1" ]; }
all_running() { [ -z "$(not_running)" ]; }
# wait_ready [PATHS]: port Online and PATHS paths to every expected LUN (default the initial
# targets), each disk's SCSI device running again. After a LIP or an ISP abort the port reports
# Online before the FC transport unblocks the re-found remote ports, so for a moment the disks are
# there but still blocked: I/O started then would wait, and a running disk would not be found.
wait_ready() {
  local paths="${1:-$(echo $COMPAT_TARGETS | wc -w)}"
  wait_until 60 port_online || return 1
  wait_until 60 disks_at_least "$(expected_disks "$paths")" || return 1
  wait_until 60 all_running
}
need_port() { port_online || skip "needs the port Online (see link)"; }
need_disk() { D=$(lun_disk "${1:-0}"); [ -n "$D" ] || skip "needs LUN ${1:-0} as a disk (see luns)"; }
# Writes 1 MiB of random data at MiB offset $2 of disk $1 and keeps a copy in /tmp/pattern-$2.
write_pattern() {
  dd if=/dev/urandom of="/tmp/pattern-$2" bs=64k count=16 2>/dev/null
  dd if="/tmp/pattern-$2" of="/dev/$1" bs=64k count=16 seek=$(($2 * 16)) oflag=direct conv=fsync 2>/dev/null
}
check_pattern() {
  dd if="/dev/$1" of="/tmp/back-$2" bs=64k count=16 skip=$(($2 * 16)) iflag=direct 2>/dev/null || return 1
  cmp -s "/tmp/pattern-$2" "/tmp/back-$2"
}
# io_check DISK OFFSET-MIB: write, read back, compare.
io_check() { write_pattern "$1" "$2" && check_pattern "$1" "$2"; }
# The interrupt kinds enabled on the HBA's function, from lspci: msix, msi or intx.
irq_mode() {
  local caps
  caps=$(lspci -vv -s "${COMPAT_BDF#0000:}" 2>/dev/null)
  if echo "$caps" | grep -q 'MSI-X: Enable+'; then echo msix
  elif echo "$caps" | grep -q 'MSI: Enable+'; then echo msi
  else echo intx; fi
}
qla_irq_lines() { grep -c 'qla2xxx' /proc/interrupts; }
# reload_qla [PARAMS...]: rmmod and insmod qla2xxx, wait for the port and the LUNs.
reload_qla() {
  # Right after a load, the driver's own scan work still holds the module: retry for a while.
  wait_until 20 rmmod qla2xxx || fail "rmmod qla2xxx: $(rmmod qla2xxx 2>&1)"
  wait_until 30 sh -c '! [ -e /sys/module/qla2xxx ]' || fail "qla2xxx still loaded after rmmod"
  load_qla ql2xextended_error_logging=${COMPAT_LOGGING:-0} "$@" || fail "insmod qla2xxx $*: status $?"
  wait_ready || fail "after reload: port $(cat "$(fc_dir)/port_state" 2>/dev/null || echo absent), $(disk_count) disks"
}
# fio_verify NAME DISK ENGINE DEPTH SIZE: randwrite + verify; prints fio's error and verify lines.
fio_verify() {
  fio --name="$1" --filename="/dev/$2" --rw=randwrite --bs=4k --size="$5" --direct=1 \
    --ioengine="$3" --iodepth="$4" --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=0 \
    >"/tmp/$1.out" 2>&1
  local rc=$?
  grep -E 'err=|verify|IOPS|error' "/tmp/$1.out" | head -n 8
  [ "$rc" = 0 ] && grep -q 'err= 0' "/tmp/$1.out"
}

# ---- scenarios -----------------------------------------------------------------------------------
sc_probe() {
  local dev="/sys/bus/pci/devices/$COMPAT_BDF"
  [ -e "$dev" ] || fail "no PCI function $COMPAT_BDF"
  local id driver
  id="$(cat "$dev/vendor"):$(cat "$dev/device")"
  [ "$id" = "$COMPAT_PCI_ID" ] || fail "PCI id $id, expected $COMPAT_PCI_ID"
  driver=none
  [ -e "$dev/driver" ] && driver=$(basename "$(readlink "$dev/driver")")
  note "pci $COMPAT_BDF $id driver=$driver"
  [ "$driver" = qla2xxx ] || fail "function bound to $driver, not qla2xxx"
  local n
  n=$(qla_host) || fail "qla2xxx bound but registered no SCSI host"
  [ -e /sys/class/fc_host/host$n ] || fail "host$n has no fc_host (FC transport not attached)"
  pass "bound to qla2xxx $(driver_version), scsi host$n"
}

sc_irq_msix() {
  qla_host >/dev/null || skip "needs the HBA probed (see probe)"
  local mode lines
  mode=$(irq_mode)
  lines=$(qla_irq_lines)
  note "interrupt mode $mode, $lines qla2xxx vectors in /proc/interrupts"
  [ "$mode" = msix ] || fail "default ql2xenablemsix=1: expected MSI-X, the function uses $mode"
  [ "$lines" -ge 2 ] || fail "MSI-X with $lines qla2xxx vectors; the driver asks for at least 2"
  pass "MSI-X, $lines vectors"
}

sc_flash() {
  local n s
  n=$(qla_host) || skip "needs the HBA probed (see probe)"
  s=/sys/class/scsi_host/host$n
  local fw model serial
  fw=$(cat $s/fw_version 2>/dev/null)
  model=$(cat $s/model_name 2>/dev/null)
  serial=$(cat $s/serial_num 2>/dev/null)
  note "fw_version=$fw model_name=$model serial_num=$serial optrom_fw=$(cat $s/optrom_fw_version 2>/dev/null)"
  case "$fw" in '' | 0.00.00* | 0.0.0*) fail "firmware not running (fw_version '$fw')" ;; esac
  [ -n "$model" ] || fail "no model name: the driver did not read the adapter's VPD/NVRAM"
  [ -n "$serial" ] || fail "no serial number: the driver did not read the adapter's NVRAM"
  # The NVRAM image as the driver reads it from flash: starts with the "ISP " signature.
  local sig
  sig=$(dd if=/sys/bus/pci/devices/$COMPAT_BDF/host$n/nvram bs=512 count=1 2>/dev/null | head -c 4)
  note "nvram signature '$sig'"
  [ "$sig" = "ISP " ] || fail "NVRAM read through sysfs does not start with 'ISP ' ('$sig')"
  pass "firmware $fw, $model, NVRAM read"
}

sc_link() {
  qla_host >/dev/null || skip "needs the HBA probed (see probe)"
  wait_until 60 port_online || fail "port_state $(cat "$(fc_dir)/port_state" 2>/dev/null) after 60 s"
  local f
  f=$(fc_dir)
  local a
  for a in port_name port_id port_type fabric_name speed port_state; do note "$a $(cat $f/$a)"; done
  [ "$(cat $f/port_name)" = "$COMPAT_WWPN" ] || fail "port_name $(cat $f/port_name), expected $COMPAT_WWPN"
  case "$(cat $f/port_id)" in 0x000000 | '') fail "no N_Port ID" ;; esac
  case "$(cat $f/port_type)" in *NPort*) ;; *) fail "port_type $(cat $f/port_type): not a fabric N_Port" ;; esac
  case "$(cat $f/fabric_name)" in 0x0000000000000000 | 0xffffffffffffffff | '') fail "no fabric name" ;; esac
  pass "Online $(cat $f/port_id) $(cat $f/speed) fabric $(cat $f/fabric_name)"
}

sc_discovery() {
  need_port
  # shellcheck disable=SC2086 # a list of WWPNs
  wait_until 60 all_targets $COMPAT_TARGETS || fail "targets seen: $(target_rports | tr '\n' ' '); expected $COMPAT_TARGETS"
  local seen
  seen=$(target_rports | tr '\n' ' ')
  note "FCP targets: $seen"
  pass "$(target_rports | wc -l) FCP targets from the name server"
}

sc_luns() {
  need_port
  wait_ready || fail "$(disk_count) disks, expected $(expected_disks "$(echo $COMPAT_TARGETS | wc -w)")"
  hba_disks | while read -r d hctl; do note "disk $d $hctl $(cat /sys/block/$d/size) sectors"; done
  local entry lun sectors d got
  for entry in $COMPAT_LUNS; do
    lun=${entry%%:*}
    sectors=${entry#*:}
    d=$(lun_disk "$lun")
    [ -n "$d" ] || fail "LUN $lun not found"
    got=$(cat /sys/block/$d/size)
    [ "$got" = "$sectors" ] || fail "LUN $lun ($d): $got sectors, expected $sectors"
    sg_inq "/dev/$d" >/tmp/inq 2>&1 || fail "sg_inq /dev/$d: $(head -n 3 /tmp/inq)"
    note "$d: $(grep -E 'Vendor identification|Product identification' /tmp/inq | tr -s ' ' | tr '\n' ' ')"
    sg_vpd -p di "/dev/$d" >/tmp/vpd83 2>&1 || fail "VPD page 0x83 of $d: $(head -n 3 /tmp/vpd83)"
    grep -qi 'NAA' /tmp/vpd83 || fail "VPD page 0x83 of $d has no NAA designator: $(head -n 5 /tmp/vpd83 | tr '\n' ' ')"
    sg_vpd -p sn "/dev/$d" >/tmp/vpd80 2>&1 || fail "VPD page 0x80 of $d: $(head -n 3 /tmp/vpd80)"
    note "$d: $(grep -i 'serial' /tmp/vpd80 | head -n 1)"
  done
  pass "$(disk_count) disks, sizes and VPD 0x80/0x83 as configured"
}

sc_rscn() {
  need_port
  [ -n "$COMPAT_RSCN_TARGET" ] || skip "no joining target configured"
  has_target "$COMPAT_RSCN_TARGET" && fail "$COMPAT_RSCN_TARGET present before it joined"
  request add-port
  wait_until 60 has_target "$COMPAT_RSCN_TARGET" || fail "the joining port $COMPAT_RSCN_TARGET was not discovered within 60 s (targets: $(target_rports | tr '\n' ' '))"
  local paths
  paths=$(($(echo $COMPAT_TARGETS | wc -w) + 1))
  wait_until 60 disks_at_least "$(expected_disks $paths)" || fail "new port's LUNs: $(disk_count) disks, expected $(expected_disks $paths)"
  pass "RSCN: $COMPAT_RSCN_TARGET logged in, $(disk_count) disks"
}

sc_fio_qd1() {
  need_disk 0
  fio_verify qd1 "$D" psync 1 2M || fail "fio QD1 verify on $D failed"
  pass "2 MiB randwrite+verify, psync QD1, 0 errors"
}

sc_fio_qd16() {
  need_disk 0
  fio_verify qd16 "$D" libaio 16 8M || fail "fio QD16 verify on $D failed"
  pass "8 MiB randwrite+verify, libaio QD16, 0 errors"
}

sc_unit_attention() {
  need_disk 0
  [ -n "$COMPAT_NEW_LUN" ] || skip "no LUN mapping change configured"
  local lun=${COMPAT_NEW_LUN%%:*} sectors=${COMPAT_NEW_LUN#*:} before i seen=0
  before=$(dmesg | grep -ci 'LUN assignments on this target have changed')
  request map-lun
  # The target reports the unit attention once, on the next command to one of its LUNs.
  i=0
  while [ $i -lt 60 ]; do
    dd if=/dev/$D of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null
    if [ "$(dmesg | grep -ci 'LUN assignments on this target have changed')" -gt "$before" ]; then seen=1; break; fi
    sleep 0.5
    i=$((i + 1))
  done
  [ $seen = 1 ] || fail "no REPORTED LUNS DATA HAS CHANGED unit attention logged within 30 s"
  note "unit attention: REPORTED LUNS DATA HAS CHANGED"
  echo "- - -" >"/sys/class/scsi_host/host$(qla_host)/scan"
  wait_until 30 sh -c ". /lib/guest-functions.sh; . /lib/compat-scenarios.sh; [ -n \"\$(lun_disk $lun)\" ]" \
    || fail "after the unit attention and a host scan, LUN $lun is not a disk"
  local d
  d=$(lun_disk "$lun")
  [ "$(cat /sys/block/$d/size)" = "$sectors" ] || fail "new LUN $lun: $(cat /sys/block/$d/size) sectors, expected $sectors"
  io_check "$d" 1 || fail "write/read/compare on the new LUN $d failed"
  pass "UA seen, LUN $lun ($d) added by a scan, I/O verified"
}

sc_tmf() {
  need_disk 0
  sg_reset -d "/dev/$D" >/tmp/r1 2>&1 || fail "LUN reset (sg_reset -d $D): $(cat /tmp/r1)"
  sg_reset -t "/dev/$D" >/tmp/r2 2>&1 || fail "target reset (sg_reset -t $D): $(cat /tmp/r2)"
  sleep 1
  io_check "$D" 2 || fail "I/O after the resets failed"
  pass "LUN reset and target reset succeeded, I/O verified after"
}

sc_issue_lip() {
  need_disk 0
  local f
  f=$(fc_dir)
  echo 1 >"$f/issue_lip" || fail "write to issue_lip failed"
  sleep 1
  wait_ready || fail "after issue_lip: port $(cat $f/port_state), $(disk_count) disks, not running: $(not_running)"
  need_disk 0
  io_check "$D" 3 || fail "I/O after issue_lip failed"
  pass "port back Online with $(disk_count) disks, I/O verified"
}

sc_isp_abort() {
  need_disk 0
  local n before
  n=$(qla_host)
  before=$(dmesg | grep -c 'Performing ISP error recovery')
  # The driver's sysfs "reset" attribute: 0x2025c (decimal 131676) asks for an ISP abort
  # (qla2x00_sysfs_write_reset, "Issuing ISP reset").
  echo 131676 >"/sys/class/scsi_host/host$n/device/reset" || fail "write to the reset attribute failed"
  sleep 2
  wait_ready || fail "after the ISP abort: port $(cat "$(fc_dir)/port_state"), $(disk_count) disks, not running: $(not_running)"
  [ "$(dmesg | grep -c 'Performing ISP error recovery')" -gt "$before" ] || fail "the driver did not run ISP error recovery"
  need_disk 0
  io_check "$D" 4 || fail "I/O after the ISP abort failed"
  pass "firmware re-initialized, port Online, I/O verified"
}

# No udev daemon in this guest: write the udev database entries multipath reads (an initialized
# device whose ID_SERIAL is the NAA WWID, as scsi_id reports it) for every SCSI disk.
udev_db() {
  mkdir -p /run/udev/data
  local d w
  for d in /sys/block/sd*; do
    w=$(cat $d/device/wwid 2>/dev/null)
    w=${w#naa.}
    printf 'I:1000000\nE:ID_SERIAL=3%s\nE:ID_WWN=0x%s\n' "$w" "$w" >/run/udev/data/b$(cat $d/dev)
  done
}
mp_maps() { local d; for d in /sys/block/dm-*; do [ -e $d/dm/name ] && cat $d/dm/name; done; }

sc_multipath() {
  need_disk 0
  local paths
  paths=$(echo $COMPAT_TARGETS | wc -w)
  [ "$paths" -ge 2 ] || skip "needs two target ports"
  udev_db
  multipathd -d -s >/tmp/multipathd.log 2>&1 &
  local mpd=$!
  sleep 2
  multipath -v2 >/tmp/mp.log 2>&1
  wait_until 20 sh -c '[ -n "$(ls /sys/block/dm-*/dm/name 2>/dev/null)" ]' \
    || { kill $mpd; fail "dm-multipath built no map: $(head -n 5 /tmp/mp.log | tr '\n' ' ')"; }
  local map
  map=$(mp_maps | head -n 1)
  note "maps: $(mp_maps | tr '\n' ' '); $map has $(ls /sys/block/$(basename $(readlink -f /dev/mapper/$map))/slaves | wc -w) paths"
  fio --name=mp --filename="/dev/mapper/$map" --rw=randwrite --bs=16k --size=8M --direct=1 --ioengine=libaio \
    --iodepth=4 --verify=crc32c --do_verify=1 --verify_fatal=1 --randrepeat=0 --loops=2 \
    >/tmp/mp-fio.out 2>&1 &
  local fio_pid=$!
  sleep 1
  request port-down 0
  sleep 5
  note "during link down: $(multipath -ll "$map" 2>/dev/null | grep -cE 'failed|faulty|offline') failed paths"
  request port-up 0
  wait $fio_pid
  local rc=$?
  grep -E 'err=|verify|error' /tmp/mp-fio.out | head -n 6
  wait_until 60 all_targets $COMPAT_TARGETS
  local back=$?
  multipath -F >/dev/null 2>&1
  kill $mpd 2>/dev/null
  { [ $rc = 0 ] && grep -q 'err= 0' /tmp/mp-fio.out; } || fail "fio on the multipath map failed (status $rc)"
  [ $back = 0 ] || fail "the target port that went down did not come back"
  wait_until 30 sh -c ". /lib/guest-functions.sh; . /lib/compat-scenarios.sh; [ -z \"\$(not_running)\" ]" \
    || fail "after the port came back, paths are not running: $(not_running | tr '\n' ' ')"
  pass "one target port down and up under fio verify on $map: 0 I/O errors"
}

sc_npiv() {
  need_port
  [ -n "$COMPAT_NPIV" ] || skip "no NPIV name granted"
  local f n wwpn v
  f=$(fc_dir)
  n=$(qla_host)
  note "max_npiv_vports $(cat $f/max_npiv_vports 2>/dev/null) in use $(cat $f/npiv_vports_inuse 2>/dev/null)"
  echo "$COMPAT_NPIV" >"$f/vport_create" || fail "vport_create $COMPAT_NPIV refused"
  wwpn="0x${COMPAT_NPIV%%:*}"
  vhost() { for h in /sys/class/fc_host/host*; do [ "$(cat $h/port_name)" = "$wwpn" ] && [ "$(cat $h/port_state)" = Online ] && { echo $h; return 0; }; done; return 1; }
  wait_until 60 vhost || fail "vport $wwpn did not come Online: $(cat /sys/class/fc_vports/vport-$n:*/vport_state 2>/dev/null | tr '\n' ' ')"
  v=$(vhost)
  note "vport $wwpn $(basename $v) port_id $(cat $v/port_id) state $(cat /sys/class/fc_vports/vport-$n:*/vport_state | head -n 1)"
  local vid
  vid=$(cat $v/port_id)
  [ "$vid" != "$(cat $f/port_id)" ] || fail "the vport has the physical port's N_Port ID $vid"
  echo "$COMPAT_NPIV" >"$f/vport_delete" || fail "vport_delete failed"
  wait_until 30 sh -c "! ls /sys/class/fc_vports/ 2>/dev/null | grep -q vport-" || fail "the vport is still there after vport_delete"
  pass "vport_create: FDISC, $(basename $v) Online at $vid; vport_delete"
}

sc_rmmod_reload() {
  need_disk 0
  write_pattern "$D" 5 || fail "writing the pattern before rmmod failed"
  reload_qla
  need_disk 0
  check_pattern "$D" 5 || fail "the data written before rmmod reads back different"
  pass "rmmod + insmod: port Online, $(disk_count) disks, data intact"
}

# irq_reload MODE PARAM: reload with ql2xenablemsix=PARAM and check mode + verified I/O.
irq_reload() {
  qla_host >/dev/null || skip "needs the HBA probed (see probe)"
  reload_qla "ql2xenablemsix=$2"
  local mode
  mode=$(irq_mode)
  note "ql2xenablemsix=$2: interrupt mode $mode, $(qla_irq_lines) qla2xxx lines in /proc/interrupts"
  [ "$mode" = "$1" ] || fail "ql2xenablemsix=$2: expected $1, the function uses $mode"
  need_disk 0
  io_check "$D" 6 || fail "I/O with $1 failed"
  pass "$1 in use, I/O verified"
}
sc_irq_intx() { irq_reload intx 0; }
sc_irq_msi() { irq_reload msi 2; }

# ---- runner --------------------------------------------------------------------------------------
# compat_run NAME SECONDS: run sc_NAME (dashes become underscores) in its own shell.
compat_run() {
  local name="$1" limit="$2" fn t0 t1 rc status marker summary
  fn="sc_$(echo "$name" | tr - _)"
  echo "GUEST:SCBEGIN $name"
  marker="compat: scenario $name begins"
  echo "$marker" >/dev/kmsg
  t0=$(uptime_ms)
  timeout -s KILL "$limit" sh -c ". /lib/guest-functions.sh; . /lib/compat-scenarios.sh; $fn" 3>&1 >"/tmp/sc-$name.log" 2>&1
  rc=$?
  t1=$(uptime_ms)
  case "$rc" in
    0) status=pass ;;
    "$SC_EXIT_SKIP") status=skip ;;
    137 | 124) status=fail; echo "FAIL timed out after $limit s" >>"/tmp/sc-$name.log" ;;
    *) status=fail ;;
  esac
  summary=$(grep -E '^(RESULT|FAIL|SKIP) ' "/tmp/sc-$name.log" | tail -n 1 | cut -d' ' -f2-)
  [ -n "$summary" ] || summary="exited with status $rc"
  if [ "$status" != pass ]; then
    grep -vE '^(RESULT) ' "/tmp/sc-$name.log" | head -n "$COMPAT_EVIDENCE_LINES" | sed "s/^/GUEST:SCLOG $name /"
    dmesg | awk -v m="$marker" 'found { print } index($0, m) { found = 1 }' \
      | grep -iE 'qla2xxx|scsi|sd [0-9]|rport|I/O error|blk_update|device-mapper|multipath|Call Trace|BUG|WARNING' \
      | head -n "$COMPAT_EVIDENCE_LINES" | sed "s/^/GUEST:SCLOG $name kernel: /"
  fi
  echo "GUEST:SC $name $status $((t1 - t0)) $summary"
}
