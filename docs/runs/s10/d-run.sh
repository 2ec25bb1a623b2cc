# call D: gemv_q8 with every row's unit loaded before a block fence, then the dot products (variant e,
# ROCMFORGE_TEMPLATE_DIR) against the embedded kernel, same call
python3 -c "import tarfile; tarfile.open('.dev/d.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/d /tmp/m
R=$PWD; RF=$R/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1 ROCMFORGE_BIN=$RF
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/d/synth.log 2>&1 &
SYN=$!
export ROCMFORGE_BENCH_GEMV_FLOAT=off ROCMFORGE_BENCH_GEMV_EVERY=1 ROCMFORGE_BENCH_GEMV_BATCHES=1,2,4
for v in base e; do
  D=""; [ $v != base ] && D=$R/.dev/tv/$v
  ROCMFORGE_TEMPLATE_DIR=$D timeout 120 .gpu/benches/gemv_q8 > $OUT/d/bench_$v.txt 2>&1; echo "bench $v rc=$?"
done
unset ROCMFORGE_BENCH_GEMV_FLOAT ROCMFORGE_BENCH_GEMV_EVERY ROCMFORGE_BENCH_GEMV_BATCHES
wait $SYN; echo "synth rc=$?"
for v in base e base2 e2; do
  D=""; case $v in base*) ;; *) D=$R/.dev/tv/${v:0:1} ;; esac
  ROCMFORGE_TEMPLATE_DIR=$D timeout 90 $RF bench /tmp/m/l8.gguf --device cuda --no-early-serve -p 0 -n 128 --parallel 1,4 -r 3 > $OUT/d/l8_$v.txt 2>&1
  echo "l8 $v rc=$? $(grep -E 'tg128' $OUT/d/l8_$v.txt | awk -F'|' '{print $4 $5}' | tr '\n' ' ')"
done
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
for v in e; do
  ROCMFORGE_TEMPLATE_DIR=$R/.dev/tv/$v timeout 100 .gpu/tests/gpu_gemv_q8-test --include-ignored --test-threads=1 every_format > $OUT/d/test_$v.log 2>&1; echo "gemv_q8 test $v rc=$?"; grep -E "test result|panicked" $OUT/d/test_$v.log | head -2
  ROCMFORGE_TEMPLATE_DIR=$R/.dev/tv/$v ROCMFORGE_BENCH_GEMV_FLOAT=off ROCMFORGE_BENCH_GEMV_BATCHES=1 ROCMFORGE_BENCH_GEMV_SHAPES=4096x14336 timeout 100 ncu --clock-control none -k regex:gemv_q8_q4_K_f16_b1_r4 --launch-skip 30 --launch-count 1 --section SpeedOfLight --section WarpStateStats --section Occupancy .gpu/benches/gemv_q8 q4_K > $OUT/d/ncu_$v.txt 2>&1; grep -E "Duration|DRAM Throughput|Achieved Occupancy|Registers Per|Warp Cycles Per Issued" $OUT/d/ncu_$v.txt | head -6
done
echo "== summaries (b1 and ratios)"
for v in base e; do echo "-- $v"; sed -n '/^summary/,$p' $OUT/d/bench_$v.txt | tail -n +2 | awk '{print $1, $2, $4, $6}' | tr '\n' ';'; echo; done
