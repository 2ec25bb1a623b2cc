#!/usr/bin/env bash
# Session 6 call G: the register tile's copy plan computed once per thread (fewer instructions per
# chunk): tests, memcheck, racecheck (one format), the mlp bench before (ec155e4) and after, same call.
python3 -c "import tarfile; tarfile.open('.dev/g.tar.xz').extractall()"
mkdir -p $OUT/g
export RUST_BACKTRACE=1 ROCMFORGE_REQUIRE_GPU=1 ROCMFORGE_CACHE_DIR=/tmp/rc
timeout 200 .gpu/tests/gpu_mlp-test --include-ignored --test-threads=1 qgemm linear > $OUT/g/gpu_mlp.log 2>&1; echo "gpu_mlp rc=$? $(grep -E '^test result' $OUT/g/gpu_mlp.log | cut -c1-90)"; grep -E "panicked|rel err" $OUT/g/gpu_mlp.log | cut -c1-300 | head -5
timeout 100 compute-sanitizer --tool memcheck .gpu/tests/gpu_mlp-test --include-ignored --test-threads=1 qgemm_every_tile 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -3
timeout 150 .gpu/benches/mlp > $OUT/g/mlp_new.txt 2>&1; echo "bench rc=$?"
ROCMFORGE_CACHE_DIR=/tmp/rc_prev timeout 150 .dev/prevmlp > $OUT/g/mlp_prev.txt 2>&1; echo "prev bench rc=$?"
paste <(sed -n '/^W /,/^$/p' $OUT/g/mlp_prev.txt | awk '{print $1, $2, $3, $4}') <(sed -n '/^W /,/^$/p' $OUT/g/mlp_new.txt | awk '{print $4, $6, $7}')
timeout 150 compute-sanitizer --tool racecheck .gpu/tests/gpu_mlp-test --include-ignored --test-threads=1 qgemm_every_tile 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -3
