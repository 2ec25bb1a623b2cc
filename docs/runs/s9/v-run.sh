python3 -c "import tarfile; tarfile.open('.dev/v/v.tar.xz').extractall()"
mkdir -p $OUT/v /tmp/m
R=$PWD; RF=$R/.gpu/rocmforge; OLD=$R/.gpu/rocmforge-old
export ROCMFORGE_CACHE_DIR=/tmp/rc
[ -f /tmp/m/l8.gguf ] || ( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/v/synth.log 2>&1
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 200 .gpu/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/v/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "cosine min|panicked|test result" $OUT/v/gpu_model.log | cut -c1-220
for f in s g l8; do
  for cfg in new old new2 old2; do
    B=$RF; case $cfg in old*) B=$OLD ;; esac
    timeout 120 $B bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 0 -n 128 --parallel 1,8 -r 3 > $OUT/v/$f$cfg.txt 2>&1
    echo "$f $cfg rc=$? $(grep -E 'tg128' $OUT/v/$f$cfg.txt | awk -F'|' '{print $5 $6}' | tr '\n' ' ')"
  done
done
