# call B: the merge spread over column chunks, wide decode tiles on sm_90 (hd128/256); checks; new vs old
# (call A's binary) decode bench, same call; splits sweep with the new merge
python3 -c "import tarfile; tarfile.open('.dev/s11/b.tar.xz').extractall()"
mkdir -p $OUT/b /tmp/m; R=$PWD; B=$R/.gpu/benches/attention; OLD=$R/.dev/s11/attention-old; RF=$R/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf ) > $OUT/b/synth.log 2>&1 &
SYN=$!
echo "== gpu_attention decode"
timeout 200 .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 decode > $OUT/b/gpu_attention.log 2>&1; echo rc=$?; grep -E "^test |test result|panicked" $OUT/b/gpu_attention.log | cut -c1-200 | head -8
echo "== sanitizer (decode_small_cases)"
timeout 150 compute-sanitizer --tool memcheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 decode_small 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -4
timeout 150 compute-sanitizer --tool racecheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 decode_small 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -4
echo "== emulated AMD decode_small_cases"
for e in gfx942 gfx1100; do ROCMFORGE_EMULATE=$e timeout 150 .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 decode_small > $OUT/b/emu_$e.log 2>&1; echo "$e rc=$? $(grep -E 'test result' $OUT/b/emu_$e.log)"; done
wait $SYN; echo "synth rc=$?"
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 150 .gpu/tests/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/b/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "cosine min|panicked|test result" $OUT/b/gpu_model.log | cut -c1-200 | head -8
echo "== decode bench new / old / new / old (torch in each)"
for v in new old new2 old2; do
  case $v in old*) X=$OLD ;; *) X=$B ;; esac
  ROCMFORGE_BENCH_ATTN=decode timeout 120 $X > $OUT/b/dec_$v.txt 2>&1; echo "-- $v rc=$?"; grep -E "^decode" $OUT/b/dec_$v.txt | cut -c1-250
done
export ROCMFORGE_BENCH_PEER=off
echo "== ncu kernel durations, B=1 rows (new)"
for r in 1 5 7; do
  ROCMFORGE_BENCH_DECODE_ROWS=$r ROCMFORGE_BENCH_ATTN=decode timeout 60 ncu --clock-control none --metrics gpu__time_duration.sum,launch__grid_size -k regex:attn_ --launch-skip 20 -c 2 $B > $OUT/b/ncu_r$r.txt 2>&1
  echo "row $r: $(grep -E '^  [a-z_]+attn|gpu__time_duration|launch__grid_size' $OUT/b/ncu_r$r.txt | awk '{print $1, $NF}' | tr '\n' ' ' | cut -c1-400)"
done
echo "== splits sweep, B=1 rows, B=16 rows (new)"
for sp in 32 64 128 256; do
  ROCMFORGE_DECODE_SPLITS=$sp ROCMFORGE_BENCH_DECODE_ROWS=1,5,7 ROCMFORGE_BENCH_ATTN=decode timeout 60 $B > $OUT/b/sp_$sp.txt 2>&1
  echo "-- splits $sp rc=$?"; grep -E "^decode" $OUT/b/sp_$sp.txt | cut -c1-30,45-80,128-200
done
cd $OUT && tar czf b.tgz b && rm -rf b
