# call B: llama.cpp 0c1e570 built in the call; ncu per kernel of a SmolLM2 decode step (fused norms) while it builds;
# then ours and llama.cpp on the same files: pp512, tg128
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
python3 -c "import tarfile; tarfile.open('.dev/s13/a.tar.xz').extractall()"
mkdir -p $OUT/b; R=$PWD; RF=$R/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc
ls /tmp/m
( bash .dev/s13/f-build-llama-bench.sh .dev/llama.cpp-0c1e570-src.tar.gz /tmp/llama > $OUT/b/llama_build.log 2>&1; echo "build rc=$?" >> $OUT/b/llama_build.log ) &
BUILD=$!
( $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/b/synth.log 2>&1 &
SYN=$!
echo "== ncu: SmolLM2 decode steps, fused norms on / off (graphs off)"
for v in on off; do
ROCMFORGE_FUSE_NORM=$v ROCMFORGE_GRAPHS=off timeout 150 ncu --clock-control none --metrics gpu__time_duration.sum --print-summary per-kernel $RF bench /tmp/m/smollm2-135m-instruct-q4_1.gguf --device cuda --no-early-serve -p 0 -n 2 -r 1 > $OUT/b/ncu_$v.txt 2>&1; echo "ncu $v rc=$?"
done
wait $SYN; echo "synth rc=$?"
wait $BUILD; tail -1 $OUT/b/llama_build.log
LB=/tmp/llama/bin/llama-bench
echo "== ours then llama.cpp: pp512, tg128"
for f in smollm2-135m-instruct-q4_1 g l8; do
  timeout 150 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 512 -n 128 -r 3 > $OUT/b/ours_$f.txt 2>&1; echo "ours $f rc=$?"; grep -E "^\| " $OUT/b/ours_$f.txt | tail -2
  timeout 150 $LB -m /tmp/m/$f.gguf -fa 1 -p 512 -n 128 -r 3 > $OUT/b/llama_$f.txt 2>&1; echo "llama $f rc=$?"; grep -E "pp512|tg128" $OUT/b/llama_$f.txt | awk -F'|' '{print $(NF-2), $(NF-1)}'
done
cd $OUT && tar czf b.tgz b && rm -rf b
