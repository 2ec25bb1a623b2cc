python3 -c "import tarfile; tarfile.open('.gpu.tar.xz').extractall()"
mkdir -p $OUT/h; R=$PWD
M="--metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active.ratio"
S="--section SpeedOfLight --section WarpStateStats --section InstructionStats --section Occupancy --section LaunchStats --section ComputeWorkloadAnalysis"
(cd /tmp && ROCMFORGE_BENCH_ATTN=prefill timeout 100 ncu --clock-control none --kernel-name regex:attn_prefill --launch-skip 5 --launch-count 1 $S $M $R/.gpu/benches/attention > $OUT/h/ncu_ours.txt 2>&1)
cat > /tmp/fa2.py <<'PY'
import torch, torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend
q, k, v = (torch.randn(4, 32, 4096, 128, dtype=torch.bfloat16, device="cuda") for _ in range(3))
with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
    for _ in range(3): F.scaled_dot_product_attention(q, k, v, is_causal=True)
torch.cuda.synchronize()
PY
timeout 100 ncu --clock-control none --kernel-name regex:flash --launch-skip 1 --launch-count 1 $S $M python3 /tmp/fa2.py > $OUT/h/ncu_fa2.txt 2>&1
for f in ours fa2; do echo "== $f"; grep -E "  [a-z_]*(flash|attn)|Duration|Executed Ipc A|Issue Slots Busy|Executed Instructions  |Registers Per|Achieved Occupancy|Warp Cycles Per Issued|Compute \(SM\) Throughput|Dynamic Shared" $OUT/h/ncu_$f.txt | cut -c1-120; grep stalled $OUT/h/ncu_$f.txt | sort -k3 -n -r | head -6; done
