# call A: gemv_q8 with register double buffering (variant b, ROCMFORGE_TEMPLATE_DIR) against the
# embedded kernel, same call: correctness, kernel bench, ncu, 8B decode end to end
python3 -c "import tarfile; tarfile.open('.dev/a.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/a /tmp/m
R=$PWD; RF=$R/.gpu/bin/rocmforge; VB=$R/.dev/tv/b
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
( [ -f /tmp/m/l8.gguf ] || $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/a/synth.log 2>&1 &
SYN=$!
echo "== gpu_gemv_q8 with variant b"
ROCMFORGE_TEMPLATE_DIR=$VB timeout 240 .gpu/tests/gpu_gemv_q8-test --include-ignored --test-threads=1 > $OUT/a/test_b.log 2>&1; echo rc=$?; grep -E "^test |test result|panicked" $OUT/a/test_b.log | cut -c1-200 | head -8
export ROCMFORGE_BENCH_GEMV_FLOAT=off ROCMFORGE_BENCH_GEMV_EVERY=1 ROCMFORGE_BENCH_GEMV_BATCHES=1,2,4
for v in base b; do
  D=""; [ $v = b ] && D=$VB
  ROCMFORGE_TEMPLATE_DIR=$D timeout 200 .gpu/benches/gemv_q8 > $OUT/a/bench_$v.txt 2>&1; echo "bench $v rc=$?"
done
wait $SYN; echo "synth rc=$?"
for v in base b base2 b2; do
  case $v in base*) D="" ;; *) D=$VB ;; esac
  ROCMFORGE_TEMPLATE_DIR=$D timeout 120 $RF bench /tmp/m/l8.gguf --device cuda --no-early-serve -p 0 -n 128 --parallel 1,4 -r 3 > $OUT/a/l8_$v.txt 2>&1
  echo "l8 $v rc=$? $(grep -E 'tg128' $OUT/a/l8_$v.txt | awk -F'|' '{print $4 $5}' | tr '\n' ' ')"
done
export ROCMFORGE_BENCH_GEMV_SHAPES=4096x14336 ROCMFORGE_BENCH_GEMV_BATCHES=1 ROCMFORGE_BENCH_GEMV_EVERY=0
for v in base b; do
  D=""; [ $v = b ] && D=$VB
  ROCMFORGE_TEMPLATE_DIR=$D timeout 100 ncu --clock-control none -k regex:gemv_q8_q4_K_f16_b1_r4 --launch-skip 30 --launch-count 1 --section SpeedOfLight --section WarpStateStats --section Occupancy --section MemoryWorkloadAnalysis --section LaunchStats .gpu/benches/gemv_q8 q4_K > $OUT/a/ncu_$v.txt 2>&1; echo "ncu $v rc=$?"
  grep -E "Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Stall Long|Warp Cycles Per Issued" $OUT/a/ncu_$v.txt | head -12
done
echo "== summaries"
for v in base b; do echo "-- $v"; sed -n '/^summary/,$p' $OUT/a/bench_$v.txt | cut -c1-120; done
