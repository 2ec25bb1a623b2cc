#!/usr/bin/env bash
# Session 6 call C: register tile v3 (x deinterleaved in shared memory, ldmatrix B fragments): tests, sanitizer, bench, ncu.
python3 -c "import tarfile; tarfile.open('.dev/c.tar.xz').extractall()"
mkdir -p $OUT/c
export RUST_BACKTRACE=1 ROCMFORGE_REQUIRE_GPU=1 ROCMFORGE_CACHE_DIR=/tmp/rc
echo "== tests"
timeout 240 .gpu/tests/gpu_mlp-test --include-ignored --test-threads=1 qgemm linear > $OUT/c/gpu_mlp.log 2>&1; echo "gpu_mlp rc=$? $(grep -E '^test result' $OUT/c/gpu_mlp.log | cut -c1-90)"; grep -E "^test |panicked|rel err" $OUT/c/gpu_mlp.log | cut -c1-300 | head -12
echo "== bench"
timeout 200 .gpu/benches/mlp > $OUT/c/mlp_new.txt 2>&1; echo "bench rc=$?"; sed -n '/^W /,$p' $OUT/c/mlp_new.txt
echo "== ncu"
for k in q4_0_mma_m64_n32_x8 q4_K_mma_m64_n64_x8; do (cd /tmp && timeout 120 ncu --clock-control none -k regex:"rf_qgemm_${k}_k256" -c 1 --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats --section LaunchStats --section SchedulerStats --section InstructionStats $OLDPWD/.gpu/benches/mlp > $OUT/c/ncu_$k.txt 2>&1; echo "ncu $k rc=$?"); grep -E "rf_qgemm|Duration|DRAM Through|Memory Through|Compute \(SM\)|Achieved Occ|Registers Per|Issued Warp|No Eligible|Eligible Warps|Dynamic Shared|Executed Instructions  |Warp Cycles Per Issued" $OUT/c/ncu_$k.txt | head -20; done
