# call E: the gemv_q8 bench at batch 1 with the size-matched copy ceiling; gpu_quantized on the final code
python3 -c "import tarfile; tarfile.open('.dev/e.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/e
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
ROCMFORGE_BENCH_GEMV_FLOAT=off ROCMFORGE_BENCH_GEMV_BATCHES=1 timeout 150 .gpu/benches/gemv_q8 > $OUT/e/bench.txt 2>&1; echo "bench rc=$?"
timeout 200 .gpu/tests/gpu_quantized-test --include-ignored --test-threads=1 > $OUT/e/gpu_quantized.log 2>&1; echo "gpu_quantized rc=$?"; grep -E "test result|panicked" $OUT/e/gpu_quantized.log | head -3
grep -E "copy of the same|^device" $OUT/e/bench.txt | cut -c1-130
sed -n '/^summary/,$p' $OUT/e/bench.txt | tail -n +2 | awk '{print $1, $2, $4, $6}' | tr '\n' ';'
