python3 -c "import tarfile; tarfile.open('.dev/a.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/a /tmp/m
R=$PWD; RF=$R/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/a/synth.log 2>&1 &
SYN=$!
echo "== gpu_attention decode"
timeout 200 .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 decode > $OUT/a/gpu_attention.log 2>&1; echo rc=$?; grep -E "^test |test result|panicked|differs" $OUT/a/gpu_attention.log | cut -c1-250 | head -12
echo "== gpu_quantized gemv, PDL on"
ROCMFORGE_PDL=1 timeout 200 .gpu/tests/gpu_quantized-test --include-ignored --test-threads=1 gemv > $OUT/a/gpu_quantized_pdl.log 2>&1; echo rc=$?; grep -E "^test |test result|panicked" $OUT/a/gpu_quantized_pdl.log | cut -c1-250 | head -12
echo "== sanitizer (decode_small_cases)"
timeout 150 compute-sanitizer --tool memcheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 decode_small 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -5
timeout 150 compute-sanitizer --tool racecheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 decode_small 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -5
wait $SYN; echo "synth rc=$?"; ls -la /tmp/m
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
for pdl in 0 1; do
echo "== gpu_model PDL=$pdl"
ROCMFORGE_PDL=$pdl timeout 200 .gpu/tests/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/a/gpu_model_pdl$pdl.log 2>&1; echo "rc=$?"; grep -E "^test |cosine min|greedy|launches|panicked|test result" $OUT/a/gpu_model_pdl$pdl.log | cut -c1-200 | head -14
done
