#!/usr/bin/env bash
# Session 6 call A: qgemm's register tile (mma.sync, bk 256): correctness on every tile, sanitizer,
# the mlp bench new and old (944b3ab) in the same call, ncu of the register tile.
python3 -c "import tarfile; tarfile.open('.dev/a.tar.xz').extractall()"
mkdir -p $OUT/a
export RUST_BACKTRACE=1 ROCMFORGE_REQUIRE_GPU=1 ROCMFORGE_CACHE_DIR=/tmp/rc
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
echo "== tests"
timeout 240 .gpu/tests/gpu_mlp-test --include-ignored --test-threads=1 qgemm linear > $OUT/a/gpu_mlp.log 2>&1; echo "gpu_mlp rc=$? $(grep -E '^test result' $OUT/a/gpu_mlp.log | cut -c1-90)"; grep -E "^test |panicked|rel err" $OUT/a/gpu_mlp.log | cut -c1-300 | head -12
echo "== bench new"
timeout 200 .gpu/benches/mlp > $OUT/a/mlp_new.txt 2>&1; echo "bench rc=$?"; sed -n '/^W /,$p' $OUT/a/mlp_new.txt
echo "== bench old (944b3ab)"
ROCMFORGE_CACHE_DIR=/tmp/rc_old timeout 150 .dev/oldmlp > $OUT/a/mlp_old.txt 2>&1; echo "old bench rc=$?"; sed -n '/^W /,$p' $OUT/a/mlp_old.txt
echo "== sanitizer"
timeout 150 compute-sanitizer --tool memcheck .gpu/tests/gpu_mlp-test --include-ignored --test-threads=1 qgemm_every_tile 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -5
echo "== ncu"
for f in q4_0 q4_K; do (cd /tmp && timeout 120 ncu --clock-control none -k regex:"rf_qgemm_${f}_mma_m64_n64_x4_k256" -c 1 --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats --section LaunchStats --section SchedulerStats $OLDPWD/.gpu/benches/mlp > $OUT/a/ncu_$f.txt 2>&1; echo "ncu $f rc=$?"); grep -E "rf_qgemm|Duration|DRAM Through|Memory Through|Compute \(SM\)|Achieved Occ|Registers Per|Issued Warp|No Eligible|Eligible Warps|Dynamic Shared" $OUT/a/ncu_$f.txt | head -20; done
