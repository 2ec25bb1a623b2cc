python3 -c "import tarfile; tarfile.open('.gpu.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/c
R=$PWD
for v in base vlate vltree vboth; do
  td=""; [ $v != base ] && td="ROCMFORGE_TEMPLATE_DIR=$R/.gpu/extra/$v/templates"
  for tiles in default "hd128:128,64,4,2,0,0,1;hd64:64,64,4,1,1,0,1"; do
    tv=""; [ "$tiles" != default ] && tv="ROCMFORGE_ATTN_TILES=$tiles"
    echo "== $v tiles=$tiles"
    env $td $tv ROCMFORGE_BENCH_ATTN=prefill timeout 100 .gpu/benches/attention > $OUT/c/${v}_$( [ "$tiles" = default ] && echo def || echo alt).txt 2>&1
    grep "prefill mma_sync B=" $OUT/c/${v}_$( [ "$tiles" = default ] && echo def || echo alt).txt | cut -c1-130
  done
done
