python3 -c "import tarfile; tarfile.open('.dev/d.tar.xz').extractall()"
mkdir -p $OUT/d /tmp/m
R=$PWD; RF=$R/.gpu/bin/rocmforge; OLD=$R/.gpu/extra/rocmforge-old; X=$R/.gpu/extra
export ROCMFORGE_CACHE_DIR=/tmp/rc
[ -f /tmp/m/l8.gguf ] || ( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/d/synth.log 2>&1
ls /tmp/m
for f in s g l8; do
  M=/tmp/m/$f.gguf
  for cfg in old pf4m pf1m pfinf nopf old2 pf4m2 pf1m2 pfinf2 nopf2; do
    case $cfg in
      old*) B=$OLD; E="" ;;
      pf4m*) B=$RF; E="" ;;
      pf1m*) B=$RF; E="ROCMFORGE_TEMPLATE_DIR=$X/tmpl_pf1m" ;;
      pfinf*) B=$RF; E="ROCMFORGE_TEMPLATE_DIR=$X/tmpl_pfinf" ;;
      nopf*) B=$RF; E="ROCMFORGE_TEMPLATE_DIR=$X/tmpl_nopf" ;;
    esac
    env $E timeout 120 $B bench $M --device cuda --no-early-serve -p 0 -n 128 --parallel 1 -r 3 > $OUT/d/$f$cfg.txt 2>&1
    echo "$f $cfg rc=$? $(grep -E 'tg128' $OUT/d/$f$cfg.txt | cut -c1-150)"
  done
done
