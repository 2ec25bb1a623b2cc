# call C2 (right after C1, same machine: /tmp/m models, /tmp/llama, /tmp/rc cache): tg128 new (change 2) against
# old (e961b2e's binary), alternating; 16-key tiles on SmolLM2; ours against llama.cpp; ncu of the attention kernels
python3 -c "import tarfile; tarfile.open('.dev/s16/c.tar.xz').extractall()"
mkdir -p $OUT/c2; R=$PWD; RF=$R/.gpu/bin/rocmforge; OLD=$R/.dev/s16/old/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc
B="bench --device cuda --no-early-serve -p 0 -n 128 -r 3"
for m in s g l8; do
  for d in 0 512; do
    for v in new old new old; do
      if [ $v = old ]; then X=$OLD; else X=$RF; fi
      timeout 120 $X $B /tmp/m/$m.gguf -d $d > $OUT/c2/tg_${m}_d${d}_$v.txt 2>&1
      echo "$m d=$d $v rc=$? $(grep tg128 $OUT/c2/tg_${m}_d${d}_$v.txt | awk -F'|' '{print $5}')"
    done
  done
done
for d in 0 512 2048; do
  for v in std t16 std t16; do
    if [ $v = t16 ]; then E="ROCMFORGE_DECODE_MC_TILES=16,4,2"; else E="X=1"; fi
    env $E timeout 120 $RF $B /tmp/m/s.gguf -d $d > $OUT/c2/tiles_s_d${d}_$v.txt 2>&1
    echo "tiles s d=$d $v rc=$? $(grep tg128 $OUT/c2/tiles_s_d${d}_$v.txt | awk -F'|' '{print $5}')"
  done
done
LB=/tmp/llama/bin/llama-bench
for m in s g l8; do
  timeout 150 $RF bench /tmp/m/$m.gguf --device cuda --no-early-serve -p 512 -n 128 -r 3 > $OUT/c2/ours_$m.txt 2>&1; echo "ours $m rc=$?"; grep -E "pp512|tg128" $OUT/c2/ours_$m.txt | awk -F'|' '{print $(NF-2), $(NF-1)}'
  timeout 150 $LB -m /tmp/m/$m.gguf -fa 1 -p 512 -n 128 -r 3 > $OUT/c2/llama_$m.txt 2>&1; echo "llama $m rc=$?"; grep -E "pp512|tg128" $OUT/c2/llama_$m.txt | awk -F'|' '{print $(NF-2), $(NF-1)}'
done
export ROCMFORGE_GRAPHS=0
N="ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum --print-summary per-kernel -k regex:attn_decode"
for v in new old; do
  if [ $v = old ]; then X=$OLD; else X=$RF; fi
  for m in s g; do
    timeout 100 $N $X bench /tmp/m/$m.gguf --device cuda --no-early-serve -p 0 -n 2 -d 64 -r 1 > $OUT/c2/ncu_${m}_$v.txt 2>&1
    echo "ncu $m $v rc=$? $(grep -A2 '^  rf_attn' $OUT/c2/ncu_${m}_$v.txt | grep gpu__time | awk '{print $NF}' | tr '\n' ' ')"
  done
done
cd $OUT && tar czf c2.tgz c2 && rm -rf c2
