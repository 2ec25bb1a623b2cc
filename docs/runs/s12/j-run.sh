# call J: programmatic dependent launch (ROCMFORGE_PDL=1) against the default, tg128 alternating, three synthetic
# models; and hd64 16-key tiles against the rule on SmolLM2 tg128, three rounds
python3 -c "import tarfile; tarfile.open('.dev/s12j/j.tar.xz').extractall()"
mkdir -p $OUT/j /tmp/m; RF=$PWD/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/j/synth.log 2>&1
for f in s g l8; do for round in 1 2; do for v in 0 1; do
  ROCMFORGE_PDL=$v timeout 90 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 0 -n 128 -r 3 > $OUT/j/pdl_${f}_${v}_$round.txt 2>&1
  echo "$f pdl=$v round $round: $(grep tg128 $OUT/j/pdl_${f}_${v}_$round.txt | awk -F'|' '{print $5}')"
done; done; done
for round in 1 2 3; do for tl in rule 16,4,2; do
  T=$tl; [ $tl = rule ] && T=
  ROCMFORGE_DECODE_MC_TILES=$T timeout 90 $RF bench /tmp/m/s.gguf --device cuda --no-early-serve -p 0 -n 128 -r 3 > $OUT/j/t_${tl}_$round.txt 2>&1
  echo "s tiles $tl round $round: $(grep tg128 $OUT/j/t_${tl}_$round.txt | awk -F'|' '{print $5}')"
done; done
cd $OUT && tar czf j.tgz j && rm -rf j
