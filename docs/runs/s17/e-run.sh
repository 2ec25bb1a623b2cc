# call E: final templates (hd256 one K/V stage, call A's copy): prefill tests; the spread copy
# (AP_KV1_SPREAD 1 by template dir) against it on the hd256 row, three rounds, and its native-path test
python3 -c "import tarfile; tarfile.open('.dev/s17/e.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/e; R=$PWD; T=$R/.gpu/tests; B=$R/.gpu/benches/attention
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
ROCMFORGE_REQUIRE_GPU=1 timeout 200 $T/gpu_attention-test --include-ignored --test-threads 1 prefill > $OUT/e/gpu_attention.txt 2>&1; echo "gpu_attention rc=$? $(grep 'test result' $OUT/e/gpu_attention.txt)"; grep -E "panicked|FAIL" $OUT/e/gpu_attention.txt | head -5
ROCMFORGE_TEMPLATE_DIR=$R/.dev/s17/v/spread ROCMFORGE_REQUIRE_GPU=1 timeout 100 $T/gpu_attention-test --include-ignored --test-threads 1 prefill_native_path > $OUT/e/gpu_attention_spread.txt 2>&1; echo "spread native rc=$? $(grep 'test result' $OUT/e/gpu_attention_spread.txt)"
export ROCMFORGE_BENCH_ATTN=prefill ROCMFORGE_BENCH_PREFILL_HD=256
for r in 1 2 3; do
  echo "round $r final / spread"
  timeout 60 $B 2>&1 | grep '^prefill mma_sync B=' | cut -c1-118
  ROCMFORGE_TEMPLATE_DIR=$R/.dev/s17/v/spread timeout 60 $B 2>&1 | grep '^prefill mma_sync B=' | cut -c1-118
done
