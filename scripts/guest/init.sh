#!/bin/busybox sh
# /init of the guest initramfs built by scripts/guest/prepare.sh (build-guest.sh).
#
# Boots a Debian kernel straight into busybox: mounts the pseudo filesystems, loads the
# SCSI/FC/dm-multipath modules and the stock qla2xxx driver (in modprobe --show-depends order),
# reports the PCI devices, runs /test.sh (appended by src/harness/guest.ts at run time) and
# powers off. Every line meant for the harness starts with "GUEST:" so it can be picked out of
# the serial log, and the final line is "GUEST:EXIT=<status of /test.sh>".
#
# Kernel command-line words understood here:
#   qla_params=a=1,b=2   qla2xxx module parameters (comma separated), e.g.
#                        qla_params=ql2xextended_error_logging=0x40000000,ql2xenablemsix=0
#   qla_skip             do not load qla2xxx (the test script loads it itself, see below)
#   guest_dmesg          print the kernel log as "GUEST:DMESG <line>" after the test script
#   guest_out=/dev/hvc0  print everything (init's lines, the script's output) to this tty
#                        instead of the console, so kernel messages on the console cannot
#                        land inside a line the harness parses
#
# For test scripts: modules are at /lib/modules/<name>.ko, load order in /lib/modules/order;
# `load_qla [params...]` (defined in /lib/guest-functions.sh, sourced before /test.sh) loads
# qla2xxx. DM_DISABLE_UDEV=1 is exported because there is no udev daemon in this guest.

/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
export DM_DISABLE_UDEV=1

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /dev/shm
mkdir -p /run/multipath /etc/multipath /root

guest_out=""
for word in $(cat /proc/cmdline); do
  case "$word" in guest_out=/dev/*) guest_out="${word#guest_out=}" ;; esac
done
# Modules needed before the script port exists (a kernel whose virtio console is a module; see
# src/compat/kernels.ts); its device node appears once the driver has bound. The prepared
# initramfs has none: its kernel has the console built in.
if [ -f /lib/modules/early ]; then
  while read -r module; do [ -n "$module" ] && insmod "/lib/modules/$module.ko"; done </lib/modules/early
  n=0
  while [ -n "$guest_out" ] && [ ! -c "$guest_out" ] && [ $n -lt 30 ]; do sleep 0.1; n=$((n + 1)); done
fi
if [ -n "$guest_out" ] && [ -c "$guest_out" ]; then
  # Raw output: no \n -> \r\n translation and no flow control stalls on a port nobody types on.
  stty -F "$guest_out" raw -echo 2>/dev/null
  exec >"$guest_out" 2>&1
fi

qla_params=""
qla_skip=0
print_dmesg=0
for word in $(cat /proc/cmdline); do
  case "$word" in
    qla_params=*) qla_params="$(echo "${word#qla_params=}" | tr ',' ' ')" ;;
    qla_skip) qla_skip=1 ;;
    guest_dmesg) print_dmesg=1 ;;
  esac
done

echo "GUEST:BOOT kernel=$(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo)"

. /lib/guest-functions.sh

while read -r module; do
  [ -n "$module" ] || continue
  if [ "$module" = qla2xxx ]; then
    [ "$qla_skip" = 1 ] && { echo "GUEST:INSMOD qla2xxx skipped"; continue; }
    # shellcheck disable=SC2086 # qla_params is a list of words on purpose
    load_qla $qla_params
  else
    insmod "/lib/modules/$module.ko" || echo "GUEST:INSMOD $module failed status=$?"
  fi
done < /lib/modules/order

for dev in /sys/bus/pci/devices/*; do
  [ -e "$dev/vendor" ] || continue
  driver=none
  [ -e "$dev/driver" ] && driver="$(basename "$(readlink "$dev/driver")")"
  echo "GUEST:PCI ${dev##*/} $(cat "$dev/vendor"):$(cat "$dev/device")" \
    "subsys=$(cat "$dev/subsystem_vendor"):$(cat "$dev/subsystem_device")" \
    "class=$(cat "$dev/class") irq=$(cat "$dev/irq") driver=$driver"
done

status=0
if [ -f /test.sh ]; then
  echo "GUEST:TEST-START"
  sh -c '. /lib/guest-functions.sh; . /test.sh'
  status=$?
else
  lsmod | sed 's/^/GUEST:LSMOD /'
  dmesg | grep -i qla | sed 's/^/GUEST:DMESG /'
fi
[ "$print_dmesg" = 1 ] && dmesg | sed 's/^/GUEST:DMESG /'
sync
if [ -n "$guest_out" ]; then
  # Let go of the port first: the last close of a tty waits until its output has drained, so
  # the EXIT line leaves the UART before poweroff.
  exec >/dev/console 2>&1
  echo "GUEST:EXIT=$status" >"$guest_out"
else
  echo "GUEST:EXIT=$status"
fi
poweroff -f
# poweroff -f does not return; if it ever fails, a panic with panic=-1 ends QEMU (-no-reboot).
exit "$status"
