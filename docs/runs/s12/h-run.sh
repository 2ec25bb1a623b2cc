# call H: hd64 decode tiles by context length: 16-key tiles (16,4,2) against the standard 32-key set (32,4,2),
# SmolLM2's GQA 9/3 and the bench's 32/8, batches 1-16, contexts 64-4096, two rounds
python3 -c "import tarfile; tarfile.open('.dev/s12g/g.tar.xz').extractall()"
mkdir -p $OUT/h; B=$PWD/.gpu/benches/attention
export ROCMFORGE_CACHE_DIR=/tmp/rc ROCMFORGE_BENCH_PEER=off ROCMFORGE_BENCH_ATTN=decode
S=1:64:9:3:64,1:128:9:3:64,1:256:9:3:64,1:512:9:3:64,1:1024:9:3:64,1:2048:9:3:64,1:4096:9:3:64,4:256:9:3:64,4:1024:9:3:64,4:4096:9:3:64,16:256:9:3:64,16:1024:9:3:64,16:4096:32:8:64,1:512:32:8:64,1:32768:32:8:64
for round in 1 2; do for tl in 32,4,2 16,4,2; do
  ROCMFORGE_DECODE_MC_TILES=$tl ROCMFORGE_BENCH_DECODE_SHAPES=$S timeout 100 $B > $OUT/h/t_${tl}_$round.txt 2>&1
  echo "== $tl round $round"; grep -E '^decode' $OUT/h/t_${tl}_$round.txt | awk '{print $2, $3, $4, $7}' | tr '\n' ';'; echo
done; done
cd $OUT && tar czf h.tgz h && rm -rf h
