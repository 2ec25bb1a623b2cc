# call C: the copy with one source pointer a thread and the tile base loaded ahead (every pipelined tile
# loop), hd256 on one K/V stage by default: tests, sanitizers, bench rows new vs old templates (HEAD's
# attn_prefill.hip, hd256 forced to its old 64x32 two-stage tiles) two rounds, hd256 sweep, accuracy,
# end to end pp512 (synthetic Gemma 3 270M: hd256; SmolLM2: hd64) new vs old
python3 -c "import tarfile; tarfile.open('.dev/s17/c.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/c /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge; T=$R/.gpu/tests; B=$R/.gpu/benches/attention
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
OLD="ROCMFORGE_TEMPLATE_DIR=$R/.dev/s17/old_tl ROCMFORGE_ATTN_TILES=hd256:64,32,4,1,0,0,0"
( $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf ) > $OUT/c/synth.log 2>&1 &
SYN=$!
ROCMFORGE_REQUIRE_GPU=1 timeout 200 $T/gpu_attention-test --include-ignored --test-threads 1 prefill > $OUT/c/gpu_attention.txt 2>&1; echo "gpu_attention rc=$? $(grep 'test result' $OUT/c/gpu_attention.txt)"; grep -E "panicked|FAIL" $OUT/c/gpu_attention.txt | head -5
for tool in memcheck racecheck; do
  timeout 150 compute-sanitizer --tool $tool $T/gpu_attention-test --include-ignored --test-threads 1 prefill_native_path > $OUT/c/san_$tool.txt 2>&1; echo "$tool defaults rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|test result' $OUT/c/san_$tool.txt | tr '\n' ' ')"
done
ROCMFORGE_ATTN_TILES='hd128:128,64,4,2,0,0,1,1;hd64:128,64,4,2,0,0,1,1;hd80:128,64,4,2,0,0,1,1' timeout 150 compute-sanitizer --tool racecheck $T/gpu_attention-test --include-ignored --test-threads 1 prefill_native_path > $OUT/c/san_racecheck_kv1.txt 2>&1; echo "racecheck kv1 hd64/80/128 rc=$? $(grep -E 'RACECHECK SUMMARY|test result' $OUT/c/san_racecheck_kv1.txt | tr '\n' ' ')"
for r in 1 2; do
  ROCMFORGE_BENCH_ATTN=prefill timeout 120 $B > $OUT/c/rows_new_$r.txt 2>&1; echo "new $r"; grep '^prefill mma_sync B=' $OUT/c/rows_new_$r.txt | cut -c1-125
  env $OLD ROCMFORGE_BENCH_ATTN=prefill timeout 120 $B > $OUT/c/rows_old_$r.txt 2>&1; echo "old $r"; grep '^prefill mma_sync B=' $OUT/c/rows_old_$r.txt | cut -c1-125
done
ROCMFORGE_BENCH_PREFILL_HD=256 ROCMFORGE_BENCH_ATTN=prefill,sweep,check timeout 150 $B > $OUT/c/sweep256.txt 2>&1; echo "sweep rc=$?"; grep -E "^  hd256|check" $OUT/c/sweep256.txt | cut -c1-160
wait $SYN; echo "synth rc=$?"
for r in 1 2; do for m in g s; do
  echo "$m round $r new / old"
  timeout 100 $RF bench /tmp/m/$m.gguf --device cuda --no-early-serve -p 512 -n 0 -r 3 2>&1 | grep -E 'pp512'
  env $OLD timeout 100 $RF bench /tmp/m/$m.gguf --device cuda --no-early-serve -p 512 -n 0 -r 3 2>&1 | grep -E 'pp512'
done; done
