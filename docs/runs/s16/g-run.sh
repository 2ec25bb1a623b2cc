# call G: gemv_wave_g with rf_gemv_groups (half-wave groups of 4 rows for 8-bit-and-wider formats; this commit): the gemv
# test over every format, memcheck on q8_0/f16, the gemv bench at the output shapes, tg128 against 6a50388's binary
python3 -c "import tarfile; tarfile.open('.dev/s16/g.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/g /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge; T=$R/.gpu/tests; OLD=$R/.dev/s16/head/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc
( [ -f /tmp/m/s.gguf ] || $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf; [ -f /tmp/m/g.gguf ] || $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf ) > $OUT/g/synth.log 2>&1
ROCMFORGE_REQUIRE_GPU=1 timeout 150 $T/gpu_quantized-test --include-ignored --test-threads 1 gemv_every_format_random > $OUT/g/gemv.txt 2>&1; echo "gemv rc=$? $(grep 'test result' $OUT/g/gemv.txt)"; grep -A4 panicked $OUT/g/gemv.txt | head -8
ROCMFORGE_REQUIRE_GPU=1 ROCMFORGE_TEST_FORMATS=q8_0,f16 timeout 100 compute-sanitizer --tool memcheck $T/gpu_quantized-test --include-ignored --test-threads 1 gemv_every_format_random > $OUT/g/san_memcheck.txt 2>&1; echo "memcheck rc=$? $(grep -E 'ERROR SUMMARY|test result' $OUT/g/san_memcheck.txt | tr '\n' ' ')"
ROCMFORGE_BENCH_GEMV_SHAPES=49152x576,262144x640 ROCMFORGE_BENCH_GEMV_BATCHES=1 ROCMFORGE_BENCH_GEMV_EVERY=1 timeout 100 .gpu/benches/gemv_q8 q4_1,q8_0,q5_0 > $OUT/g/bench.txt 2>&1; echo "bench rc=$?"; grep -E "b1 float" $OUT/g/bench.txt
B="bench --device cuda --no-early-serve -p 0 -n 128 -r 3"
for m in s g; do
  for r in 1 2; do for v in new old; do
    if [ $v = old ]; then X=$OLD; else X=$RF; fi
    timeout 100 $X $B /tmp/m/$m.gguf > $OUT/g/tg_${m}_${v}_$r.txt 2>&1
    echo "$m $v rc=$? $(grep tg128 $OUT/g/tg_${m}_${v}_$r.txt | awk -F'|' '{print $5}')"
  done; done
done
cd $OUT && tar czf g.tgz g && rm -rf g
