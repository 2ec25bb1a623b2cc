# call F: end to end, real SmolLM2 Q4_1, ours (matrix-core decode, default; SIMT decode) vs llama.cpp 0c1e570, same call
python3 -c "import tarfile; tarfile.open('.dev/rf.tar.xz').extractall()"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader
mkdir -p $OUT/f
(setsid nohup bash .dev/build-llama-bench.sh .dev/llama-src.tar.gz /tmp/llama > /tmp/llama.log 2>&1 &)
cat /tmp/m/smol.part00 /tmp/m/smol.part01 /tmp/m/smol.part02 > /tmp/m/smollm2-135m-instruct-q4_1.gguf && rm -f /tmp/m/smol.part0*
sha256sum /tmp/m/smollm2-135m-instruct-q4_1.gguf | cut -c1-16
RF=$PWD/.gpu/bin/rocmforge; LB=/tmp/llama/bin/llama-bench; SM=/tmp/m/smollm2-135m-instruct-q4_1.gguf
export ROCMFORGE_CACHE_DIR=/tmp/rc
ours() { # tag [env...]
  local tag=$1; shift
  env "$@" timeout 150 $RF bench $SM --device cuda -p 512 -n 128 -r 3 > $OUT/f/$tag.txt 2>&1; echo "ours $tag rc=$?"; grep -E "pp512|tg128" $OUT/f/$tag.txt | cut -c1-150
}
ours mc_1
ours simt_1 ROCMFORGE_DECODE=simt
for i in $(seq 1 80); do [ -x $LB ] && break; sleep 5; done; ls $LB || tail -5 /tmp/llama.log
timeout 90 $LB -m $SM -fa 1 -p 512 -n 128 -r 3 -o md > $OUT/f/llama_1.txt 2>&1; echo "llama rc=$?"; grep -E "pp512|tg128" $OUT/f/llama_1.txt
ours mc_2
ours simt_2 ROCMFORGE_DECODE=simt
timeout 90 $LB -m $SM -fa 1 -p 512 -n 128 -r 3 -o md > $OUT/f/llama_2.txt 2>&1; echo "llama rc=$?"; grep -E "pp512|tg128" $OUT/f/llama_2.txt
