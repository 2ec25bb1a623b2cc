python3 -c "import tarfile; tarfile.open('.dev/f/rf.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/f /tmp/m
cat /tmp/m/smol.part00 /tmp/m/smol.part01 /tmp/m/smol.part02 > /tmp/m/smollm2-135m-instruct-q4_1.gguf && rm -f /tmp/m/smol.part0*
SM=/tmp/m/smollm2-135m-instruct-q4_1.gguf; sha256sum $SM | cut -c1-16
R=$PWD; RF=$R/.gpu/bin/rocmforge; OLD=$R/.gpu/extra/rocmforge-old
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1 ROCMFORGE_BIN=$RF ROCMFORGE_MODEL_DIR=/tmp/m
( bash .dev/f/build.sh .dev/f/llama.cpp-0c1e570-src.tar.gz /tmp/llama > $OUT/f/llama_build.log 2>&1; echo "build rc=$?" >> $OUT/f/llama_build.log ) &
BUILD=$!
( [ -f /tmp/m/l8.gguf ] || ( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) ) > $OUT/f/synth.log 2>&1
export ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
echo "== gpu_model: real SmolLM2 vs HF transformers and the CPU; synthetic Gemma vs the CPU (during the llama.cpp build)"
timeout 240 .gpu/tests/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu_smollm2 gpu_matches_hf_smollm2 gpu_equals_cpu_gemma3 gpu_q8_decode > $OUT/f/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "^test |cosine min|top-1|greedy|panicked|test result" $OUT/f/gpu_model.log | cut -c1-250 | head -16
wait $BUILD; tail -2 $OUT/f/llama_build.log
LB=/tmp/llama/bin/llama-bench
echo "== tg128 after the build: ours (new = this commit, old = d213589), llama.cpp"
for f in $SM /tmp/m/s.gguf /tmp/m/g.gguf /tmp/m/l8.gguf; do
  n=$(basename $f .gguf)
  for cfg in new old; do
    B=$RF; [ $cfg = old ] && B=$OLD
    timeout 120 $B bench $f --device cuda --no-early-serve -p 0 -n 128 --parallel 1 -r 3 > $OUT/f/${n}_$cfg.txt 2>&1
    echo "$n $cfg rc=$? $(grep -E 'tg128' $OUT/f/${n}_$cfg.txt | cut -c1-150)"
  done
done
timeout 60 $LB -m $SM -fa 1 -p 0 -n 128 -r 3 > $OUT/f/llama_smol_1.txt 2>&1; echo "llama rc=$?"; grep -E "tg128" $OUT/f/llama_smol_1.txt
timeout 60 $RF bench $SM --device cuda -p 0 -n 128 -r 3 > $OUT/f/smol_new_2.txt 2>&1; echo "ours rc=$? $(grep tg128 $OUT/f/smol_new_2.txt | cut -c1-150)"
timeout 60 $LB -m $SM -fa 1 -p 0 -n 128 -r 3 > $OUT/f/llama_smol_2.txt 2>&1; echo "llama rc=$?"; grep -E "tg128" $OUT/f/llama_smol_2.txt
timeout 60 $OLD bench $SM --device cuda -p 0 -n 128 -r 3 > $OUT/f/smol_old_2.txt 2>&1; echo "old rc=$? $(grep tg128 $OUT/f/smol_old_2.txt | cut -c1-150)"
echo "== decode rows with the new kernel rule"
ROCMFORGE_BENCH_ATTN=decode ROCMFORGE_BENCH_DECODE_SHAPES="1:128:4:1:256,1:4096:4:1:256,1:256:32:8:128,1:1024:32:8:128,1:4096:32:8:128,1:256:9:3:64" timeout 100 .gpu/benches/attention > $OUT/f/rule.txt 2>&1; echo rc=$?; grep -E "^decode" $OUT/f/rule.txt | cut -c1-230
