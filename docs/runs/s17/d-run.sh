# call D: which half of call C's copy change cost hd256 its call-A time: template variants (AP_COPY_FAST,
# AP_TB_AHEAD: 00 = call A's copy, 11 = call C's) on hd128 and hd256 rows, two rounds; ncu source counters
# of 11 and 00 at hd256
python3 -c "import tarfile; tarfile.open('.dev/s17/d.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/d; R=$PWD; B=$R/.gpu/benches/attention
export ROCMFORGE_CACHE_DIR=/tmp/rc ROCMFORGE_BENCH_ATTN=prefill ROCMFORGE_BENCH_PREFILL_HD=128,256
for r in 1 2; do for v in 00 01 10 11; do
  echo "round $r variant $v"; ROCMFORGE_TEMPLATE_DIR=$R/.dev/s17/v/$v timeout 90 $B 2>&1 | grep '^prefill mma_sync B=' | cut -c1-118
done; done
export ROCMFORGE_BENCH_PREFILL_HD=256
for v in 00 11; do
  ROCMFORGE_TEMPLATE_DIR=$R/.dev/s17/v/$v timeout 150 ncu --clock-control none --kernel-name regex:rf_attn_prefill_hd256 --launch-count 1 --section WarpStateStats --section SourceCounters --section LaunchStats -o $OUT/d/v$v $B > $OUT/d/ncu_$v.log 2>&1; echo "ncu $v rc=$?"
  ncu -i $OUT/d/v$v.ncu-rep --page source --print-source sass --csv > $OUT/d/v${v}_sass.csv 2>&1; rm -f $OUT/d/v$v.ncu-rep
done
