python3 -c "import tarfile; tarfile.open('.gpu.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/e /tmp/m
cp .dev/smol.part02 /tmp/m/ && cat /tmp/m/smol.part00 /tmp/m/smol.part01 /tmp/m/smol.part02 > /tmp/m/smollm2-135m-instruct-q4_1.gguf && rm -f /tmp/m/smol.part0*
sha256sum /tmp/m/smollm2-135m-instruct-q4_1.gguf | cut -c1-16
R=$PWD; RF=$R/.gpu/bin/rocmforge; SM=/tmp/m/smollm2-135m-instruct-q4_1.gguf
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1 ROCMFORGE_BIN=$RF ROCMFORGE_MODEL_DIR=/tmp/m
$RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf > /dev/null 2>&1 &
SYN=$!
echo "== tests"
timeout 240 .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 > $OUT/e/gpu_attention.log 2>&1; echo rc=$?; grep -E "^test |test result|panicked" $OUT/e/gpu_attention.log | cut -c1-250 | head -12
echo "== sanitizer (decode_small_cases)"
timeout 120 compute-sanitizer --tool memcheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 decode_small 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -5
timeout 120 compute-sanitizer --tool racecheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 decode_small 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -5
echo "== emulated AMD (decode_small_cases)"
for e in gfx942 gfx1100; do ROCMFORGE_EMULATE=$e timeout 120 .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 --nocapture decode_small > $OUT/e/emu_$e.log 2>&1; echo "$e rc=$?"; grep -E "test result|panicked" $OUT/e/emu_$e.log | head -3; grep -c "^decode native" $OUT/e/emu_$e.log; done
echo "== decode bench"
ROCMFORGE_BENCH_ATTN=decode timeout 150 .gpu/benches/attention > $OUT/e/attention_bench.txt 2>&1; echo rc=$?; grep -E "^decode|copy" $OUT/e/attention_bench.txt | cut -c1-230
wait $SYN; export ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
echo "== gpu_model: real SmolLM2 vs HF transformers and the CPU; synthetic Gemma vs the CPU"
timeout 240 .gpu/tests/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu_smollm2 gpu_matches_hf_smollm2 gpu_equals_cpu_gemma3 gpu_batched > $OUT/e/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "^test |cosine min|top-1|greedy|panicked|test result" $OUT/e/gpu_model.log | cut -c1-250 | head -14
echo "== end to end tg128: matrix-core decode vs SIMT decode"
for f in $SM /tmp/m/g.gguf; do
  timeout 100 $RF bench $f --device cuda --no-early-serve -p 0 -n 128 --parallel 1,8 -r 3 > $OUT/e/tg_mc_$(basename $f).txt 2>&1; echo "mc $f rc=$?"; grep -E "tg[0-9]" $OUT/e/tg_mc_$(basename $f).txt | cut -c1-160
  ROCMFORGE_DECODE=simt timeout 100 $RF bench $f --device cuda --no-early-serve -p 0 -n 128 --parallel 1,8 -r 3 > $OUT/e/tg_simt_$(basename $f).txt 2>&1; echo "simt $f rc=$?"; grep -E "tg[0-9]" $OUT/e/tg_simt_$(basename $f).txt | cut -c1-160
done
