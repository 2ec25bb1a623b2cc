python3 -c "import tarfile; tarfile.open('.gpu.tar.xz').extractall()"
mkdir -p $OUT/i; R=$PWD
(cd /tmp && ROCMFORGE_BENCH_ATTN=prefill timeout 120 ncu --clock-control none --kernel-name regex:attn_prefill --launch-skip 5 --launch-count 1 --section WarpStateStats --section SourceCounters -o /tmp/src $R/.gpu/benches/attention > /dev/null 2>&1)
ncu --import /tmp/src.ncu-rep --page source --csv --print-source sass > $OUT/i/sass_source.csv 2>&1
wc -l $OUT/i/sass_source.csv; head -3 $OUT/i/sass_source.csv | cut -c1-400
