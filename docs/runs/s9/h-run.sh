python3 -c "import tarfile; tarfile.open('.dev/g/rf.tar.xz').extractall()"
mkdir -p $OUT/h /tmp/m
R=$PWD; RF=$R/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc
[ -f /tmp/m/l8.gguf ] || ( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/h/synth.log 2>&1
for f in s g l8; do
  for cfg in glu on glu2 on2; do
    timeout 120 env ROCMFORGE_FUSE=${cfg%2} $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 0 -n 128 --parallel 1,8 -r 3 > $OUT/h/$f$cfg.txt 2>&1
    echo "$f FUSE=$cfg rc=$? $(grep -E 'tg128' $OUT/h/$f$cfg.txt | awk -F'|' '{print $5 $6}' | tr '\n' ' ')"
  done
done
