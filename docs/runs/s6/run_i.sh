#!/usr/bin/env bash
# Session 6 call I: the tuner with the new qgemm tiles (synthetic SmolLM2 and Gemma 3 270M shapes):
# tune --family qgemm, then bench pp16..pp256 untuned (ROCMFORGE_TUNE=off) vs tuned.
python3 -c "import tarfile; tarfile.open('.dev/i.tar.xz').extractall()"
mkdir -p $OUT/i /tmp/m
RF=$PWD/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc_i
$RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf > /dev/null 2>&1
$RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf > /dev/null 2>&1
for f in s g; do
  timeout 80 $RF tune --model /tmp/m/$f.gguf --family qgemm > $OUT/i/tune_$f.txt 2>&1; echo "tune $f rc=$?"; grep -E "qgemm|swept" $OUT/i/tune_$f.txt | cut -c1-200 | head -12
  ROCMFORGE_TUNE=off timeout 40 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 16,64,128,256 -n 0 -r 5 > $OUT/i/pp_untuned_$f.txt 2>&1; echo "untuned rc=$?"; grep -E "pp[0-9]" $OUT/i/pp_untuned_$f.txt | cut -d'|' -f4,5
  timeout 40 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 16,64,128,256 -n 0 -r 5 > $OUT/i/pp_tuned_$f.txt 2>&1; echo "tuned rc=$?"; grep -E "pp[0-9]" $OUT/i/pp_tuned_$f.txt | cut -d'|' -f4,5
done
