# call H2 (after H, the same with --cache-control none): where a Llama-3-8B Q4_K_M decode step's time goes (ncu per-kernel durations, graphs off), final code
python3 -c "import tarfile; tarfile.open('.dev/h.tar.xz').extractall()"
mkdir -p $OUT/h /tmp/m
RF=$PWD/.gpu/bin/rocmforge
[ -f /tmp/m/l8.gguf ] || $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf > /dev/null 2>&1
export ROCMFORGE_CACHE_DIR=/tmp/rc
ROCMFORGE_GRAPHS=off timeout 400 ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum --print-summary per-kernel $RF bench /tmp/m/l8.gguf --device cuda --no-early-serve -p 0 -n 2 -r 1 > $OUT/h/ncu_summary_nocacheflush.txt 2>&1; echo "ncu rc=$?"
grep -E "^  [a-z_]|Duration|gpu__time_duration" $OUT/h/ncu_summary_nocacheflush.txt | head -80
grep -E "tg" $OUT/h/ncu_summary_nocacheflush.txt | tail -2
