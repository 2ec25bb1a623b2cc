# call F: the real SmolLM2-135M Q4_1 (parts carried by the three calls before) on 6225d2c's binaries:
# against HF transformers and the CPU, the serving-while-compiling test, tg128
python3 -c "import tarfile; tarfile.open('.dev/s11f/e.tar.xz').extractall()"
cat /tmp/m/smol.part00 /tmp/m/smol.part01 /tmp/m/smol.part02 > /tmp/m/smollm2-135m-instruct-q4_1.gguf && rm -f /tmp/m/smol.part0*
sha256sum /tmp/m/smollm2-135m-instruct-q4_1.gguf | cut -c1-16
mkdir -p $OUT/f
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1 ROCMFORGE_BIN=$PWD/.gpu/bin/rocmforge ROCMFORGE_MODEL_DIR=/tmp/m
timeout 300 .gpu/tests/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu_smollm2 gpu_matches_hf_smollm2 > $OUT/f/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "^test |cosine|top-1|greedy|panicked|test result" $OUT/f/gpu_model.log | cut -c1-250 | head -16
timeout 200 .gpu/tests/gpu_early-test --include-ignored --test-threads=1 > $OUT/f/gpu_early.log 2>&1; echo "gpu_early rc=$? $(grep -E 'test result' $OUT/f/gpu_early.log)"; grep -E "panicked" $OUT/f/gpu_early.log | head -3
timeout 60 $PWD/.gpu/bin/rocmforge bench /tmp/m/smollm2-135m-instruct-q4_1.gguf --device cuda --no-early-serve -p 512 -n 128 -d 0,4096 -r 3 > $OUT/f/bench.txt 2>&1; echo "bench rc=$?"; grep -E "^\| " $OUT/f/bench.txt
