python3 -c "import tarfile; tarfile.open('.dev/g/rf.tar.xz').extractall()"
mkdir -p $OUT/g /tmp/m
R=$PWD; RF=$R/.gpu/bin/rocmforge; OLD=$R/.gpu/extra/rocmforge-old
export ROCMFORGE_CACHE_DIR=/tmp/rc
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/g/synth.log 2>&1
for f in s g l8; do
  for cfg in new old new2 old2; do
    B=$RF; case $cfg in old*) B=$OLD ;; esac
    timeout 120 $B bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 0 -n 128 --parallel 8 -r 3 > $OUT/g/$f$cfg.txt 2>&1
    echo "$f $cfg rc=$? $(grep -E 'tg128' $OUT/g/$f$cfg.txt | cut -c1-150)"
  done
done
