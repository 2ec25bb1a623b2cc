# call D: the logits head (output GEMV + argmax) of SmolLM2 (gemv_wave q4_1, 49152 x 576) and Gemma 3 (gemv_wave q8_0,
# 262144 x 640): the gemv_q8 bench at those shapes (8-bit path, mma tile, float default), ncu sections of both output
# GEMVs, and tg128 with the whole output matrix prefetched into L2 (template .dev/s16/tpf) against the default
python3 -c "import tarfile; tarfile.open('.dev/s16/d.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/d /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc
[ -f /tmp/m/s.gguf ] || $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf > $OUT/d/synth.log 2>&1
[ -f /tmp/m/g.gguf ] || $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf >> $OUT/d/synth.log 2>&1
ROCMFORGE_BENCH_GEMV_SHAPES=49152x576,262144x640,576x576,1536x576,576x1536 ROCMFORGE_BENCH_GEMV_BATCHES=1 ROCMFORGE_BENCH_GEMV_EVERY=1 timeout 200 .gpu/benches/gemv_q8 q4_1,q8_0 > $OUT/d/bench.txt 2>&1; echo "bench rc=$?"; grep -vE "^\s*$" $OUT/d/bench.txt | tail -30
B="bench --device cuda --no-early-serve -p 0 -n 128 -r 3"
for m in s g; do
  for v in std pf std pf; do
    if [ $v = pf ]; then E="ROCMFORGE_TEMPLATE_DIR=$R/.dev/s16/tpf"; else E="X=1"; fi
    env $E timeout 120 $RF $B /tmp/m/$m.gguf > $OUT/d/tg_${m}_$v.txt 2>&1
    echo "$m $v rc=$? $(grep tg128 $OUT/d/tg_${m}_$v.txt | awk -F'|' '{print $5}')"
  done
done
export ROCMFORGE_GRAPHS=0
S="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis --section SchedulerStats"
timeout 200 ncu --clock-control none $S -k regex:gemv_wave_q4_1_f16_none_none -c 130 $RF bench /tmp/m/s.gguf --device cuda --no-early-serve -p 0 -n 2 -r 1 > $OUT/d/ncu_s_out.txt 2>&1; echo "ncu s rc=$?"
timeout 200 ncu --clock-control none $S -k regex:gemv_wave_q8_0_f16_none_none -c 40 $RF bench /tmp/m/g.gguf --device cuda --no-early-serve -p 0 -n 2 -r 1 > $OUT/d/ncu_g_out.txt 2>&1; echo "ncu g rc=$?"
for f in s g; do awk '/^  rf_gemv_wave/{p=0} /^  rf_gemv_wave.*\((6144|32768), 1, 1\)/{p=1; n++} p && n==1' $OUT/d/ncu_${f}_out.txt | grep -E "rf_gemv|Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Theoretical Occupancy|Registers|Waves Per SM|Block Limit|Warp Cycles Per Issued|Eligible|No Eligible|One or More" | head -24; done
cd $OUT && tar czf d.tgz d && rm -rf d
