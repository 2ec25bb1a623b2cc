# call F: the fused forms' tests after the tolerance mend (another summation order: relative to the largest
# output), the sanitizer and the emulated AMD targets on them
python3 -c "import tarfile; tarfile.open('.dev/s14/f.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/f; R=$PWD; T=$R/.gpu/tests
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
echo "== gpu_gemv_q8"
timeout 300 $T/gpu_gemv_q8-test --include-ignored --test-threads=1 > $OUT/f/gq8.log 2>&1; echo "rc=$? $(grep 'test result' $OUT/f/gq8.log)"; grep -E "panicked" -A3 $OUT/f/gq8.log | head -8
echo "== sanitizer (fused, q4_K q6_K q4_0)"
export ROCMFORGE_TEST_FORMATS=q4_K,q6_K,q4_0
timeout 200 compute-sanitizer --tool memcheck $T/gpu_gemv_q8-test --include-ignored --test-threads=1 fused_forms 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -4
timeout 200 compute-sanitizer --tool racecheck $T/gpu_gemv_q8-test --include-ignored --test-threads=1 fused_forms 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -4
echo "== emulated AMD"
export ROCMFORGE_TEST_FORMATS=q4_K,q2_K,q8_0,q6_K,q4_0
for e in gfx942 gfx1100; do ROCMFORGE_EMULATE=$e timeout 200 $T/gpu_gemv_q8-test --include-ignored --test-threads=1 fused_forms > $OUT/f/emu_$e.log 2>&1; echo "$e rc=$? $(grep -E 'test result' $OUT/f/emu_$e.log)"; grep -E "panicked" -A3 $OUT/f/emu_$e.log | head -5; done
cd $OUT && tar czf f.tgz f && rm -rf f
