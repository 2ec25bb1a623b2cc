# call E (final code): checks (gpu_gemv_q8, sanitizer, emulated AMD, gpu_model, gpu_graph) while llama.cpp 0c1e570's
# llama-bench builds; then tg128 of the 8B shapes: HEAD / the inline-PTX-load template (.dev/s14/tasm) / the fusion off;
# then ours against llama.cpp (pp512, tg128) on the 8B shapes, nothing else running
python3 -c "import tarfile; tarfile.open('.dev/s14/e.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/e /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge; T=$R/.gpu/tests; TA=$R/.dev/s14/tasm
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
( bash docs/runs/s14/e-build-llama-bench.sh .dev/s14/llama.cpp-0c1e570-src.tar.gz /tmp/llama > $OUT/e/llama_build.log 2>&1; echo "build rc=$?" >> $OUT/e/llama_build.log ) &
BUILD=$!
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf && $RF gguf synth --preset llama-3-8b --type q4_0 --out /tmp/m/l8q40.gguf ) > $OUT/e/synth.log 2>&1 &
SYN=$!
echo "== gpu_gemv_q8"
timeout 300 $T/gpu_gemv_q8-test --include-ignored --test-threads=1 > $OUT/e/gq8.log 2>&1; echo "rc=$? $(grep 'test result' $OUT/e/gq8.log)"; grep -E "panicked" -A3 $OUT/e/gq8.log | head -8
echo "== sanitizer (fused, q4_K q6_K q4_0)"
export ROCMFORGE_TEST_FORMATS=q4_K,q6_K,q4_0
timeout 200 compute-sanitizer --tool memcheck $T/gpu_gemv_q8-test --include-ignored --test-threads=1 fused_forms_match 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -4
timeout 200 compute-sanitizer --tool racecheck $T/gpu_gemv_q8-test --include-ignored --test-threads=1 fused_forms_match 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -4
echo "== emulated AMD"
export ROCMFORGE_TEST_FORMATS=q4_K,q2_K,q8_0,q6_K
for e in gfx942 gfx1100; do ROCMFORGE_EMULATE=$e timeout 200 $T/gpu_gemv_q8-test --include-ignored --test-threads=1 fused_forms > $OUT/e/emu_$e.log 2>&1; echo "$e rc=$? $(grep -E 'test result' $OUT/e/emu_$e.log)"; grep -E "panicked" -A3 $OUT/e/emu_$e.log | head -5; done
unset ROCMFORGE_TEST_FORMATS
wait $SYN; echo "synth rc=$?"
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 250 $T/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/e/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "cosine min|panicked|test result" $OUT/e/gpu_model.log | cut -c1-250 | head -8
timeout 100 $T/gpu_graph-test --include-ignored --test-threads=1 > $OUT/e/graph.log 2>&1; echo "gpu_graph rc=$? $(grep 'test result' $OUT/e/graph.log)"
unset ROCMFORGE_TEST_SMOLLM2 ROCMFORGE_TEST_GEMMA
wait $BUILD; tail -1 $OUT/e/llama_build.log
echo "== tg128: on (HEAD) / asm (inline-PTX loads) / off"
for f in l8 l8q40; do
  for v in on asm off on off; do
    if [ $v = off ]; then E="ROCMFORGE_FUSE_NORM=off"; elif [ $v = asm ]; then E="ROCMFORGE_TEMPLATE_DIR=$TA"; else E="X=1"; fi
    env $E timeout 120 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 0 -n 128 -r 3 > $OUT/e/tg_${f}_$v.txt 2>&1
    echo "$f $v rc=$? $(grep tg128 $OUT/e/tg_${f}_$v.txt | awk -F'|' '{print $5}')"
  done
done
LB=/tmp/llama/bin/llama-bench
echo "== ours then llama.cpp: pp512, tg128"
for f in l8 l8q40; do
  timeout 150 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 512 -n 128 -r 3 > $OUT/e/ours_$f.txt 2>&1; echo "ours $f rc=$?"; grep -E "^\| " $OUT/e/ours_$f.txt | tail -2
  timeout 150 $LB -m /tmp/m/$f.gguf -fa 1 -p 512 -n 128 -r 3 > $OUT/e/llama_$f.txt 2>&1; echo "llama $f rc=$?"; grep -E "pp512|tg128" $OUT/e/llama_$f.txt | awk -F'|' '{print $(NF-2), $(NF-1)}'
done
cd $OUT && tar czf e.tgz e && rm -rf e
