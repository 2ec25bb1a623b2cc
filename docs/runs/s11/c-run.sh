# call C: prefill attention, whole-page tiles' page id read one tile ahead (new, embedded) against the
# previous template (old) and new with every copy issued after Q.K^T (late), same call; checks; ncu
python3 -c "import tarfile; tarfile.open('.dev/s11/c.tar.xz').extractall()"
mkdir -p $OUT/c; R=$PWD; B=$R/.gpu/benches/attention
export ROCMFORGE_CACHE_DIR=/tmp/rc RUST_BACKTRACE=1
echo "== gpu_attention prefill"
timeout 200 .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 prefill > $OUT/c/gpu_attention.log 2>&1; echo rc=$?; grep -E "^test |test result|panicked" $OUT/c/gpu_attention.log | cut -c1-200 | head -8
echo "== sanitizer (prefill_native_path_matches_reference)"
timeout 200 compute-sanitizer --tool memcheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 prefill_native 2>&1 | grep -E "ERROR SUMMARY|^test result|Invalid" | head -4
timeout 200 compute-sanitizer --tool racecheck .gpu/tests/gpu_attention-test --include-ignored --test-threads=1 prefill_native 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|hazard|^test result" | head -4
echo "== prefill bench new / old / late, twice (torch in each)"
for v in new old late new2 old2 late2; do
  case $v in old*) D=$R/.dev/s11/tv/old ;; late*) D=$R/.dev/s11/tv/late ;; *) D="" ;; esac
  ROCMFORGE_TEMPLATE_DIR=$D ROCMFORGE_BENCH_ATTN=prefill timeout 120 $B > $OUT/c/pre_$v.txt 2>&1; echo "-- $v rc=$?"; grep -E "^prefill" $OUT/c/pre_$v.txt | cut -c1-110
done
echo "== ncu prefill hd256 causal (new)"
M="--metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active.ratio"
S="--section SpeedOfLight --section WarpStateStats --section InstructionStats --section Occupancy"
(cd /tmp && ROCMFORGE_BENCH_PEER=off ROCMFORGE_BENCH_ATTN=prefill timeout 100 ncu --clock-control none --kernel-name regex:hd256 --launch-skip 2 --launch-count 1 $S $M $B > $OUT/c/ncu_p256_new.txt 2>&1)
grep -E "Duration|Executed Instructions  |Warp Cycles Per Issued|Registers Per" $OUT/c/ncu_p256_new.txt | cut -c1-120; grep stalled $OUT/c/ncu_p256_new.txt | sort -k3 -n -r | head -5
echo "== ncu decode B=16 hd64 and B=1 32k hd64"
for r in 4 5; do
ROCMFORGE_BENCH_PEER=off ROCMFORGE_BENCH_DECODE_ROWS=$r ROCMFORGE_BENCH_ATTN=decode timeout 100 ncu --clock-control none --section SpeedOfLight --section WarpStateStats --section Occupancy --section MemoryWorkloadAnalysis $M -k regex:attn_decode_mc --launch-skip 5 -c 1 $B > $OUT/c/ncu_dec_r$r.txt 2>&1
grep -E "Duration|DRAM Throughput|Achieved Occupancy|Theoretical Occ|Registers Per|Warp Cycles Per Issued|Block Limit" $OUT/c/ncu_dec_r$r.txt | cut -c1-110; grep stalled $OUT/c/ncu_dec_r$r.txt | sort -k3 -n -r | head -5
done
cd $OUT && tar czf c.tgz c && rm -rf c
