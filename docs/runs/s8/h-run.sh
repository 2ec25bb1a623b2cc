python3 -c "import tarfile; tarfile.open('.gpu.tar.xz').extractall()"
mkdir -p $OUT/h
export ROCMFORGE_CACHE_DIR=/tmp/rc
ROCMFORGE_BENCH_DECODE_ROWS=2 ROCMFORGE_BENCH_ATTN=decode timeout 120 ncu --clock-control none --set full -k regex:attn_decode_mc --launch-skip 5 -c 1 .gpu/benches/attention > $OUT/h/ncu_b16.txt 2>&1; echo rc=$?
grep -E "Duration|DRAM Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Limit|Executed Ipc A|Warp Cycles Per Issued|One or More|No Eligible|Grid Size|Waves Per SM|L2 Hit|Dynamic Shared" $OUT/h/ncu_b16.txt | head -30
