# call C1: the decode kernels' append items loaded before the slot check, chunk rows/columns per lane (change 2):
# tests, sanitizer, emulated AMD, gpu_model, gpu_graph, while llama.cpp 0c1e570's llama-bench builds into /tmp/llama
python3 -c "import tarfile; tarfile.open('.dev/s16/c.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/c1 /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge; T=$R/.gpu/tests
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
( bash docs/runs/s14/e-build-llama-bench.sh .dev/s16/llama.cpp-0c1e570-src.tar.gz /tmp/llama > $OUT/c1/llama_build.log 2>&1; echo "build rc=$?" >> $OUT/c1/llama_build.log ) &
BUILD=$!
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/c1/synth.log 2>&1 &
SYN=$!
export ROCMFORGE_REQUIRE_GPU=1
timeout 200 $T/gpu_attention-test --include-ignored --test-threads 1 > $OUT/c1/gpu_attention.txt 2>&1; echo "gpu_attention rc=$? $(grep 'test result' $OUT/c1/gpu_attention.txt)"; grep -A3 panicked $OUT/c1/gpu_attention.txt | head -8
for tool in memcheck racecheck; do
  timeout 150 compute-sanitizer --tool $tool $T/gpu_attention-test --include-ignored --test-threads 1 decode_append_small_cases > $OUT/c1/san_$tool.txt 2>&1; echo "$tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $OUT/c1/san_$tool.txt)"
done
for e in gfx942 gfx1100; do
  ROCMFORGE_EMULATE=$e timeout 150 $T/gpu_attention-test --include-ignored --test-threads 1 decode_append_small_cases decode_small_cases > $OUT/c1/emu_$e.txt 2>&1; echo "emu $e rc=$? $(grep 'test result' $OUT/c1/emu_$e.txt)"
done
wait $SYN; echo "synth rc=$?"
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 200 $T/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/c1/gpu_model.txt 2>&1; echo "gpu_model rc=$? $(grep 'test result' $OUT/c1/gpu_model.txt)"; grep -E "cosine min|panicked" $OUT/c1/gpu_model.txt | cut -c1-250 | head -8
timeout 100 $T/gpu_graph-test --include-ignored --test-threads=1 > $OUT/c1/gpu_graph.txt 2>&1; echo "gpu_graph rc=$? $(grep 'test result' $OUT/c1/gpu_graph.txt)"
unset ROCMFORGE_TEST_SMOLLM2 ROCMFORGE_TEST_GEMMA ROCMFORGE_REQUIRE_GPU
# warm the kernel cache of both binaries while the build finishes
for b in $RF $R/.dev/s16/old/rocmforge; do timeout 120 $b bench /tmp/m/s.gguf --device cuda --no-early-serve -p 0 -n 8 -r 1 > /dev/null 2>&1; timeout 120 $b bench /tmp/m/g.gguf --device cuda --no-early-serve -p 0 -n 8 -r 1 > /dev/null 2>&1; timeout 120 $b bench /tmp/m/l8.gguf --device cuda --no-early-serve -p 0 -n 8 -r 1 > /dev/null 2>&1; done
wait $BUILD; tail -2 $OUT/c1/llama_build.log
cd $OUT && tar czf c1.tgz c1 && rm -rf c1
