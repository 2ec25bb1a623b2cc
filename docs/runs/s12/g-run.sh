# call G: SmolLM2 (synthetic) decode attention at short contexts: ncu durations of the attention kernels per
# configuration (HEAD: fused append, standard tiles), and tg128 for each
python3 -c "import tarfile; tarfile.open('.dev/s12g/g.tar.xz').extractall()"
mkdir -p $OUT/g /tmp/m; RF=$PWD/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc
[ -f /tmp/m/s.gguf ] || $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf > /dev/null 2>&1
for cfg in "base" "ROCMFORGE_FUSE_APPEND=off" "ROCMFORGE_DECODE=simt" "ROCMFORGE_DECODE=simt ROCMFORGE_FUSE_APPEND=off" "ROCMFORGE_DECODE_MC_TILES=32,2,2" "ROCMFORGE_DECODE_MC_TILES=16,4,2" "ROCMFORGE_DECODE_MC_TILES=16,2,2"; do
  E=""; [ "$cfg" != base ] && E="$cfg"
  n=$(echo "$cfg" | tr ' =,' '___')
  env $E $RF bench /tmp/m/s.gguf --device cuda --no-early-serve -p 0 -n 128 -r 3 > $OUT/g/tg_$n.txt 2>&1
  env $E ROCMFORGE_GRAPHS=off timeout 120 ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum --print-summary per-kernel -k regex:"attn|kv_append" $RF bench /tmp/m/s.gguf --device cuda --no-early-serve -p 0 -n 2 -r 1 > $OUT/g/ncu_$n.txt 2>&1
  echo "$cfg: tg128 $(grep tg128 $OUT/g/tg_$n.txt | awk -F'|' '{print $5}') | $(grep -E '^  rf_|gpu__time_duration' $OUT/g/ncu_$n.txt | awk '/^  rf_/{k=$1} /gpu__time/{print k, $(NF)}' | tr '\n' ' ')"
done
cd $OUT && tar czf g.tgz g && rm -rf g
