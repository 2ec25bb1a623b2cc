# call I: resid_norm with a thread's elements in registers (new, embedded) against the previous glue
# template (old, ROCMFORGE_TEMPLATE_DIR): the new glue tests on both, memcheck, gpu_model, tg128
python3 -c "import tarfile; tarfile.open('.dev/i.tar.xz').extractall()"
mkdir -p $OUT/i /tmp/m
R=$PWD; RF=$R/.gpu/bin/rocmforge; OLD=$R/.dev/tv/glueold
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1 ROCMFORGE_BIN=$RF
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/i/synth.log 2>&1 &
SYN=$!
timeout 60 .gpu/tests/gpu_glue-test --include-ignored --test-threads=1 > $OUT/i/glue_new.log 2>&1; echo "glue new rc=$?"; grep -E "test result|panicked" $OUT/i/glue_new.log | head -3
ROCMFORGE_TEMPLATE_DIR=$OLD timeout 60 .gpu/tests/gpu_glue-test --include-ignored --test-threads=1 > $OUT/i/glue_old.log 2>&1; echo "glue old rc=$?"; grep -E "test result|panicked" $OUT/i/glue_old.log | head -3
timeout 60 compute-sanitizer --tool memcheck .gpu/tests/gpu_glue-test --include-ignored --test-threads=1 resid_norm 2>&1 | grep -E "ERROR SUMMARY|^test result" | head -3
wait $SYN; echo "synth rc=$?"
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 80 .gpu/tests/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/i/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "cosine min|panicked|test result" $OUT/i/gpu_model.log | cut -c1-200 | head -6
for f in l8 s; do for v in new old new2 old2; do
  case $v in old*) D=$OLD ;; *) D="" ;; esac
  ROCMFORGE_TEMPLATE_DIR=$D timeout 40 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 0 -n 128 -r 3 > $OUT/i/${f}_$v.txt 2>&1
  echo "$f $v rc=$? $(grep -E 'tg128' $OUT/i/${f}_$v.txt | awk -F'|' '{print $5}')"
done; done
