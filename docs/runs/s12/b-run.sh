# call B: the fused append with Q rotated in shared memory by rope_group (final kernels): checks, the real SmolLM2
# against HF, tg128 fused on / off, then ours against llama.cpp 0c1e570 (built in this call) on the same files
python3 -c "import tarfile; tarfile.open('.dev/s12b/b.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
cat /tmp/m/smol.part00 /tmp/m/smol.part01 /tmp/m/smol.part02 > /tmp/m/smollm2-135m-instruct-q4_1.gguf && rm -f /tmp/m/smol.part0*
sha256sum /tmp/m/smollm2-135m-instruct-q4_1.gguf | cut -c1-16
mkdir -p $OUT/b; R=$PWD; RF=$R/.gpu/bin/rocmforge; T=$R/.gpu/tests
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
( bash .dev/s12b/f-build-llama-bench.sh .dev/llama.cpp-0c1e570-src.tar.gz /tmp/llama > $OUT/b/llama_build.log 2>&1; echo "build rc=$?" >> $OUT/b/llama_build.log ) &
BUILD=$!
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/b/synth.log 2>&1 &
SYN=$!
echo "== gpu_attention decode_append (full, small), decode (all), kv_append"
timeout 300 $T/gpu_attention-test --include-ignored --test-threads=1 --nocapture decode kv_append > $OUT/b/ga.log 2>&1; echo rc=$?; grep -E "^test |test result|FAIL|panicked" $OUT/b/ga.log | cut -c1-200 | head -12
grep -E "^decode_append" $OUT/b/ga.log | awk '{print $NF}' | sort | uniq -c | head -5
echo "== sanitizer (decode_append_small_cases)"
timeout 200 compute-sanitizer --tool memcheck $T/gpu_attention-test --include-ignored --test-threads=1 decode_append_small 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -4
timeout 200 compute-sanitizer --tool racecheck $T/gpu_attention-test --include-ignored --test-threads=1 decode_append_small 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -4
echo "== emulated AMD decode_append_small_cases, decode_small_cases"
for e in gfx942 gfx1100; do ROCMFORGE_EMULATE=$e timeout 200 $T/gpu_attention-test --include-ignored --test-threads=1 decode_append_small decode_small > $OUT/b/emu_$e.log 2>&1; echo "$e rc=$? $(grep -E 'test result' $OUT/b/emu_$e.log)"; grep -E "FAIL|panicked" $OUT/b/emu_$e.log | head -3; done
wait $SYN; echo "synth rc=$?"
echo "== gpu_model (synthetic; the real SmolLM2 against HF and the CPU), gpu_early"
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 200 $T/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/b/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "cosine min|panicked|test result" $OUT/b/gpu_model.log | cut -c1-200 | head -8
unset ROCMFORGE_TEST_SMOLLM2 ROCMFORGE_TEST_GEMMA
export ROCMFORGE_BIN=$RF ROCMFORGE_MODEL_DIR=/tmp/m
timeout 300 $T/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu_smollm2 gpu_matches_hf_smollm2 > $OUT/b/gpu_model_real.log 2>&1; echo "gpu_model real rc=$?"; grep -E "^test |cosine|top-1|greedy|panicked|test result" $OUT/b/gpu_model_real.log | cut -c1-250 | head -12
timeout 200 $T/gpu_early-test --include-ignored --test-threads=1 > $OUT/b/gpu_early.log 2>&1; echo "gpu_early rc=$? $(grep -E 'test result' $OUT/b/gpu_early.log)"
echo "== tg128 fused append on / off (real SmolLM2, synthetic Gemma 3 and 8B)"
for f in smollm2-135m-instruct-q4_1 g l8; do
  for v in on off on off; do
    ROCMFORGE_FUSE_APPEND=$v timeout 90 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 0 -n 128 -r 3 > $OUT/b/tg_${f}_$v.txt 2>&1
    echo "$f $v rc=$? $(grep tg128 $OUT/b/tg_${f}_$v.txt | awk -F'|' '{print $5}')"
  done
done
wait $BUILD; tail -1 $OUT/b/llama_build.log
LB=/tmp/llama/bin/llama-bench
echo "== ours then llama.cpp: pp512, tg128"
for f in s g l8; do
  timeout 150 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 512 -n 128 -r 3 > $OUT/b/ours_$f.txt 2>&1; echo "ours $f rc=$?"; grep -E "^\| " $OUT/b/ours_$f.txt | tail -2
  timeout 150 $LB -m /tmp/m/$f.gguf -fa 1 -p 512 -n 128 -r 3 > $OUT/b/llama_$f.txt 2>&1; echo "llama $f rc=$?"; grep -E "pp512|tg128" $OUT/b/llama_$f.txt | awk -F'|' '{print $(NF-2), $(NF-1)}'
done
cd $OUT && tar czf b.tgz b && rm -rf b
