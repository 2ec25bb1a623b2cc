# call E: the GPU tests around this session's changes, on 6225d2c's binaries (the commits after it change
# layout and docs only): gpu_attention (all), gpu_graph, gpu_model (synthetic SmolLM2 / Gemma), gpu_early
python3 -c "import tarfile; tarfile.open('.dev/s11/e.tar.xz').extractall()"
mkdir -p $OUT/e /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1 ROCMFORGE_REQUIRE_GPU=1 ROCMFORGE_BIN=$RF
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf ) > $OUT/e/synth.log 2>&1 &
SYN=$!
for t in gpu_attention gpu_graph gpu_early gpu_smoke; do
  timeout 240 .gpu/tests/$t-test --include-ignored --test-threads=1 > $OUT/e/$t.log 2>&1; echo "$t rc=$? $(grep -E 'test result' $OUT/e/$t.log)"; grep -E "panicked|FAILED" $OUT/e/$t.log | head -3
done
wait $SYN; echo "synth rc=$?"
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 200 .gpu/tests/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/e/gpu_model.log 2>&1; echo "gpu_model rc=$? $(grep -E 'test result' $OUT/e/gpu_model.log)"; grep -E "cosine min|panicked|^test " $OUT/e/gpu_model.log | cut -c1-200 | head -12
cd $OUT && tar czf e.tgz e && rm -rf e
