# call B: decode attention with page ids read one tile ahead (new = embedded) against the previous
# template (old, ROCMFORGE_TEMPLATE_DIR), same call; checks; end to end against llama.cpp 0c1e570
python3 -c "import tarfile; tarfile.open('.dev/b.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/b /tmp/m
R=$PWD; RF=$R/.gpu/bin/rocmforge; OLD=$R/.dev/tv/atold
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1 ROCMFORGE_BIN=$RF
( bash .dev/f-build-llama-bench.sh .dev/llama.cpp-0c1e570-src.tar.gz /tmp/llama > $OUT/b/llama_build.log 2>&1; echo "build rc=$?" >> $OUT/b/llama_build.log ) &
BUILD=$!
( [ -f /tmp/m/l8.gguf ] || ( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) ) > $OUT/b/synth.log 2>&1 &
SYN=$!
echo "== gpu_attention decode (new)"
timeout 150 .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 decode > $OUT/b/gpu_attention.log 2>&1; echo rc=$?; grep -E "^test |test result|panicked" $OUT/b/gpu_attention.log | cut -c1-200 | head -8
echo "== sanitizer (decode_small_cases)"
timeout 100 compute-sanitizer --tool memcheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 decode_small 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -4
timeout 100 compute-sanitizer --tool racecheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 decode_small 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -4
wait $SYN; echo "synth rc=$?"
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 150 .gpu/tests/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/b/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "cosine min|panicked|test result" $OUT/b/gpu_model.log | cut -c1-200 | head -8
echo "== ncu B=16 hd128 (new)"
ROCMFORGE_BENCH_DECODE_ROWS=2 ROCMFORGE_BENCH_ATTN=decode timeout 100 ncu --clock-control none --section SpeedOfLight --section WarpStateStats --section Occupancy -k regex:attn_decode_mc --launch-skip 5 -c 1 .gpu/benches/attention > $OUT/b/ncu_b16.txt 2>&1; echo rc=$?
grep -E "Duration|DRAM Throughput|Achieved Occupancy|Registers Per|Warp Cycles Per Issued" $OUT/b/ncu_b16.txt | head -6
wait $BUILD; tail -1 $OUT/b/llama_build.log
echo "== decode bench new / old / new / old"
for v in new old new2 old2; do
  case $v in old*) D=$OLD ;; *) D="" ;; esac
  ROCMFORGE_TEMPLATE_DIR=$D ROCMFORGE_BENCH_ATTN=decode timeout 80 .gpu/benches/attention > $OUT/b/att_$v.txt 2>&1; echo "$v rc=$?"
done
LB=/tmp/llama/bin/llama-bench
echo "== tg128: ours then llama.cpp, twice (synthetic SmolLM2 Q4_1, Gemma 3, Llama-3-8B shapes)"
for f in s s g l8; do
  timeout 60 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 0 -n 128 -r 3 > $OUT/b/ours_$f.txt 2>&1; echo "ours $f rc=$? $(grep tg128 $OUT/b/ours_$f.txt | awk -F'|' '{print $5}')"
  timeout 60 $LB -m /tmp/m/$f.gguf -fa 1 -p 0 -n 128 -r 3 > $OUT/b/llama_$f.txt 2>&1; echo "llama $f rc=$? $(grep tg128 $OUT/b/llama_$f.txt | awk -F'|' '{print $9}')"
done
echo "== decode rows"
for v in new old new2 old2; do echo "-- $v"; grep -E "^decode" $OUT/b/att_$v.txt | cut -c1-200; done
