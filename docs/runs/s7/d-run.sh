python3 -c "import tarfile; tarfile.open('.gpu.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/d
R=$PWD
export ROCMFORGE_BENCH_ATTN_SWEEP="hd64:128,128,4,2,0,0,1;hd64:128,64,4,2,0,0,1;hd64:64,128,4,1,1,0,1;hd64:64,64,4,1,0,0,1;hd128:128,64,8,1,0,0,1"
echo "== new defaults, full bench"
timeout 240 .gpu/benches/attention > $OUT/d/attention_bench.txt 2>&1; echo rc=$?; grep -vE "^kv_append|split" $OUT/d/attention_bench.txt | cut -c1-200 | head -60
echo "== late copy forced, sweep only"
ROCMFORGE_TEMPLATE_DIR=$R/.gpu/extra/vlate/templates ROCMFORGE_BENCH_ATTN=sweep timeout 100 .gpu/benches/attention > $OUT/d/late_sweep.txt 2>&1; echo rc=$?; grep -v split $OUT/d/late_sweep.txt | cut -c1-120
echo "== tests"
timeout 200 .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 > $OUT/d/gpu_attention.log 2>&1; echo rc=$?; grep -E "^test |test result|FAIL|panicked" $OUT/d/gpu_attention.log | head -30
echo "== sanitizer"
timeout 150 compute-sanitizer --tool memcheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 prefill_native_path 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -5
timeout 150 compute-sanitizer --tool racecheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 prefill_native_path 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -5
