# call E1: gemv_wave_g (the batch-1 GEMV on quarter-wave row groups, rows 32): the gemv test over every format
# (every configuration, the new one included), sanitizer and emulated AMD on a few formats, gpu_model (the output
# projections of both small models now run it), while llama.cpp 0c1e570's llama-bench builds into /tmp/llama
python3 -c "import tarfile; tarfile.open('.dev/s16/e.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/e1 /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge; T=$R/.gpu/tests
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
( bash docs/runs/s14/e-build-llama-bench.sh .dev/s16/llama.cpp-0c1e570-src.tar.gz /tmp/llama > $OUT/e1/llama_build.log 2>&1; echo "build rc=$?" >> $OUT/e1/llama_build.log ) &
BUILD=$!
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/e1/synth.log 2>&1 &
SYN=$!
export ROCMFORGE_REQUIRE_GPU=1
timeout 240 $T/gpu_quantized-test --include-ignored --test-threads 1 gemv_every_format_random > $OUT/e1/gemv.txt 2>&1; echo "gemv rc=$? $(grep 'test result' $OUT/e1/gemv.txt)"; grep -A4 panicked $OUT/e1/gemv.txt | head -8
export ROCMFORGE_TEST_FORMATS=q4_1,q8_0,q6_K,f16
for tool in memcheck racecheck; do
  timeout 150 compute-sanitizer --tool $tool $T/gpu_quantized-test --include-ignored --test-threads 1 gemv_every_format_random > $OUT/e1/san_$tool.txt 2>&1; echo "$tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|test result' $OUT/e1/san_$tool.txt | tr '\n' ' ')"
done
export ROCMFORGE_TEST_FORMATS=q4_1,q8_0
for e in gfx942 gfx1100; do
  ROCMFORGE_EMULATE=$e timeout 150 $T/gpu_quantized-test --include-ignored --test-threads 1 gemv_every_format_random > $OUT/e1/emu_$e.txt 2>&1; echo "emu $e rc=$? $(grep 'test result' $OUT/e1/emu_$e.txt)"; grep -A4 panicked $OUT/e1/emu_$e.txt | head -6
done
unset ROCMFORGE_TEST_FORMATS
wait $SYN; echo "synth rc=$?"
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 200 $T/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/e1/gpu_model.txt 2>&1; echo "gpu_model rc=$? $(grep 'test result' $OUT/e1/gpu_model.txt)"; grep -E "cosine min|panicked" $OUT/e1/gpu_model.txt | cut -c1-250 | head -8
unset ROCMFORGE_TEST_SMOLLM2 ROCMFORGE_TEST_GEMMA ROCMFORGE_REQUIRE_GPU
for b in $RF $R/.dev/s16/head/rocmforge; do for m in s g l8; do timeout 120 $b bench /tmp/m/$m.gguf --device cuda --no-early-serve -p 0 -n 8 -r 1 > /dev/null 2>&1; done; done
wait $BUILD; tail -2 $OUT/e1/llama_build.log
cd $OUT && tar czf e1.tgz e1 && rm -rf e1
