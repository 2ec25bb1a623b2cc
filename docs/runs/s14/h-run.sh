# call H: the SIMT decode kernel's splits on the 8B (Q4_K_M): the rule (4 splits at a 256-token bucket + the merge
# launch) against ROCMFORGE_DECODE_SPLITS=1/2 and the in-launch merge (ROCMFORGE_FUSE=merge keeps the other fusions
# off, so ROCMFORGE_FUSE=on), tg128 at depths 0 and 1024, alternating
python3 -c "import tarfile; tarfile.open('.dev/s14/g.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/h /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc
$RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf > $OUT/h/synth.log 2>&1
for d in 0 1024; do
  for v in rule s1 s2 merge rule s1 s2 merge; do
    case $v in rule) E="X=1";; s1) E="ROCMFORGE_DECODE_SPLITS=1";; s2) E="ROCMFORGE_DECODE_SPLITS=2";; merge) E="ROCMFORGE_FUSE=on";; esac
    env $E timeout 120 $RF bench /tmp/m/l8.gguf --device cuda --no-early-serve -p 0 -n 128 -d $d -r 3 > $OUT/h/tg_d${d}_$v.txt 2>&1
    echo "d=$d $v rc=$? $(grep tg128 $OUT/h/tg_d${d}_$v.txt | awk -F'|' '{print $5}')"
  done
done
cd $OUT && tar czf h.tgz h && rm -rf h
