# call A: gemv_norm checks (tests, sanitizer, emulated wave64), the model against the CPU and HF, tg128 fused norm on / off
python3 -c "import tarfile; tarfile.open('.dev/s13/a.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
cat /tmp/m/smol.part00 /tmp/m/smol.part01 /tmp/m/smol.part02 > /tmp/m/smollm2-135m-instruct-q4_1.gguf && rm -f /tmp/m/smol.part0*
sha256sum /tmp/m/smollm2-135m-instruct-q4_1.gguf | cut -c1-16
mkdir -p $OUT/a; R=$PWD; RF=$R/.gpu/bin/rocmforge; T=$R/.gpu/tests
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf ) > $OUT/a/synth.log 2>&1 &
SYN=$!
echo "== gpu_glue (gemv_norm, resid_norm, gated)"
timeout 240 $T/gpu_glue-test --include-ignored --test-threads=1 > $OUT/a/glue.log 2>&1; echo rc=$?; grep -E "^test |test result|panicked" $OUT/a/glue.log | cut -c1-250 | head -8
echo "== sanitizer (gemv_norm)"
timeout 150 compute-sanitizer --tool memcheck $T/gpu_glue-test --include-ignored --test-threads=1 gemv_norm 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -4
timeout 150 compute-sanitizer --tool racecheck $T/gpu_glue-test --include-ignored --test-threads=1 gemv_norm 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -4
echo "== emulated gfx942 (wave64) and gfx1100"
for e in gfx942 gfx1100; do ROCMFORGE_EMULATE=$e timeout 150 $T/gpu_glue-test --include-ignored --test-threads=1 gemv_norm > $OUT/a/emu_$e.log 2>&1; echo "$e rc=$? $(grep -E 'test result' $OUT/a/emu_$e.log)"; grep -E "panicked" $OUT/a/emu_$e.log | cut -c1-250 | head -3; done
wait $SYN; echo "synth rc=$?"
echo "== gpu_model (synthetic), the real SmolLM2 against HF and the CPU, gpu_graph, gpu_early"
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 200 $T/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/a/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "cosine min|panicked|test result" $OUT/a/gpu_model.log | cut -c1-200 | head -8
unset ROCMFORGE_TEST_SMOLLM2 ROCMFORGE_TEST_GEMMA
export ROCMFORGE_BIN=$RF ROCMFORGE_MODEL_DIR=/tmp/m
timeout 200 $T/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu_smollm2 gpu_matches_hf_smollm2 > $OUT/a/gpu_model_real.log 2>&1; echo "gpu_model real rc=$?"; grep -E "^test |cosine|top-1|greedy|panicked|test result" $OUT/a/gpu_model_real.log | cut -c1-250 | head -12
timeout 100 $T/gpu_graph-test --include-ignored --test-threads=1 > $OUT/a/gpu_graph.log 2>&1; echo "gpu_graph rc=$? $(grep -E 'test result' $OUT/a/gpu_graph.log)"
timeout 100 $T/gpu_early-test --include-ignored --test-threads=1 > $OUT/a/gpu_early.log 2>&1; echo "gpu_early rc=$? $(grep -E 'test result' $OUT/a/gpu_early.log)"
echo "== tg128 fused norm on / off (real SmolLM2, synthetic Gemma 3)"
for f in smollm2-135m-instruct-q4_1 g; do
  for v in on off on off; do
    ROCMFORGE_FUSE_NORM=$v timeout 60 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 0 -n 128 -r 3 > $OUT/a/tg_${f}_$v.txt 2>&1
    echo "$f $v rc=$? $(grep tg128 $OUT/a/tg_${f}_$v.txt | awk -F'|' '{print $5}')"
  done
done
cd $OUT && tar czf a.tgz a && rm -rf a
