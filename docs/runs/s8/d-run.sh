python3 -c "import tarfile; tarfile.open('.gpu.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/d
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
echo "== decode tests (new split rule)"
timeout 150 .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 decode > $OUT/d/gpu_attention.log 2>&1; echo rc=$?; grep -E "^test |test result|panicked" $OUT/d/gpu_attention.log | head
echo "== decode bench, default"
ROCMFORGE_BENCH_ATTN=decode timeout 150 .gpu/benches/attention > $OUT/d/attention_bench.txt 2>&1; echo rc=$?; grep -E "^decode|copy" $OUT/d/attention_bench.txt | cut -c1-220
echo "== tile sweep (rows 2,3,4: hd128 B16, hd128 B64, hd64 B16)"
for cfg in 16,4,2 16,4,3 32,4,2 16,8,2 32,2,2 16,2,3 32,4,3; do
  ROCMFORGE_DECODE_MC_TILES=$cfg ROCMFORGE_BENCH_DECODE_ROWS=2,3,4 ROCMFORGE_BENCH_ATTN=decode timeout 100 .gpu/benches/attention > $OUT/d/sweep_$cfg.txt 2>&1; echo "$cfg rc=$?"; grep -E "^decode" $OUT/d/sweep_$cfg.txt | cut -c1-150
done
echo "== ncu, default, B=64 ctx 2048 hd128"
ROCMFORGE_BENCH_DECODE_ROWS=3 ROCMFORGE_BENCH_ATTN=decode timeout 150 ncu --clock-control none --set full -k regex:attn_decode_mc --launch-skip 5 -c 1 .gpu/benches/attention > $OUT/d/ncu_b64.txt 2>&1; echo rc=$?
grep -E "Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Limit|Executed Ipc A|Warp Cycles Per Issued|Stall|One or More|No Eligible" $OUT/d/ncu_b64.txt | head -40
