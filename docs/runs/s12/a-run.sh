# call A: RoPE + KV append fused into the decode attention launch. Checks (new test, sanitizer, emulated AMD,
# gpu_model); the decode kernel without append new vs HEAD's templates (attention bench); tg128 fused on/off.
python3 -c "import tarfile; tarfile.open('.dev/s12/a.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/a /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge; T=$R/.gpu/tests; B=$R/.gpu/benches/attention
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/a/synth.log 2>&1 &
SYN=$!
echo "== gpu_attention decode_append (full), small, decode_small, kv_append"
timeout 300 $T/gpu_attention-test --include-ignored --test-threads=1 --nocapture decode_append > $OUT/a/ga_append.log 2>&1; echo rc=$?; grep -E "^test |test result|FAIL|panicked" $OUT/a/ga_append.log | cut -c1-220 | head -12
timeout 200 $T/gpu_attention-test --include-ignored --test-threads=1 decode_small kv_append > $OUT/a/ga_small.log 2>&1; echo rc=$?; grep -E "^test |test result|panicked" $OUT/a/ga_small.log | cut -c1-200 | head -6
echo "== sanitizer (decode_append_small_cases)"
timeout 200 compute-sanitizer --tool memcheck $T/gpu_attention-test --include-ignored --test-threads=1 decode_append_small 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -4
timeout 200 compute-sanitizer --tool racecheck $T/gpu_attention-test --include-ignored --test-threads=1 decode_append_small 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -4
echo "== emulated AMD decode_append_small_cases"
for e in gfx942 gfx1100; do ROCMFORGE_EMULATE=$e timeout 200 $T/gpu_attention-test --include-ignored --test-threads=1 --nocapture decode_append_small > $OUT/a/emu_$e.log 2>&1; echo "$e rc=$? $(grep -E 'test result' $OUT/a/emu_$e.log)"; grep -E "FAIL|panicked" $OUT/a/emu_$e.log | head -3; done
wait $SYN; echo "synth rc=$?"
export ROCMFORGE_TEST_SMOLLM2=/tmp/m/s.gguf ROCMFORGE_TEST_GEMMA=/tmp/m/g.gguf
timeout 200 $T/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu gpu_q8_decode gpu_batched > $OUT/a/gpu_model.log 2>&1; echo "gpu_model rc=$?"; grep -E "cosine min|panicked|test result" $OUT/a/gpu_model.log | cut -c1-200 | head -8
echo "== tg128, fused append on / off alternating"
for f in s g l8; do
  for v in on off on off; do
    ROCMFORGE_FUSE_APPEND=$v timeout 90 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 0 -n 128 -r 3 > $OUT/a/tg_${f}_$v.txt 2>&1
    echo "$f $v rc=$? $(grep tg128 $OUT/a/tg_${f}_$v.txt | awk -F'|' '{print $5}')"
  done
done
echo "== tg128 at depth 4096 (SmolLM2, 8B), on / off"
for f in s l8; do for v in on off; do
  ROCMFORGE_FUSE_APPEND=$v timeout 90 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 0 -n 128 -d 4096 -r 3 > $OUT/a/tgd_${f}_$v.txt 2>&1
  echo "$f d4096 $v rc=$? $(grep tg128 $OUT/a/tgd_${f}_$v.txt | awk -F'|' '{print $5}')"
done; done
echo "== decode kernel (no append) new vs HEAD templates, peer off"
export ROCMFORGE_BENCH_PEER=off
for v in new old new2 old2; do
  case $v in old*) TD=$R/.dev/s12/tpl_head ;; *) TD= ;; esac
  ROCMFORGE_TEMPLATE_DIR=$TD ROCMFORGE_BENCH_ATTN=decode timeout 120 $B > $OUT/a/dec_$v.txt 2>&1; echo "-- $v rc=$?"; grep -E "^decode" $OUT/a/dec_$v.txt | cut -c1-200
done
cd $OUT && tar czf a.tgz a && rm -rf a
