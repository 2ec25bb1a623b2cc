# call G: q6_K and q3_K codes kept unsigned with the -32 / -4 in b (new, embedded) against the previous
# quant_w8.h (old, ROCMFORGE_TEMPLATE_DIR): every consumer of rf_w8 (gemv_q8, gemv's mma tile, qgemm) checked,
# the two formats benched, 8B Q4_K_M decode end to end
python3 -c "import tarfile; tarfile.open('.dev/g2.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/g /tmp/m
R=$PWD; RF=$R/.gpu/bin/rocmforge; OLD=$R/.dev/tv/w8old
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1 ROCMFORGE_BIN=$RF
( $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/g/synth.log 2>&1 &
SYN=$!
timeout 120 .gpu/tests/gpu_gemv_q8-test --include-ignored --test-threads=1 > $OUT/g/gpu_gemv_q8.log 2>&1; echo "gpu_gemv_q8 rc=$?"; grep -E "test result|panicked" $OUT/g/gpu_gemv_q8.log | head -3
timeout 150 .gpu/tests/gpu_quantized-test --include-ignored --test-threads=1 gemv dequant bad_shapes > $OUT/g/gpu_quantized.log 2>&1; echo "gpu_quantized rc=$?"; grep -E "test result|panicked" $OUT/g/gpu_quantized.log | head -3
timeout 200 .gpu/tests/gpu_mlp-test --include-ignored --test-threads=1 qgemm > $OUT/g/gpu_mlp.log 2>&1; echo "gpu_mlp qgemm rc=$?"; grep -E "^test |test result|panicked" $OUT/g/gpu_mlp.log | head -6
export ROCMFORGE_BENCH_GEMV_FLOAT=off ROCMFORGE_BENCH_GEMV_BATCHES=1,2,4
for v in new old; do
  D=""; [ $v = old ] && D=$OLD
  ROCMFORGE_TEMPLATE_DIR=$D timeout 60 .gpu/benches/gemv_q8 q6_K,q3_K > $OUT/g/bench_$v.txt 2>&1; echo "bench $v rc=$?"
done
unset ROCMFORGE_BENCH_GEMV_FLOAT ROCMFORGE_BENCH_GEMV_BATCHES
wait $SYN; echo "synth rc=$?"
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 150 .gpu/tests/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/g/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "cosine min|panicked|test result" $OUT/g/gpu_model.log | cut -c1-200 | head -6
for v in new old new2 old2; do
  case $v in old*) D=$OLD ;; *) D="" ;; esac
  ROCMFORGE_TEMPLATE_DIR=$D timeout 90 $RF bench /tmp/m/l8.gguf --device cuda --no-early-serve -p 0 -n 128 --parallel 1,4 -r 3 > $OUT/g/l8_$v.txt 2>&1
  echo "l8 $v rc=$? $(grep -E 'tg128' $OUT/g/l8_$v.txt | awk -F'|' '{print $4 $5}' | tr '\n' ' ')"
done
for v in new old; do echo "-- $v"; grep -E "copy of the same" $OUT/g/bench_$v.txt | cut -c1-100; sed -n '/^summary/,$p' $OUT/g/bench_$v.txt | tail -n +2 | cut -c1-150; done
