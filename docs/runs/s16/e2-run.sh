# call E2 (right after E1, same machine): the gemv bench at the output shapes and a square one (r8 gemv_wave against
# r32 gemv_wave_g), tg128 new (7d8e975+) against head (6a50388's binary), alternating; ours against llama.cpp; ncu
python3 -c "import tarfile; tarfile.open('.dev/s16/e.tar.xz').extractall()"
mkdir -p $OUT/e2; R=$PWD; RF=$R/.gpu/bin/rocmforge; OLD=$R/.dev/s16/head/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc
# E1's gpu_model hit its timeout while the peer compiled beside it (the two equality tests had passed): again
ROCMFORGE_REQUIRE_GPU=1 ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf timeout 200 .gpu/tests/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/e2/gpu_model.txt 2>&1; echo "gpu_model rc=$? $(grep 'test result' $OUT/e2/gpu_model.txt)"; grep -E "cosine min|panicked" $OUT/e2/gpu_model.txt | cut -c1-250 | head -8
ROCMFORGE_BENCH_GEMV_SHAPES=49152x576,262144x640,4096x4096 ROCMFORGE_BENCH_GEMV_BATCHES=1 ROCMFORGE_BENCH_GEMV_EVERY=1 timeout 200 .gpu/benches/gemv_q8 q4_1,q8_0,q5_0,q6_K > $OUT/e2/bench.txt 2>&1; echo "bench rc=$?"; grep -E "b1 float|b1  " $OUT/e2/bench.txt
B="bench --device cuda --no-early-serve -p 0 -n 128 -r 3"
for m in s g l8; do
  for v in new old new old; do
    if [ $v = old ]; then X=$OLD; else X=$RF; fi
    timeout 120 $X $B /tmp/m/$m.gguf > $OUT/e2/tg_${m}_$v.txt 2>&1
    echo "$m $v rc=$? $(grep tg128 $OUT/e2/tg_${m}_$v.txt | awk -F'|' '{print $5}')"
  done
done
LB=/tmp/llama/bin/llama-bench
for m in s g l8; do
  timeout 150 $RF bench /tmp/m/$m.gguf --device cuda --no-early-serve -p 512 -n 128 -r 3 > $OUT/e2/ours_$m.txt 2>&1; echo "ours $m rc=$?"; grep -E "pp512|tg128" $OUT/e2/ours_$m.txt | awk -F'|' '{print $(NF-2), $(NF-1)}'
  timeout 150 $LB -m /tmp/m/$m.gguf -fa 1 -p 512 -n 128 -r 3 > $OUT/e2/llama_$m.txt 2>&1; echo "llama $m rc=$?"; grep -E "pp512|tg128" $OUT/e2/llama_$m.txt | awk -F'|' '{print $(NF-2), $(NF-1)}'
done
export ROCMFORGE_GRAPHS=0
N="ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum,sm__inst_executed.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed"
for v in new old; do
  if [ $v = old ]; then X=$OLD; else X=$RF; fi
  timeout 100 $N -k regex:"gemv_wave_q4_1_f16_none_none|gemv_wave_g" -c 130 $X bench /tmp/m/s.gguf --device cuda --no-early-serve -p 0 -n 2 -r 1 > $OUT/e2/ncu_s_$v.txt 2>&1; echo "ncu s $v rc=$?"
  timeout 100 $N -k regex:"gemv_wave_q8_0_f16_none_none|gemv_wave_g" -c 40 $X bench /tmp/m/g.gguf --device cuda --no-early-serve -p 0 -n 2 -r 1 > $OUT/e2/ncu_g_$v.txt 2>&1; echo "ncu g $v rc=$?"
  for m in s g; do grep -A8 -E "^  rf_gemv_wave.*\((1536|6144|8192|32768), 1, 1\)" $OUT/e2/ncu_${m}_$v.txt | grep -E "^  rf_|duration|inst_executed|dram__" | head -4; done
done
cd $OUT && tar czf e2.tgz e2 && rm -rf e2
