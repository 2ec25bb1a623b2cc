# call D: the decode split rule with the merge counted (ROCMFORGE_DECODE_MERGE_COST=2, the new default) against
# the rule before (=0), alternating, same binary: tg128 at several depths on SmolLM2, Gemma 3, the 8B (synthetic)
python3 -c "import tarfile; tarfile.open('.dev/s13/d.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/d /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge; T=$R/.gpu/tests
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/d/synth.log 2>&1 &
SYN=$!
echo "== gpu_attention decode"
timeout 300 $T/gpu_attention-test --include-ignored --test-threads=1 decode > $OUT/d/ga.log 2>&1; echo "rc=$? $(grep 'test result' $OUT/d/ga.log)"; grep panicked $OUT/d/ga.log | head -3
wait $SYN; echo "synth rc=$?"
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 200 $T/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_batched > $OUT/d/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "cosine min|panicked|test result" $OUT/d/gpu_model.log | cut -c1-220 | head -8
unset ROCMFORGE_TEST_SMOLLM2 ROCMFORGE_TEST_GEMMA
echo "== tg128: merge cost 2 (new) / 0 (old)"
for f in s g l8; do
  for d in 0 128 384 1024; do
    if [ $f = l8 ] && [ $d = 128 -o $d = 384 ]; then continue; fi
    for mc in 2 0 2 0; do
      ROCMFORGE_DECODE_MERGE_COST=$mc timeout 90 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 0 -n 128 -d $d -r 3 > $OUT/d/tg_${f}_d${d}_m$mc.txt 2>&1
      echo "$f d=$d merge=$mc rc=$? $(grep tg128 $OUT/d/tg_${f}_d${d}_m$mc.txt | awk -F'|' '{print $5}')"
    done
  done
done
cd $OUT && tar czf d.tgz d && rm -rf d
