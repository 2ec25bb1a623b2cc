// Prefill attention (FlashAttention-2 style): one pass over K/V tiles with an online softmax, f32 scores
// and accumulators, K/V tiles read from the paged cache (kv_cache.hip layout) into shared memory.
//
// q/o [total_q][hq][HD] ragged by cu_q [nseq+1]; the q_len query tokens of sequence b are the last q_len of
// its kv_lens[b] tokens (chunked prefill: earlier keys come from cached pages; append new K/V first).
// Causal: query at position p sees keys <= p; window > 0 also hides keys <= p - window; softcap > 0 caps
// scores as softcap * tanh(s / softcap). GQA: query head h reads kv head h / (hq / hkv); K/V are not copied.
//
// Tiles (from the preamble, computed by the launcher): RF_ATTN_BM query rows per block, RF_ATTN_BN keys
// per tile, RF_ATTN_NWARP waves of MM::RW rows each. The matrix path MM (one per target family) computes
// S = Q K^T and O += P V on per-wave register fragments; the tile loop, masking and online softmax below
// are shared by all paths and only see fragments through MM's element -> (row, col, row slot) maps
// (MMScalar, MMSync, MMAmd: attn_mm.h, which the family preamble puts before this file).

#ifndef AP_LATE_COPY
// the pipelined mma.sync loop issues the next tile's copy before (0) or after (1) Q.K^T; -1: after
// when a wave's Q.K^T of a tile is long (MT * BN * HD >= 16384: 128 mma), before otherwise (H200,
// seventh session: hd128 128x64 tiles 3 % / 5 % faster causal / full, hd64 128x128 1 %; hd128 128x32
// 7 % slower, hd64 64x64 1 % slower)
#define AP_LATE_COPY -1
#endif
#ifndef AP_KV1_SPREAD
// RF_ATTN_KV1 with the tile in one page: the copies' cp.async spread over the k steps of the math they
// run under (1: ApSpread), or issued together before it (0). An experiment, refuted and kept for
// re-measurement: H200, seventeenth session, call E: hd256 2.142 / 2.134 ms against 2.057 / 2.069
#define AP_KV1_SPREAD 0
#endif
#ifndef AP_QK_PIPE
// the pipelined mma_sync loop's Q.K^T reads step k + 1's fragments before step k's mma (1), or each K
// fragment just before its mma (0). H200, seventeenth session, call E: hd256 1.991 / 1.972 ms against
// 2.057 / 2.069, hd128 even (causal) to 1 % faster (full); no spills on sm_80 / sm_90
#define AP_QK_PIPE 1
#endif
#define AP_RESCALE_LOG2 8.0f  // the pipelined mma.sync loop's lazy-rescale threshold (see there)

