[ -d .gpu ] || python3 -c "import tarfile; tarfile.open('.dev/a.tar.xz').extractall()"
mkdir -p $OUT/b /tmp/m
R=$PWD; RF=$R/.gpu/bin/rocmforge; OLD=$R/.gpu/extra/rocmforge-old; NOPF=$R/.gpu/extra/tmpl_nopf
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
ls /tmp/m
echo "== tg128 (old = d213589; new; new + PDL; new + PDL without the prefetch)"
for f in s g l8; do
  M=/tmp/m/$f.gguf
  for cfg in old new pdl pdl_nopf new2 pdl2; do
    case $cfg in
      old) B=$OLD; E="" ;;
      new|new2) B=$RF; E="" ;;
      pdl|pdl2) B=$RF; E="ROCMFORGE_PDL=1" ;;
      pdl_nopf) B=$RF; E="ROCMFORGE_PDL=1 ROCMFORGE_TEMPLATE_DIR=$NOPF" ;;
    esac
    env $E timeout 120 $B bench $M --device cuda --no-early-serve -p 0 -n 128 --parallel 1 -r 3 > $OUT/b/tg_${f}_$cfg.txt 2>&1
    echo "$f $cfg rc=$? $(grep -E 'tg128' $OUT/b/tg_${f}_$cfg.txt | cut -c1-150)"
  done
done
echo "== decode crossover: short contexts, plan kernel vs SIMT"
ROCMFORGE_BENCH_ATTN=decode ROCMFORGE_BENCH_DECODE_SHAPES="1:64:4:1:256,1:128:4:1:256,1:256:4:1:256,1:512:4:1:256,1:1024:4:1:256,1:2048:4:1:256,1:4096:4:1:256,8:128:4:1:256,8:512:4:1:256,1:64:9:3:64,1:256:9:3:64,1:1024:9:3:64,1:256:32:8:128,1:1024:32:8:128" timeout 200 .gpu/benches/attention > $OUT/b/crossover.txt 2>&1; echo rc=$?; grep -E "^decode|copy" $OUT/b/crossover.txt | cut -c1-230
