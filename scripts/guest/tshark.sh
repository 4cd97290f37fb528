#!/usr/bin/env bash
# Runs the cached rootfs's tshark (Wireshark 4.6, with the FC / FC ELS / FCP / dNS dissectors)
# on this host through the rootfs's dynamic loader, e.g. to dissect the simulated fabric's
# LINKTYPE_FC_2 (224) pcaps:  scripts/guest/tshark.sh -r fabric.pcap -Y 'fcels || fcdns'
#   NPIV_HBA_CACHE   cache directory (default /var/cache/npiv-hba), as for prepare.sh
set -euo pipefail
# shellcheck source=rootfs-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/rootfs-env.sh"
# Wireshark looks for its data files and plugins at compiled-in absolute paths; point it at
# the rootfs copies instead. Personal configuration is kept out of the way.
export WIRESHARK_DATA_DIR="$ROOTFS/usr/share/wireshark"
plugin_dir="$(ls -d "$ROOTFS_LIBDIR"/wireshark/plugins/* 2>/dev/null | head -n1 || true)"
[ -n "$plugin_dir" ] && export WIRESHARK_PLUGIN_DIR="$plugin_dir"
export WIRESHARK_CONFIG_DIR="${WIRESHARK_CONFIG_DIR:-${TMPDIR:-/tmp}/npiv-hba-wireshark-$(id -u)}"
mkdir -p "$WIRESHARK_CONFIG_DIR"
rootfs_exec /usr/bin/tshark "$@"
