# call E: final templates: prefill tests; Q.K^T fragments read a k step ahead (AP_QK_PIPE 1) and the
# spread copy (AP_KV1_SPREAD 1), by template dir: their tests, and the hd128 / hd256 rows against the final
# kernel, two rounds
python3 -c "import tarfile; tarfile.open('.dev/s17/e.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/e; R=$PWD; T=$R/.gpu/tests; B=$R/.gpu/benches/attention
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
ROCMFORGE_REQUIRE_GPU=1 timeout 120 $T/gpu_attention-test --include-ignored --test-threads 1 prefill > $OUT/e/gpu_attention.txt 2>&1; echo "final rc=$? $(grep 'test result' $OUT/e/gpu_attention.txt)"; grep -E "panicked|FAIL" $OUT/e/gpu_attention.txt | head -5
ROCMFORGE_TEMPLATE_DIR=$R/.dev/s17/v/qkpipe ROCMFORGE_REQUIRE_GPU=1 timeout 120 $T/gpu_attention-test --include-ignored --test-threads 1 prefill > $OUT/e/gpu_attention_qkpipe.txt 2>&1; echo "qkpipe rc=$? $(grep 'test result' $OUT/e/gpu_attention_qkpipe.txt)"
ROCMFORGE_TEMPLATE_DIR=$R/.dev/s17/v/spread ROCMFORGE_REQUIRE_GPU=1 timeout 60 $T/gpu_attention-test --include-ignored --test-threads 1 prefill_native_path > $OUT/e/gpu_attention_spread.txt 2>&1; echo "spread native rc=$? $(grep 'test result' $OUT/e/gpu_attention_spread.txt)"
export ROCMFORGE_BENCH_ATTN=prefill ROCMFORGE_BENCH_PREFILL_HD=128,256
for r in 1 2; do
  echo "round $r final"; timeout 60 $B 2>&1 | grep '^prefill mma_sync B=' | cut -c1-118
  echo "round $r qkpipe"; ROCMFORGE_TEMPLATE_DIR=$R/.dev/s17/v/qkpipe timeout 60 $B 2>&1 | grep '^prefill mma_sync B=' | cut -c1-118
  echo "round $r spread"; ROCMFORGE_TEMPLATE_DIR=$R/.dev/s17/v/spread ROCMFORGE_BENCH_PREFILL_HD=256 timeout 60 $B 2>&1 | grep '^prefill mma_sync B=' | cut -c1-118
done
