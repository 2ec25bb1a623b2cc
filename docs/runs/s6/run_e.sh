#!/usr/bin/env bash
# Session 6 call E: qgemm register tile, final tile set: tests + memcheck, the mlp bench new and old
# (944b3ab) in the same call, end to end short prompts (pp16..pp128) new vs old, BLAS threshold.
python3 -c "import tarfile; tarfile.open('.dev/e.tar.xz').extractall()"
mkdir -p $OUT/e /tmp/m
RF=$PWD/.gpu/bin/rocmforge; OLD=$PWD/.dev/oldrf
export RUST_BACKTRACE=1 ROCMFORGE_REQUIRE_GPU=1 ROCMFORGE_CACHE_DIR=/tmp/rc ROCMFORGE_BIN=$RF
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
($RF gguf synth --preset llama-3-8b --type q4_k_m --out /tmp/m/l8k.gguf > $OUT/e/synth.log 2>&1; $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf >> $OUT/e/synth.log 2>&1) &
SYN=$!
echo "== tests"
timeout 200 .gpu/tests/gpu_mlp-test --include-ignored --test-threads=1 qgemm linear > $OUT/e/gpu_mlp.log 2>&1; echo "gpu_mlp rc=$? $(grep -E '^test result' $OUT/e/gpu_mlp.log | cut -c1-90)"; grep -E "panicked|rel err" $OUT/e/gpu_mlp.log | cut -c1-300 | head -5
timeout 100 compute-sanitizer --tool memcheck .gpu/tests/gpu_mlp-test --include-ignored --test-threads=1 qgemm_every_tile 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -3
wait $SYN; echo "synth rc=$?"; ls -la /tmp/m
echo "== e2e short prompts (pp), ours new / new with fused qgemm below 256 rows / old"
for f in s l8k; do
  timeout 120 $RF bench /tmp/m/$f.gguf --device cuda -p 16,32,64,128,512 -n 0 -r 5 > $OUT/e/pp_new_$f.txt 2>&1; echo "new $f rc=$?"; grep -E "pp[0-9]" $OUT/e/pp_new_$f.txt
  ROCMFORGE_PREFILL_BLAS_MIN=256 timeout 120 $RF bench /tmp/m/$f.gguf --device cuda -p 16,32,64,128 -n 0 -r 5 > $OUT/e/pp_new256_$f.txt 2>&1; echo "new MIN=256 $f rc=$?"; grep -E "pp[0-9]" $OUT/e/pp_new256_$f.txt
  ROCMFORGE_CACHE_DIR=/tmp/rc_old timeout 120 $OLD bench /tmp/m/$f.gguf --device cuda -p 16,32,64,128,512 -n 0 -r 5 > $OUT/e/pp_old_$f.txt 2>&1; echo "old $f rc=$?"; grep -E "pp[0-9]" $OUT/e/pp_old_$f.txt
done
echo "== bench new"
timeout 200 .gpu/benches/mlp > $OUT/e/mlp_new.txt 2>&1; echo "bench rc=$?"; sed -n '/^W /,$p' $OUT/e/mlp_new.txt | head -34
echo "== bench old (944b3ab)"
ROCMFORGE_CACHE_DIR=/tmp/rc_old timeout 150 .dev/oldmlp > $OUT/e/mlp_old.txt 2>&1; echo "old bench rc=$?"