// ---------------------------------------------------------------- the shared tile loop
template <typename T, int HD, bool CAUSAL, class MM>
RF_DEVICE void attn_prefill(const T* RF_RESTRICT q, const T* RF_RESTRICT k_cache, const T* RF_RESTRICT v_cache, T* RF_RESTRICT out,
                            const int* RF_RESTRICT cu_q, const int* RF_RESTRICT kv_lens, const int* RF_RESTRICT block_tables,
                            int max_pages, int page_size, int hq, int hkv, float scale, float softcap, int window) {
    constexpr int BM = RF_ATTN_BM, BN = RF_ATTN_BN, NW = RF_ATTN_NWARP, RW = MM::RW, LD = HD + AP_PAD, NV = HD / 8;
    constexpr int CS = RF_ATTN_CSPLIT, HDO = HD / CS;  // CS waves share RW query rows, HDO O columns each
    static_assert(RW * NW == BM * CS && HD % (16 * CS) == 0, "tile rows");
    extern __shared__ uint4 ap_smem[];
    T* sQ = (T*)ap_smem;
    T* sK = sQ + BM * LD;
    T* sV = sK + BN * LD;
    const int lane = threadIdx.x % RF_WAVE, w = threadIdx.x / RF_WAVE;
    const int wr = w / CS, wc = w % CS;  // row group, column part
    unsigned char* scratch = (unsigned char*)(sV + BN * LD) + w * MM::SCRATCH;

    const int b = blockIdx.z, h = blockIdx.y;
    const int qt = gridDim.x - 1 - blockIdx.x;  // longest (causal) tiles first
    const int q0 = cu_q[b], q_len = cu_q[b + 1] - q0;
    if (qt * BM >= q_len) return;
    const int kv_len = kv_lens[b];
    const int off = kv_len - q_len;  // position of query 0
    const int kvh = h / (hq / hkv);
    const long long head_off = (long long)kvh * page_size * HD, page_stride = (long long)hkv * page_size * HD;
    const int* bt = block_tables + (long long)b * max_pages;

    for (int v = threadIdx.x; v < BM * NV; v += NW * RF_WAVE) {
        const int r = v / NV, c = v % NV, qi = qt * BM + r;
        uint4 val = make_uint4(0, 0, 0, 0);
        if (qi < q_len) val = ((const uint4*)(q + ((long long)(q0 + qi) * hq + h) * HD))[c];
        *(uint4*)(sQ + r * LD + c * 8) = val;
    }
    const int qpos_lo = off + qt * BM, qpos_hi = min(off + qt * BM + BM, kv_len) - 1;
    const int kv_end = CAUSAL ? min(kv_len, qpos_hi + 1) : kv_len;
    int kv_begin = window > 0 ? max(0, qpos_lo - window + 1) : 0;
    kv_begin = (kv_begin / BN) * BN;

    float s[MM::SN], o[MM::ON], m[MM::NSLOT], l[MM::NSLOT];
#pragma unroll
    for (int i = 0; i < MM::ON; i++) o[i] = 0.0f;
#pragma unroll
    for (int j = 0; j < MM::NSLOT; j++) { m[j] = RF_NEG_INF; l[j] = 0.0f; }
    const int qbase = off + qt * BM + wr * RW;

#if RF_ATTN_RPF
    // register prefetch (RF_ATTN_RPF): the next K/V tile's 16-byte chunks are loaded into registers
    // (RIT of K and of V a thread) while the current tile is computed, and stored into the one shared
    // stage at the top of the next iteration: global -> register -> shared double buffering, so a
    // tile's global latency hides under the previous tile's math without a second LDS stage.
    constexpr int NT = NW * RF_WAVE, NCH = BN * NV, RIT = (NCH + NT - 1) / NT;
    uint4 kx[RIT], vx[RIT];
    auto load_tile = [&](int kt) {
#pragma unroll
        for (int i = 0; i < RIT; i++) {
            const int v = threadIdx.x + i * NT, key = kt + v / NV;
            kx[i] = vx[i] = make_uint4(0, 0, 0, 0);
            if ((NCH % NT == 0 || v < NCH) && key < kv_len) {
                const long long base = bt[key / page_size] * page_stride + head_off + (long long)(key % page_size) * HD;
                kx[i] = ((const uint4*)(k_cache + base))[v % NV];
                vx[i] = ((const uint4*)(v_cache + base))[v % NV];
            }
        }
    };
    if (kv_begin < kv_end) load_tile(kv_begin);
#endif
    for (int kt = kv_begin; kt < kv_end; kt += BN) {
        __syncthreads();  // previous tile fully used
#if RF_ATTN_RPF
#pragma unroll
        for (int i = 0; i < RIT; i++) {
            const int v = threadIdx.x + i * NT, r = v / NV, c = v % NV;
            if (NCH % NT == 0 || v < NCH) {
                *(uint4*)(sK + r * LD + c * 8) = kx[i];
                *(uint4*)(sV + r * LD + c * 8) = vx[i];
            }
        }
        __syncthreads();
        if (kt + BN < kv_end) load_tile(kt + BN);  // lands while this tile is computed
#else
        for (int v = threadIdx.x; v < BN * NV; v += NW * RF_WAVE) {
            const int r = v / NV, c = v % NV, key = kt + r;
            uint4 kx = make_uint4(0, 0, 0, 0), vx = make_uint4(0, 0, 0, 0);
            if (key < kv_len) {
                const long long base = bt[key / page_size] * page_stride + head_off + (long long)(key % page_size) * HD;
                kx = ((const uint4*)(k_cache + base))[c];
                vx = ((const uint4*)(v_cache + base))[c];
            }
            *(uint4*)(sK + r * LD + c * 8) = kx;
            *(uint4*)(sV + r * LD + c * 8) = vx;
        }
        __syncthreads();
#endif
        MM::qk(sQ + wr * RW * LD, sK, s, lane);
        const bool need_mask = kt + BN > kv_len || (CAUSAL && kt + BN - 1 > qpos_lo) || (window > 0 && kt <= qpos_hi - window);
#pragma unroll
        for (int i = 0; i < MM::SN; i++) {
            float x = s[i] * scale;
            if (softcap > 0.0f) x = softcap * tanhf(x / softcap);
            x *= AP_LOG2E;
            if (need_mask) {
                const int qp = qbase + MM::srow(i, lane), key = kt + MM::scol(i, lane);
                if (key >= kv_len || (CAUSAL && key > qp) || (window > 0 && key <= qp - window)) x = RF_NEG_INF;
            }
            s[i] = x;
        }
        float mt[MM::NSLOT], alpha[MM::NSLOT];
#pragma unroll
        for (int j = 0; j < MM::NSLOT; j++) mt[j] = RF_NEG_INF;
#pragma unroll
        for (int i = 0; i < MM::SN; i++) mt[MM::slot(i)] = fmaxf(mt[MM::slot(i)], s[i]);
#pragma unroll
        for (int j = 0; j < MM::NSLOT; j++) {
            const float mn = fmaxf(m[j], MM::row_max(mt[j]));
            mt[j] = mn == RF_NEG_INF ? 0.0f : mn;  // the subtrahend
            alpha[j] = ap_exp2(m[j] - mt[j]);
            m[j] = mn;
            l[j] *= alpha[j];
        }
#pragma unroll
        for (int i = 0; i < MM::SN; i++) {
            s[i] = ap_exp2(s[i] - mt[MM::slot(i)]);
            l[MM::slot(i)] += s[i];
        }
#pragma unroll
        for (int i = 0; i < MM::ON; i++) o[i] *= alpha[MM::slot(i)];
        MM::pv(s, sV + wc * HDO, o, scratch, lane);
    }
#pragma unroll
    for (int j = 0; j < MM::NSLOT; j++) {
        const float t = MM::row_sum(l[j]);
        l[j] = t > 0.0f ? 1.0f / t : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < MM::ON; i++) {
        const int qi = qt * BM + wr * RW + MM::orow(i, lane);
        if (qi < q_len) out[((long long)(q0 + qi) * hq + h) * HD + wc * HDO + MM::ocol(i, lane)] = rf_from_f32<T>(o[i] * l[MM::slot(i)]);
    }
}

