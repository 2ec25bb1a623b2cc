# call B: hd256 prefill with one K/V stage: the V copy at the top or after Q.K^T (AP_KV1_LATE, template dir),
# two rounds; ncu of ours (kv1 64x64) and of torch's FA2 kernel on the same shape, source counters
python3 -c "import tarfile; tarfile.open('.dev/s17/b.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/b; B=.gpu/benches/attention
export ROCMFORGE_CACHE_DIR=/tmp/rc ROCMFORGE_BENCH_PREFILL_HD=256 ROCMFORGE_BENCH_ATTN=prefill
KV1='hd256:64,64,4,1,0,0,1,1'
mkdir -p /tmp/tl && cp templates/* /tmp/tl/ && sed -i '1i #define AP_KV1_LATE 1' /tmp/tl/attn_prefill.hip
for r in 1 2; do
  echo "round $r: s2 default, kv1, kv1 late"
  timeout 60 $B | grep '^prefill'
  ROCMFORGE_ATTN_TILES=$KV1 timeout 60 $B | grep '^prefill'
  ROCMFORGE_TEMPLATE_DIR=/tmp/tl ROCMFORGE_ATTN_TILES=$KV1 timeout 60 $B | grep '^prefill'
done
ROCMFORGE_ATTN_TILES=$KV1 timeout 200 ncu --clock-control none --kernel-name regex:rf_attn_prefill_mma_hd256 --launch-count 1 --set full -o $OUT/b/ours $B > $OUT/b/ncu_ours_run.txt 2>&1; echo "ncu ours rc=$?"
timeout 120 ncu --clock-control none --kernel-name regex:flash_fwd --launch-count 1 --set full -o $OUT/b/fa2 python3 docs/runs/s17/fa2_hd256.py > $OUT/b/ncu_fa2_run.txt 2>&1; echo "ncu fa2 rc=$?"
for x in ours fa2; do
  ncu -i $OUT/b/$x.ncu-rep --page details > $OUT/b/$x.txt 2>&1
  ncu -i $OUT/b/$x.ncu-rep --page source --print-source sass --csv > $OUT/b/${x}_sass.csv 2>&1
  grep -E "Duration|Executed Instructions  |Registers Per|Achieved Occupancy|Issue Slots Busy|No Eligible|Warp Cycles Per Issued|Theoretical Occ" $OUT/b/$x.txt | head -12
done
