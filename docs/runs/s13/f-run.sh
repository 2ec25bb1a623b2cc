# call F (final code): the GPU tests, the real SmolLM2 against HF and the CPU, then ours against llama.cpp 0c1e570
# (built in the call) on the same files: pp512, tg128
python3 -c "import tarfile; tarfile.open('.dev/s13/f.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
cat /tmp/m/smol.part00 /tmp/m/smol.part01 /tmp/m/smol.part02 > /tmp/m/smollm2-135m-instruct-q4_1.gguf && rm -f /tmp/m/smol.part0*
sha256sum /tmp/m/smollm2-135m-instruct-q4_1.gguf | cut -c1-16
mkdir -p $OUT/f; R=$PWD; RF=$R/.gpu/bin/rocmforge; T=$R/.gpu/tests
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
( bash .dev/s13/f-build-llama-bench.sh .dev/llama.cpp-0c1e570-src.tar.gz /tmp/llama > $OUT/f/llama_build.log 2>&1; echo "build rc=$?" >> $OUT/f/llama_build.log ) &
BUILD=$!
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/f/synth.log 2>&1 &
SYN=$!
for t in glue attention graph early smoke sampling; do
  timeout 240 $T/gpu_$t-test --include-ignored --test-threads=1 > $OUT/f/$t.log 2>&1; echo "gpu_$t rc=$? $(grep 'test result' $OUT/f/$t.log)"; grep -E "panicked" $OUT/f/$t.log | cut -c1-200 | head -3
done
wait $SYN; echo "synth rc=$?"
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 200 $T/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/f/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "cosine min|panicked|test result" $OUT/f/gpu_model.log | cut -c1-220 | head -8
unset ROCMFORGE_TEST_SMOLLM2 ROCMFORGE_TEST_GEMMA
export ROCMFORGE_BIN=$RF ROCMFORGE_MODEL_DIR=/tmp/m
timeout 200 $T/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu_smollm2 gpu_matches_hf_smollm2 > $OUT/f/gpu_model_real.log 2>&1; echo "gpu_model real rc=$?"; grep -E "cosine min|top-1|panicked|test result" $OUT/f/gpu_model_real.log | cut -c1-250 | head -6
for t in quantized emulate; do
  timeout 150 $T/gpu_$t-test --include-ignored --test-threads=1 > $OUT/f/$t.log 2>&1; echo "gpu_$t rc=$? $(grep 'test result' $OUT/f/$t.log)"; grep -E "panicked" $OUT/f/$t.log | cut -c1-200 | head -3
done
wait $BUILD; tail -1 $OUT/f/llama_build.log
LB=/tmp/llama/bin/llama-bench
echo "== ours then llama.cpp: pp512, tg128"
for f in smollm2-135m-instruct-q4_1 g l8; do
  timeout 150 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 512 -n 128 -r 3 > $OUT/f/ours_$f.txt 2>&1; echo "ours $f rc=$?"; grep -E "^\| " $OUT/f/ours_$f.txt | tail -2
  timeout 150 $LB -m /tmp/m/$f.gguf -fa 1 -p 512 -n 128 -r 3 > $OUT/f/llama_$f.txt 2>&1; echo "llama $f rc=$?"; grep -E "pp512|tg128" $OUT/f/llama_$f.txt | awk -F'|' '{print $(NF-2), $(NF-1)}'
done
cd $OUT && tar czf f.tgz f && rm -rf f
