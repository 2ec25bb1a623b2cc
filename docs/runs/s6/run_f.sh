#!/usr/bin/env bash
# Session 6 call F: end to end short prompts with serving-while-compiling off (--no-early-serve) and a
# warm cache: new (built-in thresholds), new with the fused qgemm at every size, old (944b3ab).
python3 -c "import tarfile; tarfile.open('.dev/f.tar.xz').extractall()"
mkdir -p $OUT/f /tmp/m
RF=$PWD/.gpu/bin/rocmforge; OLD=$PWD/.dev/oldrf
export ROCMFORGE_CACHE_DIR=/tmp/rc
[ -f /tmp/m/l8k.gguf ] || $RF gguf synth --preset llama-3-8b --type q4_k_m --out /tmp/m/l8k.gguf > /dev/null 2>&1
[ -f /tmp/m/s.gguf ] || $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf > /dev/null 2>&1
ls /tmp/m
P=16,32,48,64,128,256,512
for f in s l8k; do
  timeout 100 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p $P -n 0 -r 5 > $OUT/f/pp_new_$f.txt 2>&1; echo "new $f rc=$?"; grep -E "pp[0-9]" $OUT/f/pp_new_$f.txt | cut -d'|' -f4,5
  ROCMFORGE_PREFILL_BLAS_MIN=100000 timeout 100 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p $P -n 0 -r 5 > $OUT/f/pp_fused_$f.txt 2>&1; echo "new fused-only $f rc=$?"; grep -E "pp[0-9]" $OUT/f/pp_fused_$f.txt | cut -d'|' -f4,5
  ROCMFORGE_CACHE_DIR=/tmp/rc_old timeout 100 $OLD bench /tmp/m/$f.gguf --device cuda --no-early-serve -p $P -n 0 -r 5 > $OUT/f/pp_old_$f.txt 2>&1; echo "old $f rc=$?"; grep -E "pp[0-9]" $OUT/f/pp_old_$f.txt | cut -d'|' -f4,5
done
