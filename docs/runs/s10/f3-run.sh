python3 -c "import tarfile; tarfile.open('.dev/f3/f.tar.xz').extractall()"
cat /tmp/m/smol.part00 /tmp/m/smol.part01 /tmp/m/smol.part02 > /tmp/m/smollm2-135m-instruct-q4_1.gguf && rm -f /tmp/m/smol.part0*
sha256sum /tmp/m/smollm2-135m-instruct-q4_1.gguf | cut -c1-16
mkdir -p $OUT/f3
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1 ROCMFORGE_BIN=$PWD/.gpu/bin/rocmforge ROCMFORGE_MODEL_DIR=/tmp/m
timeout 300 .gpu/tests/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu_smollm2 gpu_matches_hf_smollm2 > $OUT/f3/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "^test |cosine|top-1|greedy|panicked|test result" $OUT/f3/gpu_model.log | cut -c1-250 | head -16
timeout 40 $PWD/.gpu/bin/rocmforge bench /tmp/m/smollm2-135m-instruct-q4_1.gguf --device cuda --no-early-serve -p 0 -n 128 -r 3 > $OUT/f3/tg.txt 2>&1; echo "tg rc=$? $(grep tg128 $OUT/f3/tg.txt)"
