#!/usr/bin/env bash
# The crate's HIP path end to end on the NVIDIA GPU machine, through the HIP stand-in
# (tools/hip-standin: libamdhip64 + hipRTC forwarding to the CUDA driver and NVRTC), for both
# hipDeviceProp_t layouts (HIP 5.2: libamdhip64.so.5 with hipRTC inside; HIP 6.4: libamdhip64.so.6 +
# libhiprtc.so.6) and for a wave64 and a wave32 gcnArchName (gfx942, gfx1100).
#
# Run from the repo root on the GPU machine, with .gpu/ from ../shared/tools/gpu-bundle:
#     bash tools/hip_standin_check.sh          (BUDGET=seconds, default 420, bounds the whole run)
# The stand-in libraries are looked for in .gpu/extra/hip-standin/{5,6}/lib (carry them: run
# tools/hip-standin/build.sh here, then mkdir -p .gpu/extra/hip-standin &&
# cp -r target/hip-standin/5 target/hip-standin/6 .gpu/extra/hip-standin/ before gpu-bundle), then
# target/hip-standin; failing both it tries tools/hip-standin/build.sh (which needs ROCm's headers).
#
# Per layout and arch: `rocmforge info` (the gcnArchName-derived target, the libraries loaded), then
# .gpu/tests/gpu_smoke-test --include-ignored --test-threads=1 with ROCMFORGE_DEVICE=hip,
# ROCMFORGE_REQUIRE_GPU=1, ROCM_PATH=<stand-in layout dir> and ROCMFORGE_STANDIN_ARCH=<arch>; one
# summary line per run (PASS/FAIL, test counts) and the first failure message. With budget left, the
# bonus binaries (BONUS, default gpu_mlp gpu_attention gpu_quantized) run the same way (gpu_mlp
# without its hipBLAS test: the stand-in has no libhipblas).
set -u
cd "$(dirname "$0")/.."
export ROCMFORGE_REQUIRE_GPU=1 RUST_BACKTRACE=1 ROCMFORGE_DEVICE=hip
unset ROCMFORGE_EMULATE HIP_PATH
[ -x .gpu/bin/rocmforge ] && export ROCMFORGE_BIN=$PWD/.gpu/bin/rocmforge
BUDGET=${BUDGET:-420}
CAP=${CAP:-120}
OUT=${OUT:-$(mktemp -d /tmp/hip-standin-check.XXXX)}
mkdir -p "$OUT"
LAYOUTS=${LAYOUTS:-"5 6"}
ARCHS=${ARCHS:-"gfx942:sramecc+:xnack- gfx1100"}
BONUS=${BONUS-"gpu_mlp gpu_attention gpu_quantized"}
start=$(date +%s)

standin=""
for d in .gpu/extra/hip-standin target/hip-standin; do
  if [ -e "$d/5/lib/libamdhip64.so.5" ] && [ -e "$d/6/lib/libamdhip64.so.6" ]; then standin=$PWD/$d; break; fi
done
if [ -z "$standin" ]; then
  echo "hip-standin: no prebuilt libraries; building (needs gcc and ROCm's HIP headers)"
  bash tools/hip-standin/build.sh target/hip-standin || { echo "hip-standin: FAIL: no stand-in libraries (build them where the headers are and carry them in .gpu/extra/hip-standin)"; exit 1; }
  standin=$PWD/target/hip-standin
fi
echo "hip-standin: libraries from $standin"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || true

summary=$OUT/summary
: > "$summary"
run() { # layout arch binary
  local layout=$1 arch=$2 b=$3 tag="layout $1 ${2%%:*} $3"
  local exe=.gpu/tests/$b-test log=$OUT/$1.${2%%:*}.$b.log
  if [ ! -x "$exe" ]; then echo "$tag MISSING ($exe)" >> "$summary"; return; fi
  local left=$(( BUDGET - ($(date +%s) - start) ))
  if [ "$left" -lt 15 ]; then echo "$tag NOT-RUN (budget spent)" >> "$summary"; return; fi
  [ "$left" -gt "$CAP" ] && left=$CAP
  local extra=""
  [ "$b" = gpu_quantized ] && [ -z "${ROCMFORGE_TEST_GGUF:-}" ] && extra="--skip smollm2_real_tensors"
  # the stand-in has no hipBLAS (libhipblas): the BLAS comparison is not a HIP host-code test
  [ "$b" = gpu_mlp ] && extra="--skip dequant_plus_blas_against_f64"
  local t0; t0=$(date +%s)
  ROCM_PATH=$standin/$layout ROCMFORGE_STANDIN_ARCH=$arch ROCMFORGE_CACHE_DIR=$OUT/cache.$layout.${arch%%:*} \
    timeout -k 5 "$left" "$exe" --include-ignored --test-threads=1 $extra > "$log" 2>&1
  local rc=$? dt=$(( $(date +%s) - t0 ))
  local res; res=$(grep -E "^test result:" "$log" | tail -1 | sed -E 's/^test result: //; s/; [0-9]+ measured.*//')
  local st=PASS
  [ "$rc" = 0 ] || st=FAIL
  { [ "$rc" = 124 ] || [ "$rc" = 137 ]; } && st="TIMEOUT(${left}s)"
  echo "$tag $st ${dt}s ${res:-no result line}" >> "$summary"
  grep -E "^test .* \.\.\. FAILED$" "$log" | sed -E "s/^test (.*) \.\.\. FAILED$/    failed: \1/" >> "$summary"
  [ "$st" = PASS ] || grep -m1 -A3 "panicked at" "$log" | cut -c1-400 | sed 's/^/    /' >> "$summary"
}

for layout in $LAYOUTS; do
  for arch in $ARCHS; do
    echo "== layout $layout ($(ls "$standin/$layout/lib" | tr '\n' ' ')), ROCMFORGE_STANDIN_ARCH=$arch"
    if [ -x .gpu/bin/rocmforge ]; then
      ROCM_PATH=$standin/$layout ROCMFORGE_STANDIN_ARCH=$arch ROCMFORGE_CACHE_DIR=$OUT/cache.$layout.${arch%%:*} \
        .gpu/bin/rocmforge info > "$OUT/$layout.${arch%%:*}.info" 2>&1
      grep -E "^device|target|driver|EMULATION|compiler amd" "$OUT/$layout.${arch%%:*}.info" | cut -c1-300
      want="${arch}@sm_"
      if grep -q "target *${want}" "$OUT/$layout.${arch%%:*}.info"; then
        echo "layout $layout ${arch%%:*} info PASS (target ${arch}@sm_XY from gcnArchName)" >> "$summary"
      else
        echo "layout $layout ${arch%%:*} info FAIL (no target ${want}XY)" >> "$summary"
        grep "^device" "$OUT/$layout.${arch%%:*}.info" | cut -c1-300 | sed "s/^/    /" >> "$summary"
      fi
    fi
    run "$layout" "$arch" gpu_smoke
  done
done
for b in $BONUS; do
  for layout in $LAYOUTS; do
    for arch in $ARCHS; do run "$layout" "$arch" "$b"; done
  done
done

echo "== hip-standin summary ($(( $(date +%s) - start ))s; logs in $OUT)"
cat "$summary"
smoke_pass=$(grep -c "gpu_smoke PASS" "$summary")
smoke_total=$(grep -c " gpu_smoke " "$summary")
echo "hip-standin: gpu_smoke passed in $smoke_pass of $smoke_total layout x arch runs; $(grep -c " PASS " "$summary") of $(grep -cE "^layout" "$summary") checks passed"
[ "$smoke_pass" = "$smoke_total" ] && [ "$smoke_total" -gt 0 ]
