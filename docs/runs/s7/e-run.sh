python3 -c "import tarfile; tarfile.open('.gpu.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/e /tmp/m
R=$PWD; RF=$R/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc
($RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf > /dev/null 2>&1; $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf > /dev/null 2>&1) &
SYN=$!
echo "== tests"
timeout 200 .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 > $OUT/e/gpu_attention.log 2>&1; echo rc=$?; grep -E "^test |test result|FAIL|panicked" $OUT/e/gpu_attention.log | head -12
echo "== sanitizer"
timeout 150 compute-sanitizer --tool memcheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 prefill_native_path 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -5
timeout 150 compute-sanitizer --tool racecheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 prefill_native_path 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -5
echo "== attention bench"
ROCMFORGE_BENCH_ATTN=prefill,sweep,check timeout 200 .gpu/benches/attention > $OUT/e/attention_bench.txt 2>&1; echo rc=$?; grep -E "^prefill|fastest|check" $OUT/e/attention_bench.txt | cut -c1-200
wait $SYN; ls -la /tmp/m
echo "== end to end: new vs session-start kernel (ed0cb43 templates, old tiles)"
OLDT="hd128:128,32,4,2,0,0,0;hd64:128,64,8,1,1,0,0"
for f in s g; do
  timeout 100 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 512,2048 -n 0 -r 3 > $OUT/e/pp_new_$f.txt 2>&1; echo "new $f rc=$?"; grep -E "pp[0-9]" $OUT/e/pp_new_$f.txt | cut -d'|' -f4,5
  ROCMFORGE_TEMPLATE_DIR=$R/.gpu/extra/old/templates ROCMFORGE_ATTN_TILES="$OLDT" timeout 100 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 512,2048 -n 0 -r 3 > $OUT/e/pp_old_$f.txt 2>&1; echo "old $f rc=$?"; grep -E "pp[0-9]" $OUT/e/pp_old_$f.txt | cut -d'|' -f4,5
done
