# call D: the AMD prefill register prefetch on the emulated MFMA / WMMA paths (correctness), then the final
# code end to end against llama.cpp 0c1e570 (llama-bench built in this call), same call, same files
python3 -c "import tarfile; tarfile.open('.dev/s11/d.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/d /tmp/m; R=$PWD; RF=$R/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
( bash .dev/f-build-llama-bench.sh .dev/llama.cpp-0c1e570-src.tar.gz /tmp/llama > $OUT/d/llama_build.log 2>&1; echo "build rc=$?" >> $OUT/d/llama_build.log ) &
BUILD=$!
( $RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf && $RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf && $RF gguf synth --preset llama-3-8b --out /tmp/m/l8.gguf ) > $OUT/d/synth.log 2>&1 &
SYN=$!
echo "== emulated AMD prefill (register prefetch on MFMA / WMMA)"
for e in gfx942 gfx1100; do ROCMFORGE_EMULATE=$e timeout 200 .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 prefill_native > $OUT/d/emu_$e.log 2>&1; echo "$e rc=$? $(grep -E 'test result' $OUT/d/emu_$e.log)"; grep -E "panicked|error" $OUT/d/emu_$e.log | head -3; done
wait $SYN; echo "synth rc=$?"
wait $BUILD; tail -1 $OUT/d/llama_build.log
LB=/tmp/llama/bin/llama-bench
echo "== ours then llama.cpp: pp512, tg128 (depth 0 and 4096)"
for f in s g l8; do
  timeout 150 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 512 -n 128 -d 0,4096 -r 3 > $OUT/d/ours_$f.txt 2>&1; echo "ours $f rc=$?"; grep -E "^\| " $OUT/d/ours_$f.txt | tail -4
  timeout 150 $LB -m /tmp/m/$f.gguf -fa 1 -p 512 -n 128 -d 0,4096 -r 3 > $OUT/d/llama_$f.txt 2>&1; echo "llama $f rc=$?"; grep -E "pp512|tg128" $OUT/d/llama_$f.txt | awk -F'|' '{print $(NF-2), $(NF-1)}'
done
echo "== tg128 again, ours then llama.cpp (SmolLM2, 8B)"
for f in s l8; do
  timeout 60 $RF bench /tmp/m/$f.gguf --device cuda --no-early-serve -p 0 -n 128 -r 3 > $OUT/d/ours2_$f.txt 2>&1; echo "ours $f $(grep tg128 $OUT/d/ours2_$f.txt | awk -F'|' '{print $5}')"
  timeout 60 $LB -m /tmp/m/$f.gguf -fa 1 -p 0 -n 128 -r 3 > $OUT/d/llama2_$f.txt 2>&1; echo "llama $f $(grep tg128 $OUT/d/llama2_$f.txt | awk -F'|' '{print $(NF-1)}')"
done
cd $OUT && tar czf d.tgz d && rm -rf d
