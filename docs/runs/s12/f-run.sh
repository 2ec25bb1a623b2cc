# call F: where a SmolLM2 (synthetic, Q4_1) decode step's time goes: ncu per-kernel durations (graphs off, no cache
# flush), and with nsys (if present) the graph's kernels in a real tg run
python3 -c "import tarfile; tarfile.open('.dev/s12f/f.tar.xz').extractall()"
mkdir -p $OUT/f /tmp/m; RF=$PWD/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc
[ -f /tmp/m/s.gguf ] || $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf > /dev/null 2>&1
$RF bench /tmp/m/s.gguf --device cuda --no-early-serve -p 0 -n 128 -r 3 > $OUT/f/warm.txt 2>&1; echo "warm rc=$? $(grep tg128 $OUT/f/warm.txt | awk -F'|' '{print $5}')"
ROCMFORGE_GRAPHS=off timeout 300 ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum,launch__grid_size,launch__block_size --print-summary per-kernel $RF bench /tmp/m/s.gguf --device cuda --no-early-serve -p 0 -n 2 -r 1 > $OUT/f/ncu_summary.txt 2>&1; echo "ncu rc=$?"
grep -E "^  [a-z_]|gpu__time_duration|launch__grid_size|launch__block_size" $OUT/f/ncu_summary.txt | head -120
which nsys && (timeout 200 nsys profile --cuda-graph-trace=node -o /tmp/f_nsys --force-overwrite true $RF bench /tmp/m/s.gguf --device cuda --no-early-serve -p 0 -n 128 -r 1 > $OUT/f/nsys_run.txt 2>&1; echo "nsys rc=$?"; nsys stats --report cuda_gpu_kern_sum --format csv /tmp/f_nsys.nsys-rep > $OUT/f/nsys_kern.csv 2>&1; head -30 $OUT/f/nsys_kern.csv | cut -c1-200; nsys stats --report cuda_gpu_trace --format csv /tmp/f_nsys.nsys-rep > $OUT/f/nsys_trace.csv 2>&1; wc -l $OUT/f/nsys_trace.csv)
cd $OUT && tar czf f.tgz f && rm -rf f
