python3 -c "import tarfile; tarfile.open('.gpu.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/b /tmp/m
R=$PWD; RF=$R/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
($RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf > /dev/null 2>&1; $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf > /dev/null 2>&1) &
SYN=$!
echo "== tests"
timeout 240 .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 > $OUT/b/gpu_attention.log 2>&1; echo rc=$?; grep -E "^test |test result|FAIL|panicked|fail" $OUT/b/gpu_attention.log | cut -c1-250 | head -20
grep -E "^decode" $OUT/b/gpu_attention.log | awk '{print $2, $NF}' | sort | awk '{k=$1; if(!(k in mx) || $2>mx[k]) mx[k]=$2} END {for(k in mx) print "max rel err", k, mx[k]}'
echo "== sanitizer (decode_small_cases)"
timeout 120 compute-sanitizer --tool memcheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 decode_small 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -5
timeout 120 compute-sanitizer --tool racecheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 decode_small 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -5
echo "== emulated AMD (decode_small_cases)"
for e in gfx942 gfx1100; do ROCMFORGE_EMULATE=$e timeout 120 .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 decode_small > $OUT/b/emu_$e.log 2>&1; echo "$e rc=$?"; grep -E "test result|panicked|fail" $OUT/b/emu_$e.log | head -4; grep -c "^decode native" $OUT/b/emu_$e.log; done
echo "== decode bench"
ROCMFORGE_BENCH_ATTN=decode timeout 150 .gpu/benches/attention > $OUT/b/attention_bench.txt 2>&1; echo rc=$?; cat $OUT/b/attention_bench.txt | cut -c1-220
wait $SYN; ls -la /tmp/m
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf ROCMFORGE_MODEL_DIR=/tmp/m
echo "== gpu_model (synthetic)"
timeout 200 .gpu/tests/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu_smollm2 gpu_equals_cpu_gemma3 gpu_batched > $OUT/b/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "^test |cosine min|greedy|panicked" $OUT/b/gpu_model.log | cut -c1-250 | head -12
echo "== end to end tg128: matrix-core decode vs SIMT decode"
for f in s g; do
  timeout 100 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 0 -n 128 --parallel 1,8 -r 3 > $OUT/b/tg_mc_$f.txt 2>&1; echo "mc $f rc=$?"; grep -E "tg[0-9]" $OUT/b/tg_mc_$f.txt | cut -c1-160
  ROCMFORGE_DECODE=simt timeout 100 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 0 -n 128 --parallel 1,8 -r 3 > $OUT/b/tg_simt_$f.txt 2>&1; echo "simt $f rc=$?"; grep -E "tg[0-9]" $OUT/b/tg_simt_$f.txt | cut -c1-160
done
