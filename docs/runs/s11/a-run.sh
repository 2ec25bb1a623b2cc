# call A (eleventh session): decode attention — where the B=1 / long-context time goes (ncu per kernel),
# splits and tiles sweeps; prefill hd256 ncu, ours vs torch's FA2
python3 -c "import tarfile; tarfile.open('.dev/s11/a.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/a; R=$PWD; B=$R/.gpu/benches/attention
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
echo "== decode, all rows, with torch"
ROCMFORGE_BENCH_ATTN=decode timeout 120 $B > $OUT/a/dec_base.txt 2>&1; echo rc=$?; grep -E "^decode|copy" $OUT/a/dec_base.txt | cut -c1-250
export ROCMFORGE_BENCH_PEER=off
echo "== ncu kernel durations, B=1 rows (1: hd128, 5: hd64, 7: hd256 MQA)"
for r in 1 5 7; do
  ROCMFORGE_BENCH_DECODE_ROWS=$r ROCMFORGE_BENCH_ATTN=decode timeout 60 ncu --clock-control none --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,launch__grid_size -k regex:attn_ --launch-skip 20 -c 4 $B > $OUT/a/ncu_r$r.txt 2>&1
  echo "row $r: $(grep -E '^  [a-z_]+attn|gpu__time_duration|dram__throughput|launch__grid_size' $OUT/a/ncu_r$r.txt | awk '{print $1, $NF}' | tr '\n' ' ' | cut -c1-600)"
done
echo "== splits sweep, B=1 rows"
for sp in 8 16 33 66 132 264; do
  ROCMFORGE_DECODE_SPLITS=$sp ROCMFORGE_BENCH_DECODE_ROWS=1,5,7 ROCMFORGE_BENCH_ATTN=decode timeout 60 $B > $OUT/a/sp_$sp.txt 2>&1
  echo "-- splits $sp rc=$?"; grep -E "^decode" $OUT/a/sp_$sp.txt | cut -c1-200
done
echo "== tiles sweep (bn,nwarp,stages)"
for t in "hd128:2,3:16,4,3" "hd128:2,3:32,2,3" "hd128:2,3:16,2,4" "hd128:2,3:32,4,2" "hd64:4:32,4,3" "hd64:4:64,2,2" "hd64:4:32,2,3" "hd64:4:64,4,2" "hd256:6,7:16,2,3" "hd256:6,7:16,4,2" "hd256:6,7:32,2,2" "hd256:6,7:16,2,4"; do
  IFS=: read hd rows tl <<< "$t"
  ROCMFORGE_DECODE_MC_TILES=$tl ROCMFORGE_BENCH_DECODE_ROWS=$rows ROCMFORGE_BENCH_ATTN=decode timeout 60 $B > $OUT/a/t_${hd}_$tl.txt 2>&1
  echo "-- $hd $tl rc=$?"; grep -E "^decode" $OUT/a/t_${hd}_$tl.txt | cut -c1-170
done
echo "== ncu prefill hd256 causal: ours, then torch FA2"
M="--metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active.ratio"
S="--section SpeedOfLight --section WarpStateStats --section InstructionStats --section Occupancy --section LaunchStats"
(cd /tmp && ROCMFORGE_BENCH_ATTN=prefill timeout 100 ncu --clock-control none --kernel-name regex:hd256 --launch-skip 2 --launch-count 1 $S $M $B > $OUT/a/ncu_p256_ours.txt 2>&1)
cat > /tmp/fa2.py <<'PY'
import torch, torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend
q, k, v = (torch.randn(4, 16, 4096, 256, dtype=torch.bfloat16, device="cuda") for _ in range(3))
with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
    for _ in range(3): F.scaled_dot_product_attention(q, k, v, is_causal=True)
torch.cuda.synchronize()
PY
timeout 100 ncu --clock-control none --kernel-name regex:flash --launch-skip 1 --launch-count 1 $S $M python3 /tmp/fa2.py > $OUT/a/ncu_p256_fa2.txt 2>&1
for f in ours fa2; do echo "-- $f"; grep -E "  [a-z_]*(flash|attn)|Duration|Executed Ipc A|Issue Slots Busy|Executed Instructions  |Registers Per|Achieved Occupancy|Theoretical Occ|Warp Cycles Per Issued|Compute \(SM\) Throughput|Dynamic Shared|Block Limit" $OUT/a/ncu_p256_$f.txt | cut -c1-120; grep stalled $OUT/a/ncu_p256_$f.txt | sort -k3 -n -r | head -7; done
cd $OUT && tar czf a.tgz a && rm -rf a
