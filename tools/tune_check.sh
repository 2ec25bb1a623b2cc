#!/usr/bin/env bash
# Issue 11 device checks (tuner, warm-up report, serving while compiling), from the repo root on the
# GPU machine, about 3-4 minutes:
#  (i)   rocmforge tune --model SmolLM2 into a fresh cache/tuning directory, timed
#  (ii)  the same again: must sweep 0 shapes and compile 0 kernels (checked)
#  (iii) rocmforge bench SmolLM2 untuned (ROCMFORGE_TUNE=off) vs tuned, with the warm-up report (-v)
#  (iv)  tools/ttft.sh: time to first token from an empty kernel cache, serving while compiling vs not
#  (v)   the GPU test of serving while compiling (tests/gpu_early.rs), if the bundle has it
#  (vi)  a Llama-3-8B-shaped Q4_K_M model: tune --model, bench -p 16 untuned vs tuned (TUNE_CHECK_8B=0 skips)
# env: BIN (default .gpu/bin/rocmforge, else target/release/rocmforge), REPS (ttft repetitions, 3)
set -uo pipefail
BIN=${BIN:-$( [ -x .gpu/bin/rocmforge ] && echo .gpu/bin/rocmforge || echo target/release/rocmforge )}
SMOL=.model/smollm2-135m-instruct-q4_1.gguf
GEMMA=.model/gemma-3-270m-q4_k_m.gguf
export ROCMFORGE_CACHE_DIR=${TUNE_CHECK_CACHE:-$(mktemp -d /tmp/tunecheck.XXXX)}
echo "binary $BIN; kernel cache and tuning database in $ROCMFORGE_CACHE_DIR (fresh)"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || true
fail=0

echo; echo "== (i) tune, first run (sweeps and compiles)"
t0=$(date +%s%N)
$BIN tune --model $SMOL 2>&1 | tail -25
echo "(i) took $(( ($(date +%s%N) - t0) / 1000000 )) ms"

echo; echo "== (ii) tune again: expect 'swept 0 of N shapes ... 0 kernels compiled, 0 from the disk cache'"
t0=$(date +%s%N)
out=$($BIN tune --model $SMOL 2>&1); echo "$out" | tail -6
echo "(ii) took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
if echo "$out" | grep -Eq "^swept 0 of [0-9]+ shapes .*: 0 kernels compiled, 0 from the disk cache"; then
  echo "(ii) OK: nothing tuned, nothing compiled"
else
  echo "(ii) FAILED: the second tune run did work"; fail=1
fi

echo; echo "== (iii) bench SmolLM2: untuned (ROCMFORGE_TUNE=off) vs tuned"
ROCMFORGE_TUNE=off $BIN bench $SMOL -p 512 -n 128 -r 3 -v 2>/dev/null || fail=1
$BIN bench $SMOL -p 512 -n 128 -r 3 -v 2>/dev/null || fail=1
echo "-- bench --json load report (tuned):"
$BIN bench $SMOL -p 64 -n 16 -r 1 --json 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print(json.dumps({k: d[k] for k in ('load_ms','load','deferred_wait_ms')}, indent=1))" || fail=1

echo; echo "== (iv) time to first token from an empty kernel cache (ms)"
REPS=${REPS:-3} BIN=$BIN bash tools/ttft.sh $SMOL $( [ -f "$GEMMA" ] && echo "$GEMMA" ) || fail=1

echo; echo "== (iv b) run -v from an empty cache (the warm-up report, serving early)"
ROCMFORGE_CACHE_DIR=$(mktemp -d /tmp/tunecheck2.XXXX) $BIN run $SMOL -p "The capital of France is" -n 16 --temp 0 -v 2>&1 | grep -E "kernels:|first token|waiting|eval time" || fail=1

if [ -x .gpu/tests/gpu_early-test ]; then
  echo; echo "== (v) tests/gpu_early.rs"
  ROCMFORGE_REQUIRE_GPU=1 .gpu/tests/gpu_early-test --include-ignored --test-threads=1 --nocapture 2>&1 | tail -8 || fail=1
fi
if [ "${TUNE_CHECK_8B:-1}" = 1 ]; then
  # a Llama-3-8B-shaped Q4_K_M model (random weights, 4.6 GiB in /tmp) in the default configuration: the
  # qgemm family times dequantize + BLAS against the tiles per row bucket; a 16-token prompt shows it
  echo; echo "== (vi) Llama-3-8B-shaped Q4_K_M: tune --model, then bench -p 16 untuned vs tuned"
  L8=${L8:-/tmp/tune-check-l8.gguf}
  [ -f "$L8" ] || $BIN gguf synth --preset llama-3-8b --type q4_k_m --out "$L8" 2>&1 | tail -1
  t0=$(date +%s)
  $BIN tune --model "$L8" 2>&1 | sed -n '/^qgemm/,$p' | head -12 || fail=1
  echo "(vi) tune took $(( $(date +%s) - t0 )) s"
  ROCMFORGE_TUNE=off $BIN bench "$L8" -p 16 -n 32 -r 3 2>/dev/null | grep -E "pp16|tg32" | sed 's/^/untuned /' || fail=1
  $BIN bench "$L8" -p 16 -n 32 -r 3 2>/dev/null | grep -E "pp16|tg32" | sed 's/^/tuned   /' || fail=1
fi
echo; [ $fail = 0 ] && echo "tune_check: all ran" || echo "tune_check: SOMETHING FAILED (see above)"
