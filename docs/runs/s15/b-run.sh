# call B: the decode kernels' query rows rotated in registers on several waves (one barrier instead of three) and
# dec_finish over the group's real rows: tests, sanitizer, emulated AMD, then tg128 against HEAD's templates
# (ROCMFORGE_TEMPLATE_DIR=.dev/s15/headtpl, same binary), alternating, and ncu per kernel
python3 -c "import tarfile; tarfile.open('.dev/s15/b.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/b /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge; T=$R/.gpu/tests
export ROCMFORGE_CACHE_DIR=/tmp/rc ROCMFORGE_REQUIRE_GPU=1
$T/gpu_attention-test --include-ignored --test-threads 1 > $OUT/b/gpu_attention.txt 2>&1; echo "gpu_attention rc=$? $(grep 'test result' $OUT/b/gpu_attention.txt)"
for tool in memcheck racecheck; do
  compute-sanitizer --tool $tool $T/gpu_attention-test --include-ignored --test-threads 1 decode_append_small_cases > $OUT/b/san_$tool.txt 2>&1; echo "$tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $OUT/b/san_$tool.txt)"
done
for e in gfx942 gfx1100; do
  ROCMFORGE_EMULATE=$e $T/gpu_attention-test --include-ignored --test-threads 1 decode_append_small_cases decode_small_cases > $OUT/b/emu_$e.txt 2>&1; echo "emu $e rc=$? $(grep 'test result' $OUT/b/emu_$e.txt)"
done
$T/gpu_model-test --include-ignored --test-threads 1 > $OUT/b/gpu_model.txt 2>&1; echo "gpu_model rc=$? $(grep 'test result' $OUT/b/gpu_model.txt)"
$T/gpu_graph-test --include-ignored --test-threads 1 > $OUT/b/gpu_graph.txt 2>&1; echo "gpu_graph rc=$? $(grep 'test result' $OUT/b/gpu_graph.txt)"
unset ROCMFORGE_REQUIRE_GPU
$RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf > $OUT/b/synth.log 2>&1
$RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf >> $OUT/b/synth.log 2>&1
$RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf >> $OUT/b/synth.log 2>&1
B="bench --device cuda --no-early-serve -p 0 -n 128 -r 3"
for m in s g l8; do
  for d in 0 512; do
    for v in new old new old; do
      if [ $v = old ]; then E="ROCMFORGE_TEMPLATE_DIR=$R/.dev/s15/headtpl"; else E="X=1"; fi
      env $E timeout 120 $RF $B /tmp/m/$m.gguf -d $d > $OUT/b/tg_${m}_d${d}_$v.txt 2>&1
      echo "$m d=$d $v rc=$? $(grep tg128 $OUT/b/tg_${m}_d${d}_$v.txt | awk -F'|' '{print $5}')"
    done
  done
done
export ROCMFORGE_GRAPHS=0
N="ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum --print-summary per-kernel -k regex:attn_decode"
for v in new old; do
  if [ $v = old ]; then E="ROCMFORGE_TEMPLATE_DIR=$R/.dev/s15/headtpl"; else E="X=1"; fi
  for m in s g; do
    env $E timeout 120 $N $RF bench /tmp/m/$m.gguf --device cuda --no-early-serve -p 0 -n 2 -d 64 -r 1 > $OUT/b/ncu_${m}_$v.txt 2>&1
    echo "ncu $m $v rc=$? $(grep -A2 '^  rf_attn' $OUT/b/ncu_${m}_$v.txt | grep gpu__time | awk '{print $NF}' | tr '\n' ' ')"
  done
done
cd $OUT && tar czf b.tgz b && rm -rf b
