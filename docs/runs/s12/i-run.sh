# call I: the final code's other GPU tests (graph capture of decode steps with the fused append, smoke, glue, sampling,
# emulation) and the whole gpu_attention suite
python3 -c "import tarfile; tarfile.open('.dev/s12i/i.tar.xz').extractall()"
mkdir -p $OUT/i; T=$PWD/.gpu/tests
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1 ROCMFORGE_BIN=$PWD/.gpu/bin/rocmforge ROCMFORGE_REQUIRE_GPU=1
for t in gpu_graph gpu_smoke gpu_glue gpu_sampling gpu_emulate gpu_attention; do
  timeout 300 $T/$t-test --include-ignored --test-threads=1 > $OUT/i/$t.log 2>&1; echo "$t rc=$? $(grep -E 'test result' $OUT/i/$t.log)"; grep -E "panicked|FAIL" $OUT/i/$t.log | head -3
done
cd $OUT && tar czf i.tgz i && rm -rf i
