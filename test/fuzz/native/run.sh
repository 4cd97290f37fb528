#!/usr/bin/env bash
# Builds test/fuzz/native/cmsg_fuzz.cc with libFuzzer + AddressSanitizer + UBSan (clang from
# Debian: apt-get install clang) and runs it for $1 seconds. Corpus in $2/corpus/native-cmsg,
# crashing inputs in $2/findings/native-cmsg/. Exit status: libFuzzer's (non-zero on a finding),
# 3 when clang is not installed.
set -euo pipefail
seconds=${1:-60}
out=${2:-fuzz-out}
root=$(cd "$(dirname "$0")/../../.." && pwd)
if ! command -v clang++ >/dev/null; then
  echo "native-cmsg: skipped: clang++ is not installed (apt-get install clang)"
  exit 3
fi
bin="$root/build/fuzz/cmsg_fuzz"
mkdir -p "$(dirname "$bin")" "$out/corpus/native-cmsg" "$out/findings/native-cmsg"
clang++ -std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I "$root/native/src" "$root/test/fuzz/native/cmsg_fuzz.cc" -o "$bin"
# Seeds: one SCM_RIGHTS message with three fds, and a non-SCM_RIGHTS one followed by one with an fd.
seed() { printf "$1" > "$out/corpus/native-cmsg/$2"; }
seed '\x1c\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x03\x00\x00\x00\x04\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00' seed-rights3
seed '\x14\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x14\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x09\x00\x00\x00' seed-two
exec "$bin" -max_total_time="$seconds" -timeout=2 -max_len=4096 -print_final_stats=1 \
  -artifact_prefix="$out/findings/native-cmsg/" "$out/corpus/native-cmsg"
