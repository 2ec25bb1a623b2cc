# call I: ncu per kernel of the 8B Q4_0 decode steps, the fused 8-bit path and ROCMFORGE_FUSE_NORM=off (why Q4_0 gains
# three times what Q4_K_M does)
python3 -c "import tarfile; tarfile.open('.dev/s14/g.tar.xz').extractall()"
mkdir -p $OUT/i /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc ROCMFORGE_GRAPHS=0
$RF gguf synth --preset llama-3-8b --type q4_0 --out /tmp/m/l8q40.gguf > $OUT/i/synth.log 2>&1
N="ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum --print-summary per-kernel"
timeout 120 $N $RF bench /tmp/m/l8q40.gguf --device cuda --no-early-serve -p 0 -n 2 -r 1 > $OUT/i/ncu_q40.txt 2>&1; echo "ncu rc=$?"
ROCMFORGE_FUSE_NORM=off timeout 120 $N $RF bench /tmp/m/l8q40.gguf --device cuda --no-early-serve -p 0 -n 2 -r 1 > $OUT/i/ncu_q40_off.txt 2>&1; echo "ncu off rc=$?"
cd $OUT && tar czf i.tgz i && rm -rf i
