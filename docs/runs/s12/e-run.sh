# call E: wide decode tiles at hd64 (64-key tiles, 4 waves, 2 stages) on sm_90: checks; attention bench hd64 rows
# and SmolLM2 tg128 (depth 0, 4096), the rule's tiles against the standard set forced, alternating, same call
python3 -c "import tarfile; tarfile.open('.dev/s12e/e.tar.xz').extractall()"
mkdir -p $OUT/e /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge; T=$R/.gpu/tests; B=$R/.gpu/benches/attention
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf ) > $OUT/e/synth.log 2>&1 &
SYN=$!
echo "== gpu_attention decode (all decode tests)"
timeout 300 $T/gpu_attention-test --include-ignored --test-threads=1 --nocapture decode > $OUT/e/ga.log 2>&1; echo rc=$?; grep -E "^test |test result|FAIL|panicked" $OUT/e/ga.log | cut -c1-160 | head -8
echo "== sanitizer (decode_small_cases, decode_append_small_cases)"
timeout 200 compute-sanitizer --tool memcheck $T/gpu_attention-test --include-ignored --test-threads=1 small 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -4
timeout 200 compute-sanitizer --tool racecheck $T/gpu_attention-test --include-ignored --test-threads=1 small 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -4
wait $SYN; echo "synth rc=$?"
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 200 $T/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/e/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "cosine min|panicked|test result" $OUT/e/gpu_model.log | cut -c1-200 | head -8
echo "== hd64 rows: wide (rule) / std forced, three rounds"
export ROCMFORGE_BENCH_PEER=off ROCMFORGE_BENCH_ATTN=decode
for round in 1 2 3; do for v in wide std; do
  case $v in std) TL=32,4,2 ;; *) TL= ;; esac
  ROCMFORGE_DECODE_MC_TILES=$TL ROCMFORGE_BENCH_DECODE_SHAPES=16:4096:32:8:64,1:32768:32:8:64,64:2048:32:8:64,1:4096:9:3:64,1:1024:9:3:64,8:8192:9:3:64 timeout 60 $B > $OUT/e/a_${v}_$round.txt 2>&1
  echo "$v $round: $(grep -E '^decode' $OUT/e/a_${v}_$round.txt | awk '{print $2, $3, $4, $7, $9}' | tr '\n' ' ')"
done; done
echo "== SmolLM2 (synthetic) tg128 at depth 0 and 4096: wide (rule) / std forced, two rounds"
unset ROCMFORGE_BENCH_ATTN
for round in 1 2; do for v in wide std; do
  case $v in std) TL=32,4,2 ;; *) TL= ;; esac
  ROCMFORGE_DECODE_MC_TILES=$TL timeout 120 $RF bench /tmp/m/s.gguf --device cuda --no-early-serve -p 0 -n 128 -d 0,4096 -r 3 > $OUT/e/tg_${v}_$round.txt 2>&1
  echo "$v $round rc=$? $(grep tg128 $OUT/e/tg_${v}_$round.txt | awk -F'|' '{print $4, $5}' | tr '\n' ' ')"
done; done
cd $OUT && tar czf e.tgz e && rm -rf e
