# call C: Gemma's unstacked q/k/v with the fused norm (checks, tg128 on/off); decode splits at short contexts
# (SmolLM2 tg128 with ROCMFORGE_DECODE_SPLITS=1 against the rule); ncu details of one SmolLM2 decode attention launch
python3 -c "import tarfile; tarfile.open('.dev/s13/c.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/c /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge; T=$R/.gpu/tests
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
$RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf > $OUT/c/synth.log 2>&1 && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf >> $OUT/c/synth.log 2>&1; echo "synth rc=$?"
echo "== gpu_model (synthetic)"
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 200 $T/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/c/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "cosine min|panicked|test result" $OUT/c/gpu_model.log | cut -c1-220 | head -8
unset ROCMFORGE_TEST_SMOLLM2 ROCMFORGE_TEST_GEMMA
echo "== tg128 fused norm on / off (Gemma 3 synthetic)"
for v in on off on off; do
  ROCMFORGE_FUSE_NORM=$v timeout 60 $RF bench /tmp/m/g.gguf --device cuda --no-early-serve -p 0 -n 128 -r 3 > $OUT/c/tg_g_$v.txt 2>&1
  echo "g $v rc=$? $(grep tg128 $OUT/c/tg_g_$v.txt | awk -F'|' '{print $5}')"
done
echo "== SmolLM2 tg128, depth 0 and 1024: the split rule against one split"
for d in 0 1024; do
  for sp in rule 1 rule 1; do
    if [ $sp = rule ]; then E=""; else E="ROCMFORGE_DECODE_SPLITS=$sp"; fi
    env $E timeout 60 $RF bench /tmp/m/s.gguf --device cuda --no-early-serve -p 0 -n 128 -d $d -r 3 > $OUT/c/tg_s_d${d}_$sp.txt 2>&1
    echo "s d=$d splits=$sp rc=$? $(grep tg128 $OUT/c/tg_s_d${d}_$sp.txt | awk -F'|' '{print $5}')"
  done
done
echo "== ncu: one decode attention launch in detail (graphs off, step ~60)"
ROCMFORGE_GRAPHS=off timeout 120 ncu --clock-control none --kernel-name regex:attn_decode --launch-skip 1800 --launch-count 1 --set full $RF bench /tmp/m/s.gguf --device cuda --no-early-serve -p 0 -n 128 -r 1 > $OUT/c/ncu_attn.txt 2>&1; echo "ncu rc=$?"
grep -E "Duration|Registers Per|Achieved Occupancy|Theoretical Occupancy|Block Size|Grid Size|Shared Memory Config|Dynamic Shared" $OUT/c/ncu_attn.txt | head -12
cd $OUT && tar czf c.tgz c && rm -rf c
