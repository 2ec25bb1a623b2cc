# call H: after the review mends (one resid_norm helper in the model, the gemv_norm test's error cases through a closure)
python3 -c "import tarfile; tarfile.open('.dev/s13/h.tar.xz').extractall()"
mkdir -p $OUT/h /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge; T=$R/.gpu/tests
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf ) > $OUT/h/synth.log 2>&1 &
timeout 100 $T/gpu_glue-test --include-ignored --test-threads=1 > $OUT/h/glue.log 2>&1; echo "gpu_glue rc=$? $(grep 'test result' $OUT/h/glue.log)"
wait; export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 150 $T/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/h/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "cosine min|panicked|test result" $OUT/h/gpu_model.log | cut -c1-220 | head -6
cd $OUT && tar czf h.tgz h && rm -rf h
