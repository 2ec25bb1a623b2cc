python3 -c "import tarfile; tarfile.open('.gpu.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/g
echo "== tests"
timeout 200 .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 > $OUT/g/gpu_attention.log 2>&1; echo rc=$?; grep -E "^test |test result|FAIL|panicked" $OUT/g/gpu_attention.log | head -12
echo "== sanitizer"
timeout 150 compute-sanitizer --tool memcheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 prefill_native_path 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -5
timeout 150 compute-sanitizer --tool racecheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 prefill_native_path 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -5
echo "== bench"
ROCMFORGE_BENCH_ATTN=prefill,check timeout 150 .gpu/benches/attention > $OUT/g/attention_bench.txt 2>&1; echo rc=$?; grep -E "^prefill|check" $OUT/g/attention_bench.txt | cut -c1-200
