# call D: the fused forms with the plain main loop (batch at run time): checks; tg128 of the 8B shapes, the
# norm's 1/rms summed after the main loop (HEAD) / before it (.dev/s14/t1 template) / the fusion off; ncu
python3 -c "import tarfile; tarfile.open('.dev/s14/d.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/d /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge; T=$R/.gpu/tests; T1=$R/.dev/s14/t1
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf && $RF gguf synth --preset llama-3-8b --type q4_0 --out /tmp/m/l8q40.gguf ) > $OUT/d/synth.log 2>&1 &
SYN=$!
echo "== gpu_gemv_q8"
timeout 300 $T/gpu_gemv_q8-test --include-ignored --test-threads=1 > $OUT/d/gq8.log 2>&1; echo "rc=$? $(grep 'test result' $OUT/d/gq8.log)"; grep -E "panicked" -A3 $OUT/d/gq8.log | head -8
echo "== sanitizer (fused, q4_K q6_K)"
export ROCMFORGE_TEST_FORMATS=q4_K,q6_K
timeout 200 compute-sanitizer --tool memcheck $T/gpu_gemv_q8-test --include-ignored --test-threads=1 fused_forms_match 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -4
timeout 200 compute-sanitizer --tool racecheck $T/gpu_gemv_q8-test --include-ignored --test-threads=1 fused_forms_match 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -4
echo "== emulated AMD"
export ROCMFORGE_TEST_FORMATS=q4_K,q2_K,q8_0
for e in gfx942 gfx1100; do ROCMFORGE_EMULATE=$e timeout 200 $T/gpu_gemv_q8-test --include-ignored --test-threads=1 fused_forms > $OUT/d/emu_$e.log 2>&1; echo "$e rc=$? $(grep -E 'test result' $OUT/d/emu_$e.log)"; grep -E "panicked" -A3 $OUT/d/emu_$e.log | head -5; done
unset ROCMFORGE_TEST_FORMATS
wait $SYN; echo "synth rc=$?"
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf
timeout 200 $T/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu_smollm2 gpu_q8_decode gpu_batched > $OUT/d/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "cosine min|panicked|test result" $OUT/d/gpu_model.log | cut -c1-250 | head -8
unset ROCMFORGE_TEST_SMOLLM2
echo "== tg128: on (HEAD) / start (1/rms before the loop) / off"
for f in l8 l8q40; do
  for v in on start off on start off; do
    if [ $v = off ]; then E="ROCMFORGE_FUSE_NORM=off"; elif [ $v = start ]; then E="ROCMFORGE_TEMPLATE_DIR=$T1"; else E="X=1"; fi
    env $E timeout 120 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 0 -n 128 -r 3 > $OUT/d/tg_${f}_$v.txt 2>&1
    echo "$f $v rc=$? $(grep tg128 $OUT/d/tg_${f}_$v.txt | awk -F'|' '{print $5}')"
  done
done
echo "== ncu per kernel, 8B Q4_K_M fused"
ROCMFORGE_GRAPHS=0 timeout 200 ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum --print-summary per-kernel $RF bench /tmp/m/l8.gguf --device cuda --no-early-serve -p 0 -n 2 -r 1 > $OUT/d/ncu_l8.txt 2>&1; echo "ncu rc=$?"
ROCMFORGE_GRAPHS=0 ROCMFORGE_TEMPLATE_DIR=$T1 timeout 200 ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum --print-summary per-kernel $RF bench /tmp/m/l8.gguf --device cuda --no-early-serve -p 0 -n 2 -r 1 > $OUT/d/ncu_l8_start.txt 2>&1; echo "ncu start rc=$?"
cd $OUT && tar czf d.tgz d && rm -rf d
