python3 -c "import tarfile; tarfile.open('.dev/q/q.tar.xz').extractall()"
cat /tmp/m/smol.part00 /tmp/m/smol.part01 /tmp/m/smol.part02 > /tmp/m/smollm2-135m-instruct-q4_1.gguf && rm -f /tmp/m/smol.part0*
export ROCMFORGE_CACHE_DIR=/tmp/rc ROCMFORGE_MODEL_DIR=/tmp/m
for v in old new; do
  timeout 200 .gpu/gpu_model-$v --include-ignored --test-threads=1 --nocapture gpu_q8_decode > $OUT/q8_$v.log 2>&1; echo "$v rc=$?"; grep -E "cosine min|panicked|test result" $OUT/q8_$v.log | cut -c1-220
done
