# call K: after the review mends (fa: the fused-append default derived from the parsed ROCMFORGE_FUSE): gpu_model
# 4/4, gpu_graph, the decode_append / kv_append tests; tg128 under each fusion setting
python3 -c "import tarfile; tarfile.open('.dev/s12k/k.tar.xz').extractall()"
mkdir -p $OUT/k /tmp/m; RF=$PWD/.gpu/bin/rocmforge; T=$PWD/.gpu/tests
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf ) > $OUT/k/synth.log 2>&1
timeout 200 $T/gpu_attention-test --include-ignored --test-threads=1 decode_append kv_append > $OUT/k/ga.log 2>&1; echo "gpu_attention rc=$? $(grep -E 'test result' $OUT/k/ga.log)"
timeout 100 $T/gpu_graph-test --include-ignored --test-threads=1 > $OUT/k/gg.log 2>&1; echo "gpu_graph rc=$? $(grep -E 'test result' $OUT/k/gg.log)"
ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf timeout 200 $T/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/k/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "cosine min|test result" $OUT/k/gpu_model.log | cut -c1-220
for e in "X=1" "ROCMFORGE_FUSE_APPEND=off" "ROCMFORGE_FUSE=off" "ROCMFORGE_FUSE=glu" "X=1"; do
  env $e timeout 60 $RF bench /tmp/m/s.gguf --device cuda --no-early-serve -p 0 -n 128 -r 3 > $OUT/k/tg.txt 2>&1; echo "$e: $(grep tg128 $OUT/k/tg.txt | awk -F'|' '{print $5}')"
done
cd $OUT && tar czf k.tgz k && rm -rf k
