python3 -c "import tarfile; tarfile.open('.gpu.tar.xz').extractall()"
mkdir -p $OUT/g
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
timeout 150 .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 decode > $OUT/g/gpu_attention.log 2>&1; echo rc=$?; grep -E "^test |test result|panicked" $OUT/g/gpu_attention.log | head
ROCMFORGE_BENCH_DECODE_ROWS=2,3 ROCMFORGE_BENCH_ATTN=decode timeout 100 .gpu/benches/attention > $OUT/g/attention_bench.txt 2>&1; echo rc=$?; grep -E "^decode|copy" $OUT/g/attention_bench.txt | cut -c1-220
