# call C: the real SmolLM2 against the CPU backend, fused append on (twice) and off: is the one greedy
# disagreement of call B run-to-run or the fusion's; decode attention sweeps (splits, tiles) at B=64 hd128
# and the hd64 rows
python3 -c "import tarfile; tarfile.open('.dev/s12c/c.tar.xz').extractall()"
cat /tmp/m/smol.part00 /tmp/m/smol.part01 /tmp/m/smol.part02 > /tmp/m/smollm2-135m-instruct-q4_1.gguf && rm -f /tmp/m/smol.part0*
sha256sum /tmp/m/smollm2-135m-instruct-q4_1.gguf | cut -c1-16
mkdir -p $OUT/c; R=$PWD; RF=$R/.gpu/bin/rocmforge; T=$R/.gpu/tests; B=$R/.gpu/benches/attention
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1 ROCMFORGE_BIN=$RF ROCMFORGE_MODEL_DIR=/tmp/m
for v in on on2 off off2; do
  ROCMFORGE_FUSE_APPEND=${v%2} timeout 120 $T/gpu_model-test --include-ignored --test-threads=1 --nocapture gpu_equals_cpu_smollm2 > $OUT/c/cpu_$v.log 2>&1
  echo "append $v rc=$? $(grep -E 'GPU vs CPU' $OUT/c/cpu_$v.log | cut -c40-200)"
done
export ROCMFORGE_BENCH_PEER=off ROCMFORGE_BENCH_ATTN=decode
echo "== hd128 B=64 ctx 2048, B=16 ctx 4096: splits x tiles"
for tl in "" 16,2,3 32,4,2 16,4,2 32,2,3; do for sp in "" 2 3 4; do
  ROCMFORGE_DECODE_MC_TILES=$tl ROCMFORGE_DECODE_SPLITS=$sp ROCMFORGE_BENCH_DECODE_SHAPES=64:2048:32:8:128,16:4096:32:8:128 timeout 60 $B > $OUT/c/s128_${tl}_$sp.txt 2>&1
  echo "tiles ${tl:-rule} splits ${sp:-rule}: $(grep -E '^decode' $OUT/c/s128_${tl}_$sp.txt | awk '{print $2, $3, $7, $8}' | tr '\n' ' ')"
done; done
echo "== hd64 B=16 ctx 4096, B=1 ctx 32768: tiles (splits by the rule, and x2)"
for tl in "" 32,2,2 16,4,2 64,2,2 32,8,2 16,8,2 32,4,4; do
  ROCMFORGE_DECODE_MC_TILES=$tl ROCMFORGE_BENCH_DECODE_SHAPES=16:4096:32:8:64,1:32768:32:8:64 timeout 60 $B > $OUT/c/s64_$tl.txt 2>&1
  echo "tiles ${tl:-rule}: $(grep -E '^decode' $OUT/c/s64_$tl.txt | awk '{print $2, $3, $7, $8}' | tr '\n' ' ')"
done
cd $OUT && tar czf c.tgz c && rm -rf c
