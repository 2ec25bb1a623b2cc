# call G: the norm form's sums and the residual epilogue's loads issued at the start by volatile loads, summed after
# the main loop (.dev/s14/tvol template) against HEAD (1/rms before the loop), tg128 of the 8B shapes, alternating
python3 -c "import tarfile; tarfile.open('.dev/s14/g.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/g /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge; TV=$R/.dev/s14/tvol
export ROCMFORGE_CACHE_DIR=/tmp/rc
$RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf > $OUT/g/synth.log 2>&1 && $RF gguf synth --preset llama-3-8b --type q4_0 --out /tmp/m/l8q40.gguf >> $OUT/g/synth.log 2>&1
for f in l8 l8q40; do
  for v in head vol head vol; do
    if [ $v = vol ]; then E="ROCMFORGE_TEMPLATE_DIR=$TV"; else E="X=1"; fi
    env $E timeout 120 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 0 -n 128 -r 3 > $OUT/g/tg_${f}_$v.txt 2>&1
    echo "$f $v rc=$? $(grep tg128 $OUT/g/tg_${f}_$v.txt | awk -F'|' '{print $5}')"
  done
done
ROCMFORGE_GRAPHS=0 ROCMFORGE_TEMPLATE_DIR=$TV timeout 100 ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum --print-summary per-kernel $RF bench /tmp/m/l8.gguf --device cuda --no-early-serve -p 0 -n 2 -r 1 > $OUT/g/ncu_l8_vol.txt 2>&1; echo "ncu rc=$?"
cd $OUT && tar czf g.tgz g && rm -rf g