// ---------------------------------------------------------------- NVIDIA: pipelined mma.sync tile loop
// The mma_sync path's own tile loop (the shared loop above serves scalar/MFMA/WMMA, and MMSync through it
// when the tiles say RF_ATTN_PIPE 0). Same math and fragment layout as MMSync (its maps and mma/ldmatrix
// helpers are reused); what differs:
//  - K/V tiles are copied global -> shared with cp.async into two stages: tile i+1 (K and V, one commit
//    group) is issued at the top of tile i, so its copy runs under the whole of tile i's math, and one
//    barrier per tile (at its top) both publishes tile i and frees the other stage.
//  - each wave owns MT m16 tiles (16 * MT query rows): every K/V fragment read from shared memory feeds MT
//    mma, halving shared-memory traffic per mma at MT = 2.
//  - RF_ATTN_QREG: the wave's Q fragments are read once (ldmatrix) and kept in registers; Q is staged in
//    the second K/V stage, which is free until tile 1 is issued (BM <= 2 * BN rows), or else over both
//    stages before tile 0 is issued (BM <= 4 * BN rows).
//  - causal / window tiles that hide every key from all of a wave's rows are skipped by that wave
//    (it still takes part in the barriers and copies); soft-cap is tested once per tile, not per score;
//    scale and log2(e) are one multiply, or with RF_ATTN_FFMA part of exp2's FFMA.
//  - RF_ATTN_PSPLIT: a bf16 P split into hi + lo parts for P.V (as MMSync::pv), or not (0).
//
// Shared memory (T elements, rows of LD = HD + 8: 16-byte aligned, and ldmatrix's 8 row addresses of
// one 8x8 matrix fall on distinct 16-byte bank groups for every HD here):
//   [K stage 0: BN rows][V stage 0: BN rows][K stage 1: BN rows][V stage 1: BN rows][Q: BM rows, !QREG only]
//   QREG: Q is staged at the start of stage 1 (BM <= 2 * BN rows) or of stage 0 (BM <= 4 * BN rows).
//
// Commit groups (per thread; every thread commits the same sequence, empty groups included): the
// prologue commits KV(0); tile i commits KV(i+1) (empty when i is the last).
//   top of tile i:  outstanding <= {KV(i)}: wait_group 0 -> landed; barrier: every thread's copy of
//                   tile i is visible, and every wave is done with tile i-1 (stage (i+1)&1, and a Q
//                   staging in stage 1 at i = 0); then issue KV(i+1) into stage (i+1)&1
// KV(i) was issued a whole tile earlier, so waiting for V(i) at the top (not before P.V) costs nothing
// measurable and saves the second barrier per tile.
//
// RF_ATTN_KV1 (FlashAttention-2's scheme, for head sizes whose two stages would leave one block an SM):
// one K buffer and one V buffer, [K: BN rows][V: BN rows][Q: BM rows], each copy running under the other
// half's math, two barriers per tile. The prologue commits K(0) (with Q); then per tile i:
//   top:        wait_group 0 (K(i) landed); barrier: K(i) visible, every wave done with P.V(i-1);
//               issue and commit V(i) into the V buffer; Q.K^T(i) and the softmax
//   before P.V: wait_group 0 (V(i) landed); barrier: V(i) visible, every wave done with Q.K^T(i);
//               issue and commit K(i+1) into the K buffer (an empty group after the last tile); P.V(i)
// With AP_KV1_SPREAD (an experiment, off) the copies of V(i) and K(i+1) are issued a few chunks a k step
// inside Q.K^T(i) and P.V(i) (ApSpread; a wave that skips the tile issues them at once), before their commit.
// Tried and refuted (H200, seventeenth session, calls B-E): V(i)'s copy issued after Q.K^T (2.11 against
// 2.03 ms at hd256); the copies from one source pointer a thread with compile-time offsets issued together
// (a fifth fewer instructions, but their cp.async back to back filled the MIO queue ahead of the ldmatrix:
// 2.22 against 2.00 ms), and the same spread over the math (AP_KV1_SPREAD: 2.14 against 2.06 ms).
#if defined(RF_MMA_SYNC)
// One K/V tile into shared memory: keys kt .. kt + BN - 1, each a row of NV = HD / 8 16-byte chunks, in
// K and in V. Flat chunk index v = threadIdx.x + it * NT over BN * NV chunks: row r = v / NV, chunk
// c = v % NV, so consecutive threads copy consecutive 16 bytes of a row (coalesced within a page row,
// which holds a whole head row: HD contiguous elements at bt[key / page_size] * page_stride + head_off +
// (key % page_size) * HD, the kv_cache.hip layout). K and V rows sit at the same offset in their
// caches: one offset per step serves both copies. A power-of-two page size (the runtime's 16, the
// bench's 64) takes a shift and a mask instead of an integer division (about 20 instructions per row;
// with the division, the copies of a tile cost more instructions than its Q.K^T), and a page size that
// is a multiple of BN (the bench's 64 with 32- or 64-key tiles) one lookup per tile. When NT is a multiple
// of NV (every head size but 80 and 96), a thread's chunk column is the same in every step and its row
// advances by NT / NV: one shared address and compile-time offsets.
// dst: the shared-space byte address of the stage (K rows, then V rows BN * LD elements later). A key
// >= kv_len is zero-filled (src-size 0; the address, the last key's row, is not read).
// MODE 0: a page lookup per row, dividing by page_size; 1: the same with a shift (page_size = 1 <<
// shift); 2: the whole tile in one page (page_size a multiple of BN: kt is a multiple of BN, so the
// tile's BN rows are consecutive rows of page kt / page_size), one lookup per tile.
// PART: 3 copies K and V, 1 only K, 2 only V (RF_ATTN_KV1's separate commit groups). MODE 2 takes the
// tile's first row as tb (ap_tile_base).
template <typename T, int HD, int BN, int NT, int MODE, int PART>
RF_DEVICE void ap_copy_kv(unsigned dst, const T* RF_RESTRICT k_cache, const T* RF_RESTRICT v_cache, const int* RF_RESTRICT bt,
                          int kt, int kv_len, int page_size, int shift, int page_stride, int head_off, long long tb) {
    constexpr int LD = HD + AP_PAD, NV = HD / 8, N = BN * NV, IT = (N + NT - 1) / NT, VOFF = BN * LD * 2;
    const unsigned t = threadIdx.x;
    const long long tile_base = tb;  // MODE 2: the tile's first row
#pragma unroll
    for (int it = 0; it < IT; it++) {
        const unsigned v = t + it * NT;
        if (N % NT == 0 || (int)v < N) {
            const int r = NT % NV == 0 ? (int)(t / NV) + it * (NT / NV) : (int)(v / NV);
            const int c = NT % NV == 0 ? (int)(t % NV) : (int)(v % NV);
            const int key = kt + r;
            long long off;
            if (MODE == 2) {
                off = tile_base + (r * HD + c * 8);  // rows past kv_len stay inside the page (not read)
            } else {
                // a key past the end reads the last key's page entry (always in the table), without a branch
                const int kc = min(key, kv_len - 1), pg = MODE == 1 ? kc >> shift : kc / page_size, in = kc - pg * page_size;
                off = (long long)bt[pg] * page_stride + (head_off + in * HD + c * 8);
            }
            const unsigned d = NT % NV == 0 ? dst + ((t / NV) * LD + (t % NV) * 8) * 2 + it * (NT / NV) * LD * 2
                                            : dst + (r * LD + c * 8) * 2;
            const int n = key < kv_len ? 16 : 0;
            if (PART & 1) rf_cp_async16_s(d, k_cache + off, n);
            if (PART & 2) rf_cp_async16_s(d + VOFF, v_cache + off, n);
        }
    }
}
// The element offset of key kt's row in the cache (kv head included): with page_size a multiple of BN, the
// first row of the tile at kt (ap_copy_kv's MODE 2); 0 otherwise (not used there, and no load).
template <int HD, int BN>
RF_DEVICE long long ap_tile_base(const int* RF_RESTRICT bt, int kt, int page_size, int shift, int page_stride, int head_off) {
    if (page_size % BN != 0) return 0;
    const int pg = shift >= 0 ? kt >> shift : kt / page_size;
    return (long long)bt[pg] * page_stride + (head_off + (kt - pg * page_size) * HD);
}
// shift >= 0: page_size is 1 << shift; tb: ap_tile_base of kt
template <typename T, int HD, int BN, int NT, int PART = 3>
RF_DEVICE void ap_copy_kv_tile(unsigned dst, const T* RF_RESTRICT k_cache, const T* RF_RESTRICT v_cache, const int* RF_RESTRICT bt,
                               int kt, int kv_len, int page_size, int shift, int page_stride, int head_off, long long tb) {
    if (page_size % BN == 0)
        ap_copy_kv<T, HD, BN, NT, 2, PART>(dst, k_cache, v_cache, bt, kt, kv_len, page_size, shift, page_stride, head_off, tb);
    else if (shift >= 0)
        ap_copy_kv<T, HD, BN, NT, 1, PART>(dst, k_cache, v_cache, bt, kt, kv_len, page_size, shift, page_stride, head_off, tb);
    else
        ap_copy_kv<T, HD, BN, NT, 0, PART>(dst, k_cache, v_cache, bt, kt, kv_len, page_size, shift, page_stride, head_off, tb);
}

