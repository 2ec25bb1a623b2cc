# call E: the decode kernels with Q's, the page ids' and the fused append's loads in flight together: checks
# (tests, sanitizer, emulated AMD), then tg128 new against HEAD's attn_decode.hip (ROCMFORGE_TEMPLATE_DIR), alternating
python3 -c "import tarfile; tarfile.open('.dev/s13/e.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/e /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge; T=$R/.gpu/tests; OLD=$R/.dev/s13/oldt
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/e/synth.log 2>&1 &
SYN=$!
echo "== gpu_attention decode, kv_append"
timeout 300 $T/gpu_attention-test --include-ignored --test-threads=1 decode kv_append > $OUT/e/ga.log 2>&1; echo "rc=$? $(grep 'test result' $OUT/e/ga.log)"; grep -E "panicked" $OUT/e/ga.log | head -3
grep -E "^decode_append" $OUT/e/ga.log | awk '{print $NF}' | sort | uniq -c | head -5
echo "== sanitizer (decode_append_small_cases)"
timeout 200 compute-sanitizer --tool memcheck $T/gpu_attention-test --include-ignored --test-threads=1 decode_append_small 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -4
timeout 200 compute-sanitizer --tool racecheck $T/gpu_attention-test --include-ignored --test-threads=1 decode_append_small 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -4
echo "== emulated AMD"
for e in gfx942 gfx1100; do ROCMFORGE_EMULATE=$e timeout 200 $T/gpu_attention-test --include-ignored --test-threads=1 decode_append_small decode_small > $OUT/e/emu_$e.log 2>&1; echo "$e rc=$? $(grep -E 'test result' $OUT/e/emu_$e.log)"; grep -E "panicked" $OUT/e/emu_$e.log | head -3; done
wait $SYN; echo "synth rc=$?"
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 200 $T/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/e/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "cosine min|panicked|test result" $OUT/e/gpu_model.log | cut -c1-220 | head -8
unset ROCMFORGE_TEST_SMOLLM2 ROCMFORGE_TEST_GEMMA
echo "== tg128 new / old decode template"
for f in s g l8; do
  for d in 0 1024; do
    for v in new old new old; do
      if [ $v = old ]; then E="ROCMFORGE_TEMPLATE_DIR=$OLD"; else E=""; fi
      env $E timeout 90 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 0 -n 128 -d $d -r 3 > $OUT/e/tg_${f}_d${d}_$v.txt 2>&1
      echo "$f d=$d $v rc=$? $(grep tg128 $OUT/e/tg_${f}_d${d}_$v.txt | awk -F'|' '{print $5}')"
    done
  done
done
cd $OUT && tar czf e.tgz e && rm -rf e
