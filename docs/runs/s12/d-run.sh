# call D: more decode tile shapes (8 waves) at hd64, hd128, hd256 (rule's splits for each shape), two rounds
python3 -c "import tarfile; tarfile.open('.dev/s12c/c.tar.xz').extractall()"
mkdir -p $OUT/d; R=$PWD; B=$R/.gpu/benches/attention
export ROCMFORGE_CACHE_DIR=/tmp/rc ROCMFORGE_BENCH_PEER=off ROCMFORGE_BENCH_ATTN=decode
for round in 1 2; do
echo "== round $round: hd64 B=16 ctx 4096, B=1 ctx 32768"
for tl in "" 32,8,2 32,8,3 16,8,4 16,8,3 32,6,2 32,6,3 64,4,2; do
  ROCMFORGE_DECODE_MC_TILES=$tl ROCMFORGE_BENCH_DECODE_SHAPES=16:4096:32:8:64,1:32768:32:8:64,1:4096:9:3:64 timeout 60 $B > $OUT/d/s64_${tl}_$round.txt 2>&1
  echo "tiles ${tl:-rule}: $(grep -E '^decode' $OUT/d/s64_${tl}_$round.txt | awk '{print $2, $3, $7, $8}' | tr '\n' ' ')"
done
echo "== round $round: hd128 B=16 ctx 4096, B=1 ctx 32768; hd256 MQA B=16 ctx 8192, B=1 ctx 32768"
for tl in "" 16,8,2 16,6,2 32,6,2 16,6,3; do
  ROCMFORGE_DECODE_MC_TILES=$tl ROCMFORGE_BENCH_DECODE_SHAPES=16:4096:32:8:128,1:32768:32:8:128,16:8192:4:1:256,1:32768:4:1:256 timeout 60 $B > $OUT/d/s128_${tl}_$round.txt 2>&1
  echo "tiles ${tl:-rule}: $(grep -E '^decode' $OUT/d/s128_${tl}_$round.txt | awk '{print $2, $3, $5, $7, $8}' | tr '\n' ' ')"
done
done
cd $OUT && tar czf d.tgz d && rm -rf d
