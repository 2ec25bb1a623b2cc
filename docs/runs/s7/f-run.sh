python3 -c "import tarfile; tarfile.open('.gpu.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/f
ROCMFORGE_BENCH_ATTN=prefill,sweep timeout 400 .gpu/benches/attention > $OUT/f/attention_bench.txt 2>&1; echo rc=$?
grep -E "^prefill|fastest|nosplit|spills" $OUT/f/attention_bench.txt | cut -c1-150