// One part (K or V) of a tile in one page (MODE 2, NT a multiple of NV) copied a few chunks at a time
// (AP_KV1_SPREAD): a thread's rows are r0 + it * (NT / NV), so one source pointer and compile-time
// offsets (cp.async's immediate) and one compare a chunk, about 2 instructions instead of 7. Issued in one
// burst, those cp.async filled the MIO queue ahead of the ldmatrix of the math (H200, seventeenth
// session, call D: hd256 2.00 -> 2.22 ms); spread(k, K) issues the chunks of step k of K steps.
template <typename T, int HD, int BN, int NT>
struct ApSpread {
    static constexpr int LD = HD + AP_PAD, NV = HD / 8, N = BN * NV, IT = (N + NT - 1) / NT, RS = NT / NV;
    const T* src;
    unsigned d0;
    int rem;  // chunk it holds a key < kv_len when it * RS < rem
    RF_DEVICE ApSpread(unsigned dst, const T* RF_RESTRICT cache, int kt, int kv_len, long long tb) {
        const int r0 = (int)(threadIdx.x / NV), c0 = (int)(threadIdx.x % NV);
        src = cache + (tb + (r0 * HD + c0 * 8));
        d0 = dst + (r0 * LD + c0 * 8) * 2;
        rem = kv_len - kt - r0;
    }
    template <int K>
    RF_DEVICE void spread(int k) const {
#pragma unroll
        for (int it = k * IT / K; it < (k + 1) * IT / K; it++)
            if (N % NT == 0 || (int)(threadIdx.x + it * NT) < N)  // rows past kv_len stay inside the page (not read)
                rf_cp_async16_s(d0 + it * RS * LD * 2, src + it * RS * HD, it * RS < rem ? 16 : 0);
    }
};

