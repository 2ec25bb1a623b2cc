#!/usr/bin/env bash
# Build the HIP stand-in (standin.c + rtc.c: libamdhip64 and hipRTC forwarding to the CUDA driver and
# NVRTC) twice, against ROCm's own headers, so that hipDeviceProp_t has ROCm's layouts:
#   OUT/5/lib/libamdhip64.so.5   HIP 5.2 headers (Debian 12's libamdhip64-dev, /usr/include/hip);
#                                hipGetDeviceProperties with the 5.x struct, hipRTC inside (as ROCm 5)
#   OUT/6/lib/libamdhip64.so.6   HIP 6.x headers (Debian unstable's libamdhip64-dev, from the
#   OUT/6/lib/libhiprtc.so.6     rocm-chroot root); hipGetDevicePropertiesR0600 with the 6.x struct
#                                (and hipGetDeviceProperties/R0000 with the old one), hipRTC apart
# then checks that each library exports every entry point the crate loads (the dyn_api! lists of
# src/gpu/hip/mod.rs and hiprtc.rs), and prints both struct layouts.
#
# usage: tools/hip-standin/build.sh [OUT]      (OUT defaults to target/hip-standin)
#   HIP5_INCLUDE / HIP6_INCLUDE: directories holding hip/hip_runtime_api.h for each layout. Without
#   HIP6_INCLUDE the 6.x headers are taken from the rocm-chroot root (ROCM_CHROOT, default
#   /var/cache/rocm-sid-root) or, when that root lacks them, extracted from its libamdhip64-dev
#   package (apt-get download inside the root) into OUT/headers6.
# A test tool only: nothing here is linked into the crate. Needs gcc; no CUDA or GPU.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/target/hip-standin}
mkdir -p "$out"
out=$(cd "$out" && pwd)
CC=${CC:-gcc}
CFLAGS=(-std=gnu11 -O2 -g -fPIC -shared -Wall -Wextra -Wno-unused-parameter -Wno-deprecated-declarations
        -Wno-format-truncation -fvisibility=hidden -D__HIP_PLATFORM_AMD__)

hip_major() { sed -n 's/^#define HIP_VERSION_MAJOR \([0-9]*\).*/\1/p' "$1/hip/hip_version.h"; }

inc5=${HIP5_INCLUDE:-/usr/include}
[ -f "$inc5/hip/hip_runtime_api.h" ] || { echo "build.sh: no HIP 5 headers in $inc5 (apt-get install libamdhip64-dev on Debian 12, or set HIP5_INCLUDE)" >&2; exit 1; }

inc6=${HIP6_INCLUDE:-}
if [ -z "$inc6" ]; then
  root=${ROCM_CHROOT:-/var/cache/rocm-sid-root}
  if [ -f "$root/usr/include/hip/hip_runtime_api.h" ]; then
    inc6=$root/usr/include
  elif [ -f "$out/headers6/usr/include/hip/hip_runtime_api.h" ]; then
    inc6=$out/headers6/usr/include
  else
    [ -d "$root/var/lib/apt" ] || { echo "build.sh: no HIP 6 headers: set HIP6_INCLUDE, or make the rocm-chroot root first (../shared/tools/rocm-chroot -- /bin/true)" >&2; exit 1; }
    mkdir -p "$root/tmp/hip-standin-deb"
    chroot "$root" sh -c 'cd /tmp/hip-standin-deb && rm -f ./*.deb && apt-get download libamdhip64-dev' >/dev/null 2>&1 \
      || { echo "build.sh: apt-get download libamdhip64-dev failed inside $root" >&2; exit 1; }
    rm -rf "$out/headers6"
    dpkg-deb -x "$root"/tmp/hip-standin-deb/libamdhip64-dev_*.deb "$out/headers6"
    rm -rf "$root/tmp/hip-standin-deb"
    inc6=$out/headers6/usr/include
  fi
fi
[ "$(hip_major "$inc5")" = 5 ] || { echo "build.sh: $inc5 holds HIP $(hip_major "$inc5"), not 5" >&2; exit 1; }
[ "$(hip_major "$inc6")" = 6 ] || { echo "build.sh: $inc6 holds HIP $(hip_major "$inc6"), not 6" >&2; exit 1; }

mkdir -p "$out/5/lib" "$out/6/lib"
rm -f "$out"/5/lib/*.so* "$out"/6/lib/*.so*
$CC "${CFLAGS[@]}" -I"$inc5" -Wl,-soname,libamdhip64.so.5 -o "$out/5/lib/libamdhip64.so.5" \
  "$here/standin.c" "$here/rtc.c" -ldl -lpthread
$CC "${CFLAGS[@]}" -I"$inc6" -Wl,-soname,libamdhip64.so.6 -o "$out/6/lib/libamdhip64.so.6" \
  "$here/standin.c" -ldl -lpthread
$CC "${CFLAGS[@]}" -I"$inc6" -Wl,-soname,libhiprtc.so.6 -o "$out/6/lib/libhiprtc.so.6" \
  "$here/rtc.c" -ldl -lpthread

# Every entry point the crate loads must be exported: the names in the dyn_api! blocks.
names() { sed -n '/^dyn_api!(/,/^);/p' "$1" | sed -n 's/^ *fn \([A-Za-z0-9_]*\)(.*/\1/p'; }
rt=$(names "$repo/src/gpu/hip/mod.rs")
rtc=$(names "$repo/src/gpu/hip/hiprtc.rs")
[ "$(echo "$rt" | wc -l)" -gt 30 ] && [ "$(echo "$rtc" | wc -l)" -ge 9 ] \
  || { echo "build.sh: could not read the dyn_api! lists" >&2; exit 1; }
missing=0
check() { # library, names...
  local lib=$1; shift
  local have; have=$(nm -D --defined-only "$lib" | awk '{print $3}')
  for s in "$@"; do
    grep -qx "$s" <<<"$have" || { echo "MISSING in $(basename "$lib"): $s" >&2; missing=1; }
  done
}
# shellcheck disable=SC2086
check "$out/5/lib/libamdhip64.so.5" $rt $rtc hipGetDeviceProperties
# shellcheck disable=SC2086
check "$out/6/lib/libamdhip64.so.6" $rt hipGetDevicePropertiesR0600 hipGetDeviceProperties
# shellcheck disable=SC2086
check "$out/6/lib/libhiprtc.so.6" $rtc
[ "$missing" = 0 ] || { echo "build.sh: entry points missing (see above)" >&2; exit 1; }

# The two struct layouts, as the crate's gcnArchName scan meets them.
layout() {
  local t; t=$(mktemp -d)
  printf '#include <hip/hip_runtime_api.h>\n#include <stdio.h>\n#include <stddef.h>\nint main(void){printf("HIP %%d.%%d hipDeviceProp_t: %%zu bytes, gcnArchName at %%zu", HIP_VERSION_MAJOR, HIP_VERSION_MINOR, sizeof(hipDeviceProp_t), offsetof(hipDeviceProp_t, gcnArchName));return 0;}\n' >"$t/l.c"
  $CC -D__HIP_PLATFORM_AMD__ -I"$1" "$t/l.c" -o "$t/l" && "$t/l"
  rm -rf "$t"
}
echo "hip-standin: $out/5/lib/libamdhip64.so.5 ($(layout "$inc5"))"
echo "hip-standin: $out/6/lib/libamdhip64.so.6 + libhiprtc.so.6 ($(layout "$inc6"))"
echo "hip-standin: all $(echo "$rt" | wc -l) runtime and $(echo "$rtc" | wc -l) hipRTC entry points of the crate are exported"
