set -x
python3 -c "import tarfile; tarfile.open('.gpu.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
export PATH=$PATH:/usr/local/cuda/bin
mkdir -p $OUT/b
echo "== call-A kernel (HEAD templates), prefill rows"
ROCMFORGE_BENCH_ATTN=prefill ROCMFORGE_TEMPLATE_DIR=$PWD/.gpu/extra/old/templates timeout 150 .gpu/benches/attention > $OUT/b/old_prefill.txt 2>&1; echo rc=$?; grep prefill $OUT/b/old_prefill.txt | cut -c1-200
echo "== new kernel, full bench"
timeout 240 .gpu/benches/attention > $OUT/b/attention_bench.txt 2>&1; echo rc=$?; grep -vE "^kv_append" $OUT/b/attention_bench.txt | cut -c1-220 | head -70
echo "== tests"
timeout 200 .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 > $OUT/b/gpu_attention.log 2>&1; echo rc=$?; grep -E "^test |test result|FAIL|rel err [0-9.e-]+ \(limit" $OUT/b/gpu_attention.log | head -30
echo "== sanitizer"
timeout 150 compute-sanitizer --tool memcheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 prefill_native_path 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -5
timeout 150 compute-sanitizer --tool racecheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 prefill_native_path 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -5
echo "== ncu new / old (hd128 causal default, one launch)"
R=$PWD
for v in new; do
  td=""; [ $v = old ] && td="ROCMFORGE_TEMPLATE_DIR=$R/.gpu/extra/old/templates"
  (cd /tmp && env $td ROCMFORGE_BENCH_ATTN=prefill timeout 120 ncu --clock-control none --kernel-name regex:attn_prefill --launch-skip 5 --launch-count 1 --section SpeedOfLight --section WarpStateStats --section InstructionStats --section Occupancy --section LaunchStats --section ComputeWorkloadAnalysis --metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active.ratio $R/.gpu/benches/attention > $OUT/b/ncu_$v.txt 2>&1)
  grep -E "attn_prefill|Duration|Executed Ipc A|Issue Slots Busy|Executed Instructions  |No Eligible|Registers Per|Achieved Occupancy|Block Limit Reg|Block Limit Shared|Theoretical Occ|Warp Cycles Per Issued|Compute \(SM\) Throughput" $OUT/b/ncu_$v.txt | head -20
  grep -E "stalled" $OUT/b/ncu_$v.txt | sort -k3 -n -r | head -8
done
