# call F: gemv_wave_g's shape (the .inst's lanes per group LG, octets a lane a step U, rows a group R; 32 rows a block
# always) and an unrolled loop, as template variants on the same binary (ROCMFORGE_TEMPLATE_DIR):
#   cur LG=W/4 U=2 R=2 (7d8e975) | tA LG=W/4 U=4 R=2 | tB LG=W/2 U=2 R=4 | tC cur with the octet loop unrolled by 2
python3 -c "import tarfile; tarfile.open('.dev/s16/f.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/f /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc
[ -f /tmp/m/s.gguf ] || $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf > $OUT/f/synth.log 2>&1
[ -f /tmp/m/g.gguf ] || $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf >> $OUT/f/synth.log 2>&1
for v in cur tA tB tC; do
  if [ $v = cur ]; then E="X=1"; else E="ROCMFORGE_TEMPLATE_DIR=$R/.dev/s16/$v"; fi
  env $E ROCMFORGE_BENCH_GEMV_SHAPES=49152x576,262144x640 ROCMFORGE_BENCH_GEMV_BATCHES=1 ROCMFORGE_BENCH_GEMV_EVERY=1 timeout 100 .gpu/benches/gemv_q8 q4_1,q8_0,q5_0 > $OUT/f/bench_$v.txt 2>&1; echo "bench $v rc=$?"; grep -E "b1 float" $OUT/f/bench_$v.txt
done
B="bench --device cuda --no-early-serve -p 0 -n 128 -r 3"
for m in s g; do
  for r in 1 2; do for v in cur tA tB tC; do
    if [ $v = cur ]; then E="X=1"; else E="ROCMFORGE_TEMPLATE_DIR=$R/.dev/s16/$v"; fi
    env $E timeout 100 $RF $B /tmp/m/$m.gguf > $OUT/f/tg_${m}_${v}_$r.txt 2>&1
    echo "$m $v rc=$? $(grep tg128 $OUT/f/tg_${m}_${v}_$r.txt | awk -F'|' '{print $5}')"
  done; done
done
cd $OUT && tar czf f.tgz f && rm -rf f
