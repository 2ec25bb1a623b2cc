#!/usr/bin/env bash
# Session 6 call J: qgemm mma instances with __launch_bounds__(threads, 2) (no stack frames): qgemm test,
# the mlp bench before (9db9e41) and after in one call, the tuner on SmolLM2 (q4_1 m32 no longer rejected).
python3 -c "import tarfile; tarfile.open('.dev/j.tar.xz').extractall()"
mkdir -p $OUT/j /tmp/m
export RUST_BACKTRACE=1 ROCMFORGE_REQUIRE_GPU=1 ROCMFORGE_CACHE_DIR=/tmp/rc
timeout 60 .gpu/tests/gpu_mlp-test --include-ignored --test-threads=1 qgemm_every_tile > $OUT/j/gpu_mlp.log 2>&1; echo "gpu_mlp rc=$? $(grep -E '^test result' $OUT/j/gpu_mlp.log | cut -c1-90)"
timeout 55 .gpu/benches/mlp > $OUT/j/mlp_new.txt 2>&1; echo "bench rc=$?"
ROCMFORGE_CACHE_DIR=/tmp/rc_prev timeout 55 .dev/prevmlp2 > $OUT/j/mlp_prev.txt 2>&1; echo "prev bench rc=$?"
paste <(sed -n '/^W /,/^$/p' $OUT/j/mlp_prev.txt | awk '{print $1, $2, $3, $4}') <(sed -n '/^W /,/^$/p' $OUT/j/mlp_new.txt | awk '{print $4, $6, $7}')
.gpu/bin/rocmforge gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf > /dev/null 2>&1
ROCMFORGE_CACHE_DIR=/tmp/rc_t timeout 25 .gpu/bin/rocmforge tune --model /tmp/m/s.gguf --family qgemm 2>&1 | grep -E "M16|M128|M256|M1024|rejected|swept" | head -10