// Max of one row slot's SN / 2 values of a lane's S fragment (elements i = 4 q + 2 slot + b), as a
// tree: the dependent chain is log2(SN / 2) deep instead of SN / 2. ApTree<N> folds the upper N / 2
// values onto the lower ones (the middle one of an odd N stays) and recurses on the rest.
template <int N>
struct ApTree {
    static RF_DEVICE float run(float* a) {
        constexpr int H = N / 2;
#pragma unroll
        for (int k = 0; k < H; k++) a[k] = fmaxf(a[k], a[k + N - H]);
        return ApTree<N - H>::run(a);
    }
};
template <>
struct ApTree<1> {
    static RF_DEVICE float run(float* a) { return a[0]; }
};
template <int SN>
RF_DEVICE float ap_slot_max(const float* s, int slot) {
    float a[SN / 2];
#pragma unroll
    for (int q = 0; q < SN / 4; q++) {
        a[2 * q] = s[4 * q + 2 * slot];
        a[2 * q + 1] = s[4 * q + 2 * slot + 1];
    }
    return ApTree<SN / 2>::run(a);
}

template <typename T, int HD, bool CAUSAL>
RF_DEVICE void attn_prefill_mma(const T* RF_RESTRICT q, const T* RF_RESTRICT k_cache, const T* RF_RESTRICT v_cache, T* RF_RESTRICT out,
                                const int* RF_RESTRICT cu_q, const int* RF_RESTRICT kv_lens, const int* RF_RESTRICT block_tables,
                                int max_pages, int page_size, int hq, int hkv, float scale, float softcap, int window) {
    constexpr int BM = RF_ATTN_BM, BN = RF_ATTN_BN, NW = RF_ATTN_NWARP, MT = RF_ATTN_MT, NT = NW * 32;
    // RF_ATTN_PSPLIT 0: a bf16 P goes into P.V as one bf16 operand (one mma per V fragment, 8-bit P)
    constexpr bool QREG = RF_ATTN_QREG != 0, SPLIT = ApSplitP<T>::v && RF_ATTN_PSPLIT != 0;
    constexpr int LD = HD + AP_PAD, NV = HD / 8, KT = HD / 16, NB = BN / 16, SN = BN / 2, ON = HD / 2;
    static_assert(RF_WAVE == 32 && BM == 16 * MT * NW && BN % 16 == 0 && HD % 16 == 0, "mma_sync tiles");
    // QREG: Q is staged in K/V stage 1 (free until tile 1 is issued) when it fits there, else over both
    // stages from the start (QSTAGE0), and tile 0's copy waits until the Q fragments are in registers
    constexpr bool QSTAGE0 = QREG && BM > 2 * BN;
    constexpr bool LATE = AP_LATE_COPY < 0 ? MT * BN * HD >= 16384 : AP_LATE_COPY != 0;
    constexpr bool KV1 = RF_ATTN_KV1 != 0;  // one K and one V buffer (above)
    static_assert(!QREG || BM <= 4 * BN, "Q is staged in the K/V stages");
    static_assert(!(KV1 && QREG), "one K/V stage has no second stage to stage Q in");
    typedef MMSync<T, HD, BN> F;  // fragment maps (slot/srow/scol/orow/ocol) and row reductions
    extern __shared__ uint4 ap_smem[];
    T* const sKV = (T*)ap_smem;  // stage st: K at sKV + st * 2 * BN * LD, V BN rows after it
    T* const sQ = sKV + (!QREG ? (KV1 ? 2 : 4) : QSTAGE0 ? 0 : 2) * BN * LD;
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32, j8 = lane / 8;

    const int b = blockIdx.z, h = blockIdx.y;
    const int qt = gridDim.x - 1 - blockIdx.x;  // longest (causal) tiles first
    const int q0 = cu_q[b], q_len = cu_q[b + 1] - q0;
    if (qt * BM >= q_len) return;  // the whole block, before any barrier or copy
    const int kv_len = kv_lens[b];
    const int off = kv_len - q_len;  // position of query 0
    const int kvh = h / (hq / hkv);
    // 32-bit: the launcher keeps one page of all kv heads (page_stride) under 2^31 elements
    const int head_off = kvh * page_size * HD, page_stride = hkv * page_size * HD;
    const int* bt = block_tables + b * max_pages;

    const int qpos_lo = off + qt * BM, qpos_hi = min(off + qt * BM + BM, kv_len) - 1;
    const int kv_end = CAUSAL ? min(kv_len, qpos_hi + 1) : kv_len;
    int kv_begin = window > 0 ? max(0, qpos_lo - window + 1) : 0;
    kv_begin = (kv_begin / BN) * BN;  // < kv_end: kv_end > qpos_hi - (window - 1) >= qpos_lo - window + 1

    // prologue: tile kv_begin into stage 0 (commit group KV(0)), while Q is stored unless Q is staged over
    // stage 0 (QSTAGE0); then the copy starts after every wave has its Q fragments
    const unsigned kv_lane0 = (unsigned)__cvta_generic_to_shared(sKV);  // stage 0's K (byte address)
    // page_size a power of two: its log2, else -1 (ap_copy_kv divides)
    const int shift = (page_size & (page_size - 1)) == 0 ? __ffs(page_size) - 1 : -1;
    // the current tile's first row in the cache (ap_tile_base: page_size a multiple of BN, else 0)
    long long tb_c = ap_tile_base<HD, BN>(bt, kv_begin, page_size, shift, page_stride, head_off);
    auto prologue = [&]() {
        ap_copy_kv_tile<T, HD, BN, NT, KV1 ? 1 : 3>(kv_lane0, k_cache, v_cache, bt, kv_begin, kv_len, page_size, shift, page_stride,
                                                     head_off, tb_c);
        rf_cp_async_commit();
    };
    // Q rows by cp.async too (rows past q_len zero-filled, the address of the block's first row not
    // read). Q in shared memory (!QREG): in KV(0)'s commit group, which the loop's first wait and
    // barrier publish. QREG: its own group, waited for and published here, before the fragment reads.
    for (int v = threadIdx.x; v < BM * NV; v += NT) {
        const int r = v / NV, c = v % NV, qi = qt * BM + r;
        rf_cp_async16(sQ + r * LD + c * 8, q + ((long long)(q0 + (qi < q_len ? qi : qt * BM)) * hq + h) * HD + c * 8, qi < q_len ? 16 : 0);
    }
    if (!QREG) {
        prologue();
    } else {
        rf_cp_async_commit();
        if (!QSTAGE0) prologue();
        rf_cp_async_wait<QSTAGE0 ? 0 : 1>();  // Q landed (KV(0) may still be in flight)
        __syncthreads();
    }
    const int wrow = w * 16 * MT;  // the wave's first query row in the block
    uint32_t qf[MT][KT][4];        // A fragments of the wave's Q rows (QREG; otherwise unused)
    if (QREG) {
#pragma unroll
        for (int t = 0; t < MT; t++)
#pragma unroll
            for (int kk = 0; kk < KT; kk++) ap_ldsm_x4(qf[t][kk], sQ + (wrow + t * 16 + lane % 16) * LD + kk * 16 + (lane / 16) * 8);
    }
    if (QSTAGE0) {
        __syncthreads();  // every wave has read its Q fragments out of stage 0
        prologue();
    }

    float o[MT][ON], m[MT][2], l[MT][2];
#pragma unroll
    for (int t = 0; t < MT; t++) {
#pragma unroll
        for (int i = 0; i < ON; i++) o[t][i] = 0.0f;
        m[t][0] = m[t][1] = RF_NEG_INF;
        l[t][0] = l[t][1] = 0.0f;
    }
    const int wlo = qpos_lo + wrow, whi = wlo + 16 * MT - 1;  // the wave's query positions
    const float sl2 = scale * AP_LOG2E, cap_in = softcap > 0.0f ? scale / softcap : 0.0f, cap_out = softcap * AP_LOG2E;
    // RF_ATTN_FFMA (positive scale, no soft-cap): scores stay unscaled (m too) and exp2 takes
    // s * sl2 - m * sl2 as one FFMA; otherwise scores are multiplied into log2 units first (mul 1).
    // mul > 0 keeps the max and -inf (masked) where they were.
    constexpr bool FFMA = RF_ATTN_FFMA != 0;
    const bool fold = FFMA && softcap <= 0.0f && scale > 0.0f;
    const float mul = fold ? sl2 : 1.0f;

    const unsigned q_lane = (unsigned)__cvta_generic_to_shared(sQ) + ((wrow + lane % 16) * LD + (lane / 16) * 8) * 2;
    int st = 0;
    for (int kt = kv_begin; kt < kv_end; kt += BN, st ^= KV1 ? 0 : 1) {  // KV1: always "stage" 0
        rf_cp_async_wait<0>();  // KV(kt) (KV1: K(kt)) of this thread landed
        __syncthreads();        // ... of every thread; every wave is done with stage st ^ 1 (KV1: with V)
        const int kn = kt + BN;
        // every key of the tile hidden from every row of this wave (causal: all in the future; window: all
        // too old): the wave skips the tile (its m, l, o stay as they are, which is what -inf scores give)
        const bool live = !(CAUSAL && kt > whi) && !(window > 0 && kt + BN - 1 <= wlo - window);
        // KV1 + AP_KV1_SPREAD (an experiment, off; the rest of it compiles away): the next tile's first row,
        // loaded here, half a tile before K(kn)'s copy; V(kt)'s copy spread over Q.K^T's k steps where the wave
        // runs them and the tile is in one page. Kept in place rather than removed: without it ptxas allocates
        // the default kernel's registers differently from the text timed and tested in call E.
        constexpr bool SPREAD = KV1 && AP_KV1_SPREAD && NT % NV == 0;
        const bool one_page = page_size % BN == 0;
        const long long tb_n = SPREAD && kn < kv_end ? ap_tile_base<HD, BN>(bt, kn, page_size, shift, page_stride, head_off) : 0;
        const bool spread_v = SPREAD && one_page && live;
        const ApSpread<T, HD, BN, NT> sv(kv_lane0 + BN * LD * 2, v_cache, kt, kv_len, tb_c);
        if (KV1 && !spread_v) {  // V(kt) under Q.K^T and the softmax
            ap_copy_kv_tile<T, HD, BN, NT, 2>(kv_lane0, k_cache, v_cache, bt, kt, kv_len, page_size, shift, page_stride, head_off,
                                              SPREAD ? tb_c : ap_tile_base<HD, BN>(bt, kt, page_size, shift, page_stride, head_off));
            rf_cp_async_commit();
        }
        auto issue_next = [&]() {
            if (kn < kv_end)
                ap_copy_kv_tile<T, HD, BN, NT>(kv_lane0 + (st ^ 1) * (2 * BN * LD * 2), k_cache, v_cache, bt, kn, kv_len, page_size,
                                               shift, page_stride, head_off,
                                               ap_tile_base<HD, BN>(bt, kn, page_size, shift, page_stride, head_off));
            rf_cp_async_commit();
        };
        if (!LATE && !KV1) {
            issue_next();
            RF_SYNC_WAVE();  // (as before P.V: the copy's address registers die before Q.K^T starts)
        }
        // the lane's ldmatrix addresses in this stage (K: keys lane % 8 + (j8 / 2) * 8, column half j8 % 2;
        // V, transposed: keys lane % 8 + (j8 % 2) * 8, column half j8 / 2); fragments add constants
        const unsigned k_lane = kv_lane0 + st * (2 * BN * LD * 2) + ((lane % 8 + (j8 / 2) * 8) * LD + (j8 % 2) * 8) * 2;
        const unsigned v_lane = kv_lane0 + st * (2 * BN * LD * 2) + BN * LD * 2 + ((lane % 8 + (j8 % 2) * 8) * LD + (j8 / 2) * 8) * 2;

        float s[MT][SN];
        if (live) {
            // S = Q K^T (as MMSync::qk, each K fragment feeding MT m tiles)
#pragma unroll
            for (int t = 0; t < MT; t++)
#pragma unroll
                for (int i = 0; i < SN; i++) s[t][i] = 0.0f;
#if AP_QK_PIPE
            // the fragments of k step kk + 1 (Q and every K column block) are read while step kk's mma run
            uint32_t fq[2][MT][4], fk[2][NB][4];
            auto frags = [&](int kk, int b) {
#pragma unroll
                for (int t = 0; t < MT; t++) {
                    if (QREG) {
#pragma unroll
                        for (int x = 0; x < 4; x++) fq[b][t][x] = qf[t][kk][x];
                    } else {
                        ap_ldsm_x4_s(fq[b][t], q_lane + (t * 16 * LD + kk * 16) * 2);
                    }
                }
#pragma unroll
                for (int np = 0; np < NB; np++) ap_ldsm_x4_s(fk[b][np], k_lane + (np * 16 * LD + kk * 16) * 2);
            };
            frags(0, 0);
#pragma unroll
            for (int kk = 0; kk < KT; kk++) {
                if (spread_v) sv.template spread<KT>(kk);
                if (kk + 1 < KT) frags(kk + 1, (kk + 1) & 1);
#pragma unroll
                for (int np = 0; np < NB; np++)
#pragma unroll
                    for (int t = 0; t < MT; t++) {
                        ap_mma(s[t] + (2 * np) * 4, fq[kk & 1][t], fk[kk & 1][np][0], fk[kk & 1][np][1], (T*)nullptr);
                        ap_mma(s[t] + (2 * np + 1) * 4, fq[kk & 1][t], fk[kk & 1][np][2], fk[kk & 1][np][3], (T*)nullptr);
                    }
            }
#else
#pragma unroll
            for (int kk = 0; kk < KT; kk++) {
                if (spread_v) sv.template spread<KT>(kk);
                uint32_t qa[MT][4];
#pragma unroll
                for (int t = 0; t < MT; t++) {
                    if (QREG) {
#pragma unroll
                        for (int x = 0; x < 4; x++) qa[t][x] = qf[t][kk][x];
                    } else {
                        ap_ldsm_x4_s(qa[t], q_lane + (t * 16 * LD + kk * 16) * 2);
                    }
                }
#pragma unroll
                for (int np = 0; np < NB; np++) {
                    uint32_t bk[4];  // keys np*16 + 0..7 (k lo, k hi), then np*16 + 8..15 (k lo, k hi)
                    ap_ldsm_x4_s(bk, k_lane + (np * 16 * LD + kk * 16) * 2);
#pragma unroll
                    for (int t = 0; t < MT; t++) {
                        ap_mma(s[t] + (2 * np) * 4, qa[t], bk[0], bk[1], (T*)nullptr);
                        ap_mma(s[t] + (2 * np + 1) * 4, qa[t], bk[2], bk[3], (T*)nullptr);
                    }
                }
            }
#endif
        }
        // LATE: the next tile's copy is issued once Q.K^T is: its block-table loads wait under the mma
        // instead of in front of them (the copy then has the softmax and P.V to land in, not the tile)
        if (LATE && !KV1) issue_next();
        if (spread_v) rf_cp_async_commit();  // V(kt), spread over Q.K^T
        if (live) {
            // scores in log2 units (or, folded, in raw units: log2 units once multiplied by mul)
            if (softcap > 0.0f) {
#pragma unroll
                for (int t = 0; t < MT; t++)
#pragma unroll
                    for (int i = 0; i < SN; i++) s[t][i] = cap_out * tanhf(s[t][i] * cap_in);
            } else if (!fold) {
#pragma unroll
                for (int t = 0; t < MT; t++)
#pragma unroll
                    for (int i = 0; i < SN; i++) s[t][i] *= sl2;
            }
            const bool need_mask = kt + BN > kv_len || (CAUSAL && kt + BN - 1 > wlo) || (window > 0 && kt <= whi - window);
            if (need_mask) {
#pragma unroll
                for (int t = 0; t < MT; t++)
#pragma unroll
                    for (int i = 0; i < SN; i++) {
                        const int qp = wlo + t * 16 + F::srow(i, lane), key = kt + F::scol(i, lane);
                        if (key >= kv_len || (CAUSAL && key > qp) || (window > 0 && key <= qp - window)) s[t][i] = RF_NEG_INF;
                    }
            }
            // online softmax, per m tile and row slot (rows lane / 4 and lane / 4 + 8), with a lazy
            // reference: a row's m (the max the exponents subtract) moves only when the tile's max
            // exceeds it by more than AP_RESCALE_LOG2 (log2 units), and O and l are rescaled only when
            // some row of the wave's m tile moved. Otherwise P may reach 2^AP_RESCALE_LOG2, which f16/bf16 P and
            // the f32 O and l hold exactly as well (the final O / l uses the same reference for both).
            // Past the first tiles the max seldom jumps that far, so the 16 * MT * HD / 32 multiplies of
            // the rescale (as many as the tile's mma) are mostly skipped.
#pragma unroll
            for (int t = 0; t < MT; t++) {
                float tmax[2];
                bool grow = false;
#pragma unroll
                for (int jj = 0; jj < 2; jj++) {
                    tmax[jj] = F::row_max(ap_slot_max<SN>(s[t], jj));
                    grow |= tmax[jj] * mul > m[t][jj] * mul + AP_RESCALE_LOG2;  // m = -inf: any finite max
                }
                if (RF_ANY(grow)) {
                    float alpha[2];
#pragma unroll
                    for (int jj = 0; jj < 2; jj++) {
                        alpha[jj] = 1.0f;
                        if (tmax[jj] * mul > m[t][jj] * mul + AP_RESCALE_LOG2) {
                            alpha[jj] = ap_exp2((m[t][jj] - tmax[jj]) * mul);  // m = -inf: 0
                            m[t][jj] = tmax[jj];
                        }
                        l[t][jj] *= alpha[jj];
                    }
#pragma unroll
                    for (int i = 0; i < ON; i++) o[t][i] *= alpha[F::slot(i)];
                }
                float sub[2];  // the subtrahend in log2 units (0 while a row has seen only masked keys)
#pragma unroll
                for (int jj = 0; jj < 2; jj++) sub[jj] = m[t][jj] == RF_NEG_INF ? 0.0f : m[t][jj] * mul;
#pragma unroll
                for (int i = 0; i < SN; i++) s[t][i] = ap_exp2(FFMA ? fmaf(s[t][i], mul, -sub[F::slot(i)]) : s[t][i] - sub[F::slot(i)]);
#pragma unroll
                for (int i = 0; i < SN; i++) l[t][F::slot(i)] += s[t][i];
            }
        }
        const bool spread_k = SPREAD && one_page && live && kn < kv_end;
        const ApSpread<T, HD, BN, NT> sk(kv_lane0, k_cache, kn, kv_len, tb_n);
        if (KV1) {
            rf_cp_async_wait<0>();  // V(kt) of this thread landed
            __syncthreads();        // ... of every thread; every wave is done with K(kt)
            if (!spread_k) {  // K(kt + BN) under P.V (an empty group after the last tile)
                if (kn < kv_end)
                    ap_copy_kv_tile<T, HD, BN, NT, 1>(kv_lane0, k_cache, v_cache, bt, kn, kv_len, page_size, shift, page_stride,
                                                      head_off,
                                                      SPREAD ? tb_n : ap_tile_base<HD, BN>(bt, kn, page_size, shift, page_stride, head_off));
                rf_cp_async_commit();
            }
        }
        RF_SYNC_WAVE();  // keeps ptxas from hoisting P.V's fragment loads into the softmax (registers)
        if (live) {
            // O += P V (as MMSync::pv, each V fragment feeding MT m tiles; bf16 P as hi + lo)
#pragma unroll
            for (int kk = 0; kk < NB; kk++) {
                if (spread_k) sk.template spread<NB>(kk);
                uint32_t pa[MT][4], pl[MT][4];
#pragma unroll
                for (int t = 0; t < MT; t++)
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        const float x = s[t][(2 * kk + i / 2) * 4 + (i % 2) * 2], y = s[t][(2 * kk + i / 2) * 4 + (i % 2) * 2 + 1];
                        pa[t][i] = ap_pack(x, y, (T*)nullptr);
                        if (SPLIT) pl[t][i] = ap_pack(x - __uint_as_float(pa[t][i] << 16), y - __uint_as_float(pa[t][i] & 0xffff0000u), (T*)nullptr);
                    }
#pragma unroll
                for (int np = 0; np < HD / 16; np++) {
                    uint32_t bv[4];  // V rows kk*16 + 0..7 / 8..15 of columns np*16 + 0..7, then np*16 + 8..15
                    ap_ldsm_x4_ts(bv, v_lane + (kk * 16 * LD + np * 16) * 2);
#pragma unroll
                    for (int t = 0; t < MT; t++) {
                        ap_mma(o[t] + (2 * np) * 4, pa[t], bv[0], bv[1], (T*)nullptr);
                        ap_mma(o[t] + (2 * np + 1) * 4, pa[t], bv[2], bv[3], (T*)nullptr);
                        if (SPLIT) {
                            ap_mma(o[t] + (2 * np) * 4, pl[t], bv[0], bv[1], (T*)nullptr);
                            ap_mma(o[t] + (2 * np + 1) * 4, pl[t], bv[2], bv[3], (T*)nullptr);
                        }
                    }
                }
            }
        }
        if (spread_k) rf_cp_async_commit();  // K(kn), spread over P.V
        tb_c = tb_n;
    }
    // the last tile committed an empty group: nothing is in flight here

#pragma unroll
    for (int t = 0; t < MT; t++) {
#pragma unroll
        for (int jj = 0; jj < 2; jj++) {
            const float z = F::row_sum(l[t][jj]);
            l[t][jj] = z > 0.0f ? 1.0f / z : 0.0f;
        }
        // elements i, i + 1 (i even) are columns c, c + 1 of one row: one 4-byte store
#pragma unroll
        for (int i = 0; i < ON; i += 2) {
            const int qi = qt * BM + wrow + t * 16 + F::orow(i, lane);
            const float r = l[t][F::slot(i)];
            if (qi < q_len)
                *(uint32_t*)(out + ((long long)(q0 + qi) * hq + h) * HD + F::ocol(i, lane)) = ap_pack(o[t][i] * r, o[t][i + 1] * r, (T*)nullptr);
        }
    }
}
#endif
