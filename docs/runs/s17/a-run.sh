# call A: the prefill loop with one K and one V buffer (stages 1, RF_ATTN_KV1): tests (every pipelined
# configuration incl. the new ones against f64), sanitizers on the new loop at hd64/128/256, the sweep
python3 -c "import tarfile; tarfile.open('.dev/s17/a.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/a; T=.gpu/tests; export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1 ROCMFORGE_REQUIRE_GPU=1
timeout 240 $T/gpu_attention-test --include-ignored --test-threads 1 prefill > $OUT/a/gpu_attention.txt 2>&1; echo "gpu_attention rc=$? $(grep 'test result' $OUT/a/gpu_attention.txt)"; grep -E "panicked|FAIL|kv1|s1" $OUT/a/gpu_attention.txt | head -30 | cut -c1-200
KV1='hd256:64,64,4,1,0,0,1,1;hd128:128,64,4,2,0,0,1,1;hd64:128,64,4,2,0,0,1,1'
for tool in memcheck racecheck; do
  ROCMFORGE_ATTN_TILES=$KV1 timeout 150 compute-sanitizer --tool $tool $T/gpu_attention-test --include-ignored --test-threads 1 prefill_native_path > $OUT/a/san_$tool.txt 2>&1; echo "$tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|test result' $OUT/a/san_$tool.txt | tr '\n' ' ')"
done
ROCMFORGE_BENCH_ATTN=prefill,sweep,check timeout 280 .gpu/benches/attention > $OUT/a/attention_bench.txt 2>&1; echo "bench rc=$?"; grep -E "^prefill|check|sweep|hd256|kv1" $OUT/a/attention_bench.txt | cut -c1-190
