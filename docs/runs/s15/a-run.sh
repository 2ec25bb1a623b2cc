# call A: where a SmolLM2 (and Gemma 3) decode step's attention time goes at short contexts: ncu per kernel of a
# step at depth 64, then the full section set (warp states, source counters) of the attention kernel and of the
# q/k/v GEMV with its norm prologue
python3 -c "import tarfile; tarfile.open('.dev/s15/a.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/a /tmp/m; RF=$PWD/.gpu/bin/rocmforge
export ROCMFORGE_CACHE_DIR=/tmp/rc
$RF gguf synth --preset smollm2-135m --type q4_1 --out /tmp/m/s.gguf > $OUT/a/synth.log 2>&1
$RF gguf synth --preset gemma3-270m --out /tmp/m/g.gguf >> $OUT/a/synth.log 2>&1
B="bench --device cuda --no-early-serve -p 0"
for m in s g; do
  timeout 100 $RF $B /tmp/m/$m.gguf -n 128 -r 3 > $OUT/a/tg_$m.txt 2>&1; echo "tg $m rc=$? $(grep tg128 $OUT/a/tg_$m.txt | awk -F'|' '{print $5}')"
done
export ROCMFORGE_GRAPHS=0
N="ncu --clock-control none --cache-control none"
for m in s g; do
  timeout 150 $N --metrics gpu__time_duration.sum --print-summary per-kernel $RF $B /tmp/m/$m.gguf -n 2 -d 64 -r 1 > $OUT/a/ncu_sum_$m.txt 2>&1; echo "ncu sum $m rc=$?"
done
timeout 200 $N -k regex:attn_decode --launch-skip 40 --launch-count 2 --set full --import-source yes -f -o /tmp/attn_s $RF $B /tmp/m/s.gguf -n 2 -d 64 -r 1 > $OUT/a/ncu_attn_s.log 2>&1; echo "ncu attn s rc=$?"
timeout 200 $N -k regex:gemv_wave --launch-skip 40 --launch-count 3 --set full --import-source yes -f -o /tmp/gemv_s $RF $B /tmp/m/s.gguf -n 2 -d 64 -r 1 > $OUT/a/ncu_gemv_s.log 2>&1; echo "ncu gemv s rc=$?"
timeout 200 $N -k regex:attn_decode --launch-skip 40 --launch-count 2 --set full --import-source yes -f -o /tmp/attn_g $RF $B /tmp/m/g.gguf -n 2 -d 64 -r 1 > $OUT/a/ncu_attn_g.log 2>&1; echo "ncu attn g rc=$?"
for r in attn_s gemv_s attn_g; do
  ncu -i /tmp/$r.ncu-rep --page details > $OUT/a/${r}_details.txt 2>&1
  ncu -i /tmp/$r.ncu-rep --page source --csv --print-source sass > $OUT/a/${r}_sass.csv 2>&1
  cp /tmp/$r.ncu-rep $OUT/a/ 2>/dev/null
done
cd $OUT && tar czf a.tgz a && rm -rf a
