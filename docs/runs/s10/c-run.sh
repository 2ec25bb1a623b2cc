# call C: gemv_q8 with an L2 prefetch of the next iteration's units (variant c: distance 1, d: distance 2,
# ROCMFORGE_TEMPLATE_DIR) against the embedded kernel; gpu_model on the committed code (a6c185c)
python3 -c "import tarfile; tarfile.open('.dev/c.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/c /tmp/m
R=$PWD; RF=$R/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1 ROCMFORGE_BIN=$RF
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/c/synth.log 2>&1 &
SYN=$!
export ROCMFORGE_BENCH_GEMV_FLOAT=off ROCMFORGE_BENCH_GEMV_EVERY=1 ROCMFORGE_BENCH_GEMV_BATCHES=1,2,4
for v in base c d; do
  D=""; [ $v != base ] && D=$R/.dev/tv/$v
  ROCMFORGE_TEMPLATE_DIR=$D timeout 120 .gpu/benches/gemv_q8 > $OUT/c/bench_$v.txt 2>&1; echo "bench $v rc=$?"
done
unset ROCMFORGE_BENCH_GEMV_FLOAT ROCMFORGE_BENCH_GEMV_EVERY ROCMFORGE_BENCH_GEMV_BATCHES
wait $SYN; echo "synth rc=$?"
for v in base c d base2 c2 d2; do
  D=""; case $v in base*) ;; *) D=$R/.dev/tv/${v:0:1} ;; esac
  ROCMFORGE_TEMPLATE_DIR=$D timeout 90 $RF bench /tmp/m/l8.gguf --device cuda --no-early-serve -p 0 -n 128 --parallel 1,4 -r 3 > $OUT/c/l8_$v.txt 2>&1
  echo "l8 $v rc=$? $(grep -E 'tg128' $OUT/c/l8_$v.txt | awk -F'|' '{print $4 $5}' | tr '\n' ' ')"
done
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 200 .gpu/tests/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/c/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "cosine min|panicked|test result" $OUT/c/gpu_model.log | cut -c1-200 | head -8
for v in c d; do
  ROCMFORGE_TEMPLATE_DIR=$R/.dev/tv/$v timeout 100 .gpu/tests/gpu_gemv_q8-test --include-ignored --test-threads=1 every_format > $OUT/c/test_$v.log 2>&1; echo "gemv_q8 test $v rc=$?"; grep -E "test result|panicked" $OUT/c/test_$v.log | head -2
done
echo "== summaries (b1 and ratios)"
for v in base c d; do echo "-- $v"; sed -n '/^summary/,$p' $OUT/c/bench_$v.txt | tail -n +2 | awk '{print $1, $2, $4, $6}' | tr '\n' ';'; echo; done
