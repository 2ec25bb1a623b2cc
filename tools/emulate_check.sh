#!/usr/bin/env bash
# The AMD code paths emulated on the NVIDIA GPU (issue 13). Run on the GPU machine from the repo
# root, with .gpu/ from ../shared/tools/gpu-bundle (test binaries under .gpu/tests/):
#     bash tools/emulate_check.sh            (about 4 minutes; BUDGET=seconds changes the deadline)
# For each emulated target (ROCMFORGE_EMULATE=gfx90a, gfx942, gfx1100, gfx1200; the four run in
# parallel, one process each) it runs the GPU test binaries in order of importance with
# --include-ignored, each under the time left of the budget, and prints one line per target and
# binary plus the failing test names. Logs stay in $OUT (printed at the end).
set -u
cd "$(dirname "$0")/.."
export ROCMFORGE_REQUIRE_GPU=1 RUST_BACKTRACE=1
[ -x .gpu/bin/rocmforge ] && export ROCMFORGE_BIN=$PWD/.gpu/bin/rocmforge
BUDGET=${BUDGET:-225}
CAP=${CAP:-100}   # at most this many seconds per binary, so one slow binary leaves time to the next
OUT=${OUT:-$(mktemp -d /tmp/emu-check.XXXX)}
mkdir -p "$OUT"
TARGETS=${TARGETS:-"gfx90a gfx942 gfx1100 gfx1200"}
# gpu_emulate: layouts lane by lane, shuffles, dot4; then the op tests against their CPU references.
TESTS=${TESTS:-"gpu_emulate gpu_smoke gpu_attention gpu_mlp gpu_quantized gpu_gemv_q8 gpu_sampling"}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || true
if [ -x .gpu/bin/rocmforge ]; then
  ROCMFORGE_EMULATE=gfx942 .gpu/bin/rocmforge info 2>/dev/null | grep -E "^device|target|EMULATION" || true
fi
start=$(date +%s)
run_target() {
  local t=$1
  export ROCMFORGE_EMULATE=$t ROCMFORGE_CACHE_DIR=/tmp/emu-cache-$t
  for b in $TESTS; do
    local exe=.gpu/tests/$b-test log=$OUT/$t.$b.log
    if [ ! -x "$exe" ]; then echo "$t $b MISSING" >> "$OUT/$t.sum"; continue; fi
    local left=$(( BUDGET - ($(date +%s) - start) ))
    if [ "$left" -lt 10 ]; then echo "$t $b NOT-RUN (budget spent)" >> "$OUT/$t.sum"; continue; fi
    [ "$left" -gt "$CAP" ] && left=$CAP
    local t0=$(date +%s)
    local extra=""
    # needs a GGUF subset (tools/make_smollm2_subset.py), unrelated to the emulation
    [ "$b" = gpu_quantized ] && [ -z "${ROCMFORGE_TEST_GGUF:-}" ] && extra="--skip smollm2_real_tensors"
    timeout -k 5 "$left" "$exe" --include-ignored --test-threads=1 $extra > "$log" 2>&1
    local rc=$? dt=$(( $(date +%s) - t0 ))
    local res; res=$(grep -E "^test result:" "$log" | tail -1 | sed -E 's/^test result: //; s/; [0-9]+ measured.*//')
    local st=PASS
    [ "$rc" = 0 ] || st=FAIL
    [ "$rc" = 124 ] || [ "$rc" = 137 ] && st="TIMEOUT(${left}s)"
    echo "$t $b $st ${dt}s ${res:-no result line}" >> "$OUT/$t.sum"
    grep -E "^test .* \.\.\. FAILED$" "$log" | sed -E "s/^test (.*) \.\.\. FAILED$/    failed: \1/" >> "$OUT/$t.sum"
    if [ "$st" != PASS ]; then
      # the first panic message of the binary, shortened
      grep -m1 -A2 "panicked at" "$log" | cut -c1-300 | sed 's/^/    /' >> "$OUT/$t.sum"
    fi
  done
}
# baseline: the check kernels natively (plain NVIDIA: shuffles and reductions per lane; mma has no
# AMD matrix cores to check there and says so)
( unset ROCMFORGE_EMULATE; timeout 60 .gpu/tests/gpu_emulate-test --include-ignored --test-threads=1 > "$OUT/native.gpu_emulate.log" 2>&1
  echo "native gpu_emulate rc=$? $(grep -E '^test result:' "$OUT/native.gpu_emulate.log" | tail -1)" > "$OUT/native.sum" ) &
for t in $TARGETS; do run_target "$t" & done
wait
cat "$OUT/native.sum" 2>/dev/null
echo "== emulation summary ($(( $(date +%s) - start ))s; logs in $OUT)"
for t in $TARGETS; do cat "$OUT/$t.sum" 2>/dev/null; done
pass=$(cat "$OUT"/*.sum 2>/dev/null | grep -c " PASS ")
total=$(cat "$OUT"/*.sum 2>/dev/null | grep -cE "^gfx")
echo "emulation: $pass of $total target x binary runs passed"
