[ -d .gpu ] || python3 -c "import tarfile; tarfile.open('.dev/a.tar.xz').extractall()"
mkdir -p $OUT/c
R=$PWD; RF=$R/.gpu/bin/rocmforge; OLD=$R/.gpu/extra/rocmforge-old; NOPF=$R/.gpu/extra/tmpl_nopf
export ROCMFORGE_CACHE_DIR=/tmp/rc
ls /tmp/m
for f in s g l8; do
  M=/tmp/m/$f.gguf
  for cfg in old new nopf old2 new2 nopf2; do
    case $cfg in
      old*) B=$OLD; E="" ;;
      new*) B=$RF; E="" ;;
      nopf*) B=$RF; E="ROCMFORGE_TEMPLATE_DIR=$NOPF" ;;
    esac
    env $E timeout 120 $B bench $M --device cuda --no-early-serve -p 0 -n 128 --parallel 1 -r 3 > $OUT/c/$f$cfg.txt 2>&1
    echo "$f $cfg rc=$? $(grep -E 'tg128' $OUT/c/$f$cfg.txt | cut -c1-150)"
  done
done
