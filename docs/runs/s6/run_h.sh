#!/usr/bin/env bash
# Session 6 call H: the AMD register tile (MFMA / WMMA) run emulated (ROCMFORGE_EMULATE) for gfx942,
# gfx1100 and gfx1200, in parallel; the NVIDIA qgemm tests once more.
python3 -c "import tarfile; tarfile.open('.dev/h.tar.xz').extractall()"
mkdir -p $OUT/h
export RUST_BACKTRACE=1 ROCMFORGE_REQUIRE_GPU=1
for t in gfx942 gfx1100 gfx1200; do
  (ROCMFORGE_EMULATE=$t ROCMFORGE_CACHE_DIR=/tmp/emu-$t timeout 230 .gpu/tests/gpu_mlp-test --include-ignored --test-threads=1 qgemm linear > $OUT/h/emu_$t.log 2>&1; echo "$t rc=$? $(grep -E '^test result' $OUT/h/emu_$t.log | cut -c1-80)"; grep -E "panicked|rel err" $OUT/h/emu_$t.log | cut -c1-250 | head -4) &
done
ROCMFORGE_CACHE_DIR=/tmp/rc timeout 200 .gpu/tests/gpu_mlp-test --include-ignored --test-threads=1 qgemm linear > $OUT/h/nv.log 2>&1; echo "nvidia rc=$? $(grep -E '^test result' $OUT/h/nv.log | cut -c1-80)"
wait
