# call G: the three tests call F ran without their inputs (the CLI binary, the model directory, the subset GGUF)
python3 -c "import tarfile; tarfile.open('.dev/s13/g.tar.xz').extractall()"
mkdir -p $OUT/g /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge; T=$R/.gpu/tests
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1 ROCMFORGE_BIN=$RF ROCMFORGE_MODEL_DIR=/tmp/m ROCMFORGE_TEST_GGUF=$R/.dev/s13/subset.gguf
# gpu_early compares the GPU with the CPU backend: a synthetic model of SmolLM2's shapes under the real file's name
$RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/smollm2-135m-instruct-q4_1.gguf > $OUT/g/synth.log 2>&1; echo "synth rc=$?"
timeout 100 $T/gpu_smoke-test --include-ignored --test-threads=1 > $OUT/g/smoke.log 2>&1; echo "gpu_smoke rc=$? $(grep 'test result' $OUT/g/smoke.log)"
timeout 150 $T/gpu_early-test --include-ignored --test-threads=1 > $OUT/g/early.log 2>&1; echo "gpu_early rc=$? $(grep 'test result' $OUT/g/early.log)"
timeout 150 $T/gpu_quantized-test --include-ignored --test-threads=1 smollm2_real_tensors > $OUT/g/quantized.log 2>&1; echo "gpu_quantized rc=$? $(grep 'test result' $OUT/g/quantized.log)"
grep -E "panicked" -A2 $OUT/g/*.log | head -8
cd $OUT && tar czf g.tgz g && rm -rf g
