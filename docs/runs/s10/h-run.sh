# call H: where a Llama-3-8B Q4_K_M decode step's time goes (ncu per-kernel durations, graphs off), final code
python3 -c "import tarfile; tarfile.open('.dev/h.tar.xz').extractall()"
mkdir -p $OUT/h /tmp/m
RF=$PWD/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc
$RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf > $OUT/h/synth.log 2>&1; echo "synth rc=$?"
$RF bench /tmp/m/l8.gguf --device cuda --no-early-serve -p 0 -n 2 -r 1 > $OUT/h/warm.txt 2>&1; echo "warm rc=$?"
ROCMFORGE_GRAPHS=off timeout 400 ncu --clock-control none --metrics gpu__time_duration.sum --print-summary per-kernel $RF bench /tmp/m/l8.gguf --device cuda --no-early-serve -p 0 -n 2 -r 1 > $OUT/h/ncu_summary.txt 2>&1; echo "ncu rc=$?"
grep -E "^  [a-z_]|Duration|gpu__time_duration" $OUT/h/ncu_summary.txt | head -80
