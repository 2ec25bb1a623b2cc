// Decode attention over the paged KV cache (flash-decoding): a few query tokens per sequence, GQA-aware.
//
// q [nseq * nq][hq][HD]; cache [pages][hkv][page][HD] (kv_cache.hip); kv_lens[b] includes the new tokens.
// Query token i (0 <= i < nq) of sequence b sits at position kv_lens[b] - nq + i and sees keys up to it
// (and, with window > 0, only keys > pos - window).
// Block = (split, kv head x row group, sequence), DEC_NW waves. The block's rows are the G = hq/hkv query
// heads of its kv head times the nq tokens (up to R of them), so every K/V row is loaded once for all of them.
//
// Streaming: a token's K (and V) row is read by NVP = pow2ceil(HD/8) lanes with one 16-byte load each
// (NV = HD/8 of them active), so a wave reads TPW = RF_WAVE/NVP tokens per load instruction and KT of
// them per lane per iteration (K and V of all KT tokens are in flight together). Scores are reduced over
// the NVP lanes by shuffles; every token group keeps its own online-softmax state (m, l, o[8 dims]) in
// registers, with the query rows (pre-scaled, f32) in registers too. At the end the groups of a wave are
// merged by shuffles, the waves through shared memory, and the block writes one part per split
// (o unnormalized, m in log2 units, l) for attn_merge, or, with a single split, the output itself.
// With fuse_merge, the parts are merged here instead of by attn_merge: the last block of each
// (sequence, kv head, row group) to finish (counted in counters[], which that block sets back to 0 for
// the next launch) merges every split's part of its rows, one float4 of a row per thread.

#define DEC_NW 4
// cp.async stages per wave (NVIDIA sm_80+; attn_decode's launcher sizes the shared ring from it)
#define DEC_ST 4
#define DEC_LOG2E 1.4426950408889634f

template <int N> struct DecPow2 { static constexpr int v = 2 * DecPow2<(N + 1) / 2>::v; };
template <> struct DecPow2<1> { static constexpr int v = 1; };

RF_DEVICE void dec_unpack8(uint4 u, float* f, rf_half*) {
    const rf_half* h = (const rf_half*)&u;
#pragma unroll
    for (int j = 0; j < 8; j++) f[j] = __half2float(h[j]);
}
RF_DEVICE void dec_unpack8(uint4 u, float* f, rf_bf16*) {
    const unsigned int w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int j = 0; j < 4; j++) {
        f[2 * j] = __uint_as_float(w[j] << 16);
        f[2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u);
    }
}

// Loads of other blocks' parts in the merge: past L1 on NVIDIA (not coherent within a kernel); on AMD the
// device-scope fence before them already invalidates the vector L1.
#if defined(__CUDACC__)
RF_DEVICE float dec_ld_cg(const float* p) { return __ldcg(p); }
RF_DEVICE float4 dec_ld_cg(const float4* p) { return __ldcg(p); }
#else
RF_DEVICE float dec_ld_cg(const float* p) { return *(const volatile float*)p; }
RF_DEVICE float4 dec_ld_cg(const float4* p) { return *p; }
#endif

// The end of a decode block (attn_decode, attn_decode_mc): the NW waves' partial rows, in shared memory as
// s_o [NW][R][HD] (unnormalized, relative to the wave's row max) and s_ml [NW][R][2] (that max in log2
// units, the row sum), are merged into the split's part (blockIdx.x of gridDim.x; o unnormalized, m, l)
// or, with a single split, into the output; with fuse_merge, the last block of the row group to finish
// merges every split's part of its rows. Every thread of the block calls it. Whoever writes output rows
// also quantizes them for the next GEMV when xq is not null (rf_q8_put / rf_q8_put4: the output as the
// q8_act kernel would from the stored T values, at the same flat index): every lane of a wave runs the
// same iterations for the shuffles, and the 16 elements of a group (HD % 16 == 0) are valid together.
template <typename T, int HD, int R, int NW>
RF_DEVICE void dec_finish(const float* s_o, const float* s_ml, int b, int kvh, int rg, int G, int rows_total, int nq, int hq,
                          float* RF_RESTRICT o_part, float* RF_RESTRICT ml_part, T* RF_RESTRICT out, int* RF_RESTRICT counters,
                          int fuse_merge, signed char* RF_RESTRICT xq, float2* RF_RESTRICT xs) {
    // ---- merge the waves; write the split's part (or, with one split, the output)
    constexpr int NT = NW * RF_WAVE;
    const int nsplit = gridDim.x;
    // the group's rows past rows_total are skipped, unless the 8-bit copy needs every lane in every pass
    const int rv = nsplit > 1 || xq == nullptr ? max(0, min(R, rows_total - rg * R)) : R;
    for (int e0 = 0; e0 < rv * HD; e0 += NT) {
        const int e = e0 + threadIdx.x;
        const int r = min(e / HD, R - 1), d = e % HD, rr = rg * R + r;
        const bool valid = e < R * HD && rr < rows_total;
        if (!valid && (nsplit > 1 || xq == nullptr)) continue;
        float M = RF_NEG_INF;
#pragma unroll
        for (int i = 0; i < NW; i++) M = fmaxf(M, s_ml[(i * R + r) * 2]);
        const float mu = M == RF_NEG_INF ? 0.0f : M;
        float L = 0.0f, acc = 0.0f;
#pragma unroll
        for (int i = 0; i < NW; i++) {
            const float c = exp2f(s_ml[(i * R + r) * 2] - mu);
            L += c * s_ml[(i * R + r) * 2 + 1];
            acc += c * s_o[(i * R + r) * HD + d];
        }
        const long long row = (long long)(b * nq + rr / G) * hq + kvh * G + rr % G;
        if (nsplit == 1) {
            const T v = rf_from_f32<T>(L > 0.0f ? acc / L : 0.0f);
            if (valid) out[row * HD + d] = v;
            if (xq != nullptr) rf_q8_put(rf_to_f32(v), valid, row * HD + d, xq, xs);
        } else {
            o_part[(row * nsplit + blockIdx.x) * HD + d] = acc;
            if (d == 0) {
                ml_part[(row * nsplit + blockIdx.x) * 2] = M;
                ml_part[(row * nsplit + blockIdx.x) * 2 + 1] = L;
            }
        }
    }
    if (nsplit == 1 || !fuse_merge) return;
    // ---- merge in the last block of the row group (every block of the grid gets here: no early exit above)
    __shared__ int s_last;
    __threadfence();  // this thread's part is visible device-wide before the block is counted
    __syncthreads();
    if (threadIdx.x == 0) {
        int* c = counters + (long long)b * gridDim.y + blockIdx.y;
        const int prev = atomicAdd(c, 1);
        s_last = prev == nsplit - 1;
        if (s_last) *c = 0;  // for the next launch (a graph replays the same counters)
    }
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    constexpr int D4 = HD / 4;
    for (int e0 = 0; e0 < R * D4; e0 += NT) {
        const int e = e0 + threadIdx.x;
        const int r = min(e / D4, R - 1), d4 = e % D4, rr = rg * R + r;
        const bool valid = e < R * D4 && rr < rows_total;
        if (!valid && xq == nullptr) continue;
        const long long row = (long long)(b * nq + min(rr, rows_total - 1) / G) * hq + kvh * G + min(rr, rows_total - 1) % G;
        const float* ml = ml_part + row * nsplit * 2;
        const float4* op = (const float4*)(o_part + row * nsplit * HD) + d4;
        float M = RF_NEG_INF, L = 0.0f;
        float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 4
        for (int p = 0; p < nsplit; p++) {
            const float mp = dec_ld_cg(ml + 2 * p), lp = dec_ld_cg(ml + 2 * p + 1);
            const float4 v = dec_ld_cg(op + (long long)p * D4);
            const float mn = fmaxf(M, mp);
            const float mu = mn == RF_NEG_INF ? 0.0f : mn;
            const float a = exp2f(M - mu), c = exp2f(mp - mu);
            acc.x = acc.x * a + c * v.x;
            acc.y = acc.y * a + c * v.y;
            acc.z = acc.z * a + c * v.z;
            acc.w = acc.w * a + c * v.w;
            L = L * a + c * lp;
            M = mn;
        }
        const float inv = L > 0.0f ? 1.0f / L : 0.0f;
        const T v[4] = {rf_from_f32<T>(acc.x * inv), rf_from_f32<T>(acc.y * inv), rf_from_f32<T>(acc.z * inv),
                        rf_from_f32<T>(acc.w * inv)};
        if (valid) {
            T* o = out + row * HD + 4 * d4;
            o[0] = v[0];
            o[1] = v[1];
            o[2] = v[2];
            o[3] = v[3];
        }
        if (xq != nullptr) {
            const float4 f = make_float4(rf_to_f32(v[0]), rf_to_f32(v[1]), rf_to_f32(v[2]), rf_to_f32(v[3]));
            rf_q8_put4(f, valid, row * HD + 4 * d4, xq, xs);
        }
    }
}

// A head row as HD / 8 items of 16 bytes, the unit in which the decode kernels load, rotate and store query
// rows and the fused append's K rows: item c < n_rot / 8 is rope group c (rope_group's: normal, elements
// 8c .. 8c + 7; neox, 4c .. 4c + 3 and n_rot / 2 + 4c .. + 3), a later one (or any, without RoPE, rope <= 0)
// elements 8c .. 8c + 7.
template <typename T>
RF_DEVICE uint4 dec_ld_item(const T* row, int c, int rope, int n_rot) {
    if (rope == 2 && c < n_rot / 8) {
        const uint2 lo = *(const uint2*)(row + 4 * c), hi = *(const uint2*)(row + n_rot / 2 + 4 * c);
        return make_uint4(lo.x, lo.y, hi.x, hi.y);
    }
    return ((const uint4*)row)[c];
}
template <typename T>
RF_DEVICE void dec_st_item(T* row, int c, int rope, int n_rot, uint4 u) {
    if (rope == 2 && c < n_rot / 8) {
        *(uint2*)(row + 4 * c) = make_uint2(u.x, u.y);
        *(uint2*)(row + n_rot / 2 + 4 * c) = make_uint2(u.z, u.w);
    } else {
        ((uint4*)row)[c] = u;
    }
}
// Item c rotated by position ps (rope_pairs: rope_group's arithmetic, so the same bits as rope_group).
template <typename T>
RF_DEVICE uint4 dec_rope_item(uint4 u, int c, int rope, int n_rot, float ps, float log2_base) {
    if (rope <= 0 || c >= n_rot / 8) return u;
    float f[8], a[4], bb[4];
    dec_unpack8(u, f, (T*)nullptr);
    if (rope == 2) {
#pragma unroll
        for (int j = 0; j < 4; j++) { a[j] = f[j]; bb[j] = f[4 + j]; }
    } else {
#pragma unroll
        for (int j = 0; j < 4; j++) { a[j] = f[2 * j]; bb[j] = f[2 * j + 1]; }
    }
    rope_pairs(a, bb, c, n_rot, ps, log2_base);
    if (rope == 2) {
#pragma unroll
        for (int j = 0; j < 4; j++) { f[j] = a[j]; f[4 + j] = bb[j]; }
    } else {
#pragma unroll
        for (int j = 0; j < 4; j++) { f[2 * j] = a[j]; f[2 * j + 1] = bb[j]; }
    }
    rf_vec4<T> h0, h1;
#pragma unroll
    for (int j = 0; j < 4; j++) { h0.v[j] = rf_from_f32<T>(f[j]); h1.v[j] = rf_from_f32<T>(f[4 + j]); }
    const uint2 p0 = *(const uint2*)&h0, p1 = *(const uint2*)&h1;
    return make_uint4(p0.x, p0.y, p1.x, p1.y);
}

// The fused append (rope >= 0; the family's preamble brings rope.hip): the new tokens of sequence b (rows
// b * nq .. of k_new / v_new, [tokens][hkv][HD], token j at slot kv_len - nq + j) whose slot falls in this
// block's split [begin, end) go into the cache, K rotated (rope 1 normal, 2 neox, 0 none), V copied, for kv
// head kvh; the same bytes as kv_append (kv_cache.hip). An item's loads do not wait for kv_len (the source
// row does not depend on it): only its slot, page id and stores do. Every row group's block of the split
// writes the same values; no other block reads those slots. The items go to the block's threads from the last
// one down, so the query rows (DecQ, dealt from wave 0 on) rotate on other waves meanwhile. SYNC: a barrier
// then orders the stores before the block's loads of them (reached by all of the block's threads or none);
// without it, the caller's next barrier does.
template <typename T, int ROPE>
RF_DEVICE void dec_put(const T* ks, const T* vs, T* kd, T* vd, int g, int n_rot, const int* pos, float log2_base, bool in) {
    const uint4 kv = dec_ld_item(ks, g, ROPE, n_rot), vv = ((const uint4*)vs)[g];
    const float ps = ROPE > 0 ? (float)*pos : 0.0f;
    if (!in) return;
    dec_st_item(kd, g, ROPE, n_rot, dec_rope_item<T>(kv, g, ROPE, n_rot, ps, log2_base));
    ((uint4*)vd)[g] = vv;
}
RF_DEVICE bool dec_appends(int rope, int nq, int kv_len, int begin, int end) {
    return rope >= 0 && max(begin, kv_len - nq) < min(end, kv_len);
}
template <typename T, int HD, bool SYNC>
RF_DEVICE void dec_append(const T* k_new, const T* v_new, const int* pos, int rope, int n_rot, float log2_base, T* k_cache,
                          T* v_cache, const int* bt, int page_size, int b, int nq, int kvh, int hkv, int kv_len, int begin, int end) {
    if (rope < 0) return;
    constexpr int NG = HD / 8;
#pragma unroll 1
    for (int i = (int)(blockDim.x - 1 - threadIdx.x); i < nq * NG; i += blockDim.x) {
        const int j = i / NG, g = i % NG, tok = b * nq + j;
        const long long src = ((long long)tok * hkv + kvh) * HD;
        const int slot = kv_len - nq + j;
        const bool in = slot >= begin && slot < end;
        const long long dst = in ? (((long long)bt[slot / page_size] * hkv + kvh) * page_size + slot % page_size) * HD : 0;
        if (rope == 2)
            dec_put<T, 2>(k_new + src, v_new + src, k_cache + dst, v_cache + dst, g, n_rot, pos + tok, log2_base, in);
        else if (rope == 1)
            dec_put<T, 1>(k_new + src, v_new + src, k_cache + dst, v_cache + dst, g, n_rot, pos + tok, log2_base, in);
        else
            dec_put<T, 0>(k_new + src, v_new + src, k_cache + dst, v_cache + dst, g, n_rot, pos + tok, log2_base, in);
    }
    if (SYNC && dec_appends(rope, nq, kv_len, begin, end)) __syncthreads();
}

// The block's query rows, loaded into registers and stored into shared memory (sq, R rows ld elements apart),
// rotated on the way when the append is fused with RoPE (rope > 0), as items (above). Where a row's items fit
// one wave, rows are dealt to the waves in turn (row r to wave r % NW): a row group of a few heads then loads
// and rotates them on as many waves at once, not all on wave 0 (which made each decode step's attention wait
// for one wave's sines in a row, with a barrier before and after).
template <typename T, int HD, int R, int NT>
struct DecQ {
    static constexpr int NV = HD / 8, QPT = (R * NV + NT - 1) / NT;
    uint4 v[QPT];
    float ps[QPT];
    RF_DEVICE static void item(int i, int& r, int& c) {
        if constexpr (RF_WAVE % NV == 0) {
            constexpr int RPW = RF_WAVE / NV, NW = NT / RF_WAVE;
            const int lane = (int)threadIdx.x % RF_WAVE, w = (int)threadIdx.x / RF_WAVE;
            r = (i * RPW + lane / NV) * NW + w;
            c = lane % NV;
        } else {
            const int x = (int)threadIdx.x + i * NT;
            r = x / NV;
            c = x % NV;
        }
    }
    RF_DEVICE void load(const T* q, int b, int nq, int hq, int kvh, int G, int rg, int rows_total, const int* pos, int rope,
                        int n_rot) {
#pragma unroll
        for (int i = 0; i < QPT; i++) {
            int r, c;
            item(i, r, c);
            const int rr = rg * R + r;
            v[i] = make_uint4(0, 0, 0, 0);
            ps[i] = 0.0f;
            if (r < R && rr < rows_total) {
                const T* row = q + ((long long)(b * nq + rr / G) * hq + kvh * G + rr % G) * HD;
                v[i] = rope == 2 ? dec_ld_item(row, c, 2, n_rot) : ((const uint4*)row)[c];
                if (rope > 0) ps[i] = (float)pos[b * nq + rr / G];
            }
        }
    }
    RF_DEVICE void store(T* sq, int ld, int rg, int rows_total, int rope, int n_rot, float log2_base) {
#pragma unroll
        for (int i = 0; i < QPT; i++) {
            int r, c;
            item(i, r, c);
            if (r >= R) continue;
            const bool ok = rg * R + r < rows_total;
            if (rope == 2) dec_st_item(sq + r * ld, c, 2, n_rot, ok ? dec_rope_item<T>(v[i], c, 2, n_rot, ps[i], log2_base) : v[i]);
            else if (rope == 1) dec_st_item(sq + r * ld, c, 1, n_rot, ok ? dec_rope_item<T>(v[i], c, 1, n_rot, ps[i], log2_base) : v[i]);
            else dec_st_item(sq + r * ld, c, 0, n_rot, v[i]);
        }
    }
};

template <typename T, int HD, int R>
RF_DEVICE void attn_decode(const T* RF_RESTRICT q, T* k_cache, T* v_cache,
                           const int* RF_RESTRICT block_tables, const int* RF_RESTRICT kv_lens, int max_pages, int page_size,
                           int nq, int hq, int hkv, float scale, float softcap, int window, int split_tokens,
                           float* RF_RESTRICT o_part, float* RF_RESTRICT ml_part, T* RF_RESTRICT out, int* RF_RESTRICT counters,
                           int fuse_merge, signed char* RF_RESTRICT xq, float2* RF_RESTRICT xs, const T* RF_RESTRICT k_new,
                           const T* RF_RESTRICT v_new, const int* RF_RESTRICT pos, int rope, int n_rot, float log2_base) {
    constexpr int NV = HD / 8, NVP = DecPow2<NV>::v, TPW = RF_WAVE / NVP;
    constexpr int KT = R >= 8 ? 2 : 4;  // tokens per lane per iteration (fewer with many rows: registers)
    constexpr int CH = TPW * KT;        // tokens per wave iteration
    static_assert(HD % 8 == 0 && NVP <= RF_WAVE, "head_dim");
    // float4 elements: the wave merge stores float4s into s_o, whatever the layout of the block's other
    // static shared variables (dec_finish's among them) puts before it
    __shared__ float4 s_o4[DEC_NW][R][HD / 4];
    __shared__ float s_ml[DEC_NW][R][2];

    const int split = blockIdx.x, b = blockIdx.z;
    const int G = hq / hkv;
    const int rows_total = G * nq;
    const int groups = (rows_total + R - 1) / R;
    const int kvh = blockIdx.y / groups, rg = blockIdx.y % groups;
    const int lane = threadIdx.x % RF_WAVE, w = threadIdx.x / RF_WAVE;
    const int gi = lane / NVP, vec = lane % NVP;
    const bool act = vec < NV;
    const int kv_len = kv_lens[b];

    // query rows in registers, scaled (and in log2 units unless a soft-cap comes first)
    const float qs = softcap > 0.0f ? scale : scale * DEC_LOG2E;
    float qf[R][8];
    int lim[R];  // last key each row may see
    // with RoPE fused, the block's rows go through shared memory (s_o4's space, free until the end; the
    // barrier after the loads below keeps it so until every wave has its rows) and are rotated there
    T* const sq = (T*)&s_o4[0][0][0];
    const int begin = split * split_tokens;
    const int end = min(begin + split_tokens, kv_len);
    const int* bt = block_tables + (long long)b * max_pages;
    if (rope > 0) {
        // the rows' loads first, the append's in flight with them (one memory latency, not two in a row); the
        // rows rotate in registers on their way to shared memory, and one barrier publishes them and the append
        DecQ<T, HD, R, DEC_NW * RF_WAVE> qr;
        qr.load(q, b, nq, hq, kvh, G, rg, rows_total, pos, rope, n_rot);
        dec_append<T, HD, false>(k_new, v_new, pos, rope, n_rot, log2_base, k_cache, v_cache, bt, page_size, b, nq, kvh, hkv,
                                 kv_len, begin, end);
        qr.store(sq, HD, rg, rows_total, rope, n_rot, log2_base);
        __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int rr = rg * R + r;
        lim[r] = rr < rows_total ? kv_len - nq + rr / G : -1;
        uint4 u = make_uint4(0, 0, 0, 0);
        if (rr < rows_total && act)
            u = rope > 0 ? *(const uint4*)(sq + r * HD + vec * 8)
                         : ((const uint4*)(q + ((long long)(b * nq + rr / G) * hq + kvh * G + rr % G) * HD))[vec];
        dec_unpack8(u, qf[r], (T*)nullptr);
#pragma unroll
        for (int j = 0; j < 8; j++) qf[r][j] *= qs;
    }
    if (rope > 0) __syncthreads();
    float m[R], l[R], o[R][8];
#pragma unroll
    for (int r = 0; r < R; r++) {
        m[r] = RF_NEG_INF;
        l[r] = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; j++) o[r][j] = 0.0f;
    }
    const long long page_stride = (long long)hkv * page_size * HD;
    const T* kb = k_cache + (long long)kvh * page_size * HD + vec * 8;
    const T* vb = v_cache + (long long)kvh * page_size * HD + vec * 8;
    const bool p2 = (page_size & (page_size - 1)) == 0;
    const int shift = __ffs(page_size) - 1;
    if (rope == 0)  // the append without RoPE (with it: above)
        dec_append<T, HD, true>(k_new, v_new, pos, rope, n_rot, log2_base, k_cache, v_cache, bt, page_size, b, nq, kvh, hkv, kv_len,
                          begin, end);

#if defined(RF_MMA_SYNC)
    // NVIDIA sm_80+: K/V rows go global -> shared with cp.async into a per-wave ring of DEC_ST stages
    // (stage = KT x {K, V} x RF_WAVE lanes x 16 bytes), DEC_ST - 1 iterations in flight with no registers
    // held for them. Each lane reads back only the 16-byte slots it copied itself, so its own
    // wait_group orders them (no barrier). Page ids are read one issue ahead.
    extern __shared__ uint4 dec_smem[];
    uint4* const ring = dec_smem + w * (DEC_ST * KT * 2 * RF_WAVE);
    const int stride_it = DEC_NW * CH;
    const int nit = end > begin + w * CH ? (end - begin - w * CH + stride_it - 1) / stride_it : 0;
    int pg[KT];
    auto pages = [&](int it) {
#pragma unroll
        for (int kt = 0; kt < KT; kt++) {
            const int t = begin + w * CH + it * stride_it + kt * TPW + gi;
            pg[kt] = t < end ? bt[p2 ? t >> shift : t / page_size] : 0;
        }
    };
    auto issue = [&](int it) {  // iteration it's K/V into stage it % DEC_ST (pg holds its page ids)
        uint4* sl = ring + (it % DEC_ST) * KT * 2 * RF_WAVE;
#pragma unroll
        for (int kt = 0; kt < KT; kt++) {
            const int t = begin + w * CH + it * stride_it + kt * TPW + gi;
            const bool ok = act && it < nit && t < end;
            const int row = p2 ? t & (page_size - 1) : t % page_size;
            const long long off = ok ? pg[kt] * page_stride + (long long)row * HD : 0;
            rf_cp_async16(sl + (2 * kt) * RF_WAVE + lane, kb + off, ok ? 16 : 0);
            rf_cp_async16(sl + (2 * kt + 1) * RF_WAVE + lane, vb + off, ok ? 16 : 0);
        }
        rf_cp_async_commit();
    };
    pages(0);
#pragma unroll
    for (int i = 0; i < DEC_ST - 1; i++) {
        issue(i);
        pages(i + 1);
    }
    for (int it = 0; it < nit; it++) {
        issue(it + DEC_ST - 1);  // into the stage iteration it - 1 used (its values are in registers by now)
        pages(it + DEC_ST);
        rf_cp_async_wait<DEC_ST - 1>();  // iteration it's copies (this lane's) have landed
        const int t0 = begin + w * CH + it * stride_it;
        const uint4* sl = ring + (it % DEC_ST) * KT * 2 * RF_WAVE;
        uint4 kr[KT], vr[KT];
#pragma unroll
        for (int kt = 0; kt < KT; kt++) {
            kr[kt] = sl[(2 * kt) * RF_WAVE + lane];
            vr[kt] = sl[(2 * kt + 1) * RF_WAVE + lane];
        }
#else
    // page ids one iteration ahead, so K/V loads never wait on the block table
    int pg[KT];
#pragma unroll
    for (int kt = 0; kt < KT; kt++) {
        const int t = begin + w * CH + kt * TPW + gi;
        pg[kt] = t < end ? bt[p2 ? t >> shift : t / page_size] : 0;
    }
    for (int t0 = begin + w * CH; t0 < end; t0 += DEC_NW * CH) {
        uint4 kr[KT], vr[KT];
#pragma unroll
        for (int kt = 0; kt < KT; kt++) {
            const int t = t0 + kt * TPW + gi;
            kr[kt] = vr[kt] = make_uint4(0, 0, 0, 0);
            if (act && t < end) {
                const int row = p2 ? t & (page_size - 1) : t % page_size;
                const long long off = pg[kt] * page_stride + (long long)row * HD;
                kr[kt] = *(const uint4*)(kb + off);
                vr[kt] = *(const uint4*)(vb + off);
            }
        }
#pragma unroll
        for (int kt = 0; kt < KT; kt++) {
            const int t = t0 + DEC_NW * CH + kt * TPW + gi;
            pg[kt] = t < end ? bt[p2 ? t >> shift : t / page_size] : 0;
        }
#endif
        float s[KT][R];
#pragma unroll
        for (int kt = 0; kt < KT; kt++) {
            float kf[8];
            dec_unpack8(kr[kt], kf, (T*)nullptr);
#pragma unroll
            for (int r = 0; r < R; r++) {
                float a = 0.0f;
#pragma unroll
                for (int j = 0; j < 8; j++) a = fmaf(qf[r][j], kf[j], a);
                s[kt][r] = a;
            }
        }
#pragma unroll
        for (int kt = 0; kt < KT; kt++)
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int x = NVP / 2; x > 0; x >>= 1) s[kt][r] += RF_SHFL_XOR(s[kt][r], x);
        float vf[KT][8];
#pragma unroll
        for (int kt = 0; kt < KT; kt++) dec_unpack8(vr[kt], vf[kt], (T*)nullptr);
#pragma unroll
        for (int r = 0; r < R; r++) {
            float mt = RF_NEG_INF;
#pragma unroll
            for (int kt = 0; kt < KT; kt++) {
                const int t = t0 + kt * TPW + gi;
                float x = s[kt][r];
                if (softcap > 0.0f) x = softcap * tanhf(x / softcap) * DEC_LOG2E;
                const bool ok = t < end && t <= lim[r] && (window <= 0 || t > lim[r] - window);
                x = ok ? x : RF_NEG_INF;
                s[kt][r] = x;
                mt = fmaxf(mt, x);
            }
            const float mn = fmaxf(m[r], mt);
            const float mu = mn == RF_NEG_INF ? 0.0f : mn;
            const float alpha = exp2f(m[r] - mu);
            m[r] = mn;
            l[r] *= alpha;
#pragma unroll
            for (int j = 0; j < 8; j++) o[r][j] *= alpha;
#pragma unroll
            for (int kt = 0; kt < KT; kt++) {
                const float p = exp2f(s[kt][r] - mu);
                l[r] += p;
#pragma unroll
                for (int j = 0; j < 8; j++) o[r][j] = fmaf(p, vf[kt][j], o[r][j]);
            }
        }
    }
#if defined(RF_MMA_SYNC)
    rf_cp_async_wait<0>();  // the ring's last (empty) groups
#endif
    // ---- merge the token groups of the wave (butterfly over the group bits of the lane id)
#pragma unroll
    for (int x = NVP; x < RF_WAVE; x <<= 1) {
#pragma unroll
        for (int r = 0; r < R; r++) {
            const float mo = RF_SHFL_XOR(m[r], x), lo = RF_SHFL_XOR(l[r], x);
            const float mn = fmaxf(m[r], mo);
            const float mu = mn == RF_NEG_INF ? 0.0f : mn;
            const float a = exp2f(m[r] - mu), c = exp2f(mo - mu);
            l[r] = l[r] * a + lo * c;
#pragma unroll
            for (int j = 0; j < 8; j++) o[r][j] = o[r][j] * a + RF_SHFL_XOR(o[r][j], x) * c;
            m[r] = mn;
        }
    }
    if (gi == 0 && act) {
#pragma unroll
        for (int r = 0; r < R; r++) {
            s_o4[w][r][vec * 2] = make_float4(o[r][0], o[r][1], o[r][2], o[r][3]);
            s_o4[w][r][vec * 2 + 1] = make_float4(o[r][4], o[r][5], o[r][6], o[r][7]);
            if (vec == 0) {
                s_ml[w][r][0] = m[r];
                s_ml[w][r][1] = l[r];
            }
        }
    }
    __syncthreads();
    dec_finish<T, HD, R, DEC_NW>(&s_o4[0][0][0].x, &s_ml[0][0][0], b, kvh, rg, G, rows_total, nq, hq, o_part, ml_part, out, counters,
                                 fuse_merge, xq, xs);
}

// ---------------------------------------------------------------- matrix-core decode (attn_decode_mc) (its family's preamble defines
// RF_DMC_* and puts attn_mm.h first)
#if defined(RF_DMC_BN)
#define DMC_BATCH 4  // without cp.async: 16-byte loads a lane has in flight at once
// attn_decode's work split (block = split x (kv head, row group) x sequence; a row group is R = 16 rows of
// the kv head's G query heads times the nq tokens, one MM fragment) on the matrix cores of the target:
// S = Q K^T and O += P V through MM (attn_mm.h: MMSync, MMAmd), so a K/V row costs a share of an mma
// instead of per-lane dot products and shuffle reductions. The block's RF_DMC_NW waves take turns over the
// split's tiles of RF_DMC_BN keys (wave w: tiles w, w + NW, ...), each wave with its own K/V stages in
// shared memory, so the loop has no block barrier; rows past the group's (Q zero) are computed, never
// written. The waves' (m, l, O) meet in shared memory at the end (dec_finish).
// NVIDIA (RF_MMA_SYNC): a wave's tiles go global -> shared by cp.async into a ring of RF_DMC_ST stages,
// RF_DMC_ST - 1 tiles in flight under the math; each lane waits for its own copies and the wave barrier
// then publishes the tile to the whole wave. Elsewhere: a tile is loaded into registers (K, then V) and
// stored into the wave's one stage.
// Shared memory (T elements, rows of LD = HD + AP_PAD): [Q: R rows][wave 0: ST stages of (K: BN rows, V:
// BN rows), MM::SCRATCH bytes][wave 1 ...]; after the loop the waves' area holds dec_finish's s_o, s_ml.
template <typename T, int HD, class MM>
RF_DEVICE void attn_decode_mc(const T* RF_RESTRICT q, T* k_cache, T* v_cache,
                              const int* RF_RESTRICT block_tables, const int* RF_RESTRICT kv_lens, int max_pages, int page_size,
                              int nq, int hq, int hkv, float scale, float softcap, int window, int split_tokens,
                              float* RF_RESTRICT o_part, float* RF_RESTRICT ml_part, T* RF_RESTRICT out, int* RF_RESTRICT counters,
                              int fuse_merge, signed char* RF_RESTRICT xq, float2* RF_RESTRICT xs, const T* RF_RESTRICT k_new,
                              const T* RF_RESTRICT v_new, const int* RF_RESTRICT pos, int rope, int n_rot, float log2_base) {
    constexpr int BN = RF_DMC_BN, NW = RF_DMC_NW, ST = RF_DMC_ST, R = MM::RW, LD = HD + AP_PAD, NV = HD / 8;
    constexpr int STAGE = 2 * BN * LD;                        // T elements: K rows, then V rows
    constexpr int WAVE_ELEMS = ST * STAGE + MM::SCRATCH / 2;  // a wave's stages and P scratch
    constexpr int CH = BN * NV, IT = (CH + RF_WAVE - 1) / RF_WAVE;  // 16-byte chunks of a K (or V) tile; per lane
    static_assert(R == 16 && BN % 16 == 0 && HD % 16 == 0 && MM::SCRATCH % 16 == 0 && sizeof(T) == 2, "decode tiles");
    static_assert(NW * WAVE_ELEMS * 2 >= NW * R * (HD + 2) * 4, "dec_finish's s_o and s_ml fit in the waves' area");
    extern __shared__ uint4 dmc_smem[];
    T* const sQ = (T*)dmc_smem;
    const int lane = threadIdx.x % RF_WAVE, w = threadIdx.x / RF_WAVE;
    T* const ring = sQ + R * LD + w * WAVE_ELEMS;
    unsigned char* const scratch = (unsigned char*)(ring + ST * STAGE);

    const int split = blockIdx.x, b = blockIdx.z;
    const int G = hq / hkv, rows_total = G * nq, groups = (rows_total + R - 1) / R;
    const int kvh = blockIdx.y / groups, rg = blockIdx.y % groups;
    const int kv_len = kv_lens[b];
    // Q's rows into registers first: their loads, the first tile's page ids and the fused append's loads
    // are then in flight together (one memory latency where they were three in a row); stored below
    DecQ<T, HD, R, NW * RF_WAVE> qr;
    qr.load(q, b, nq, hq, kvh, G, rg, rows_total, pos, rope, n_rot);
    // keys [lo, end) of this split: the earliest row (token 0, at kv_len - nq) sees keys > kv_len - nq - window
    const int begin = split * split_tokens, end = min(begin + split_tokens, kv_len);
    const int lo = window > 0 ? max(begin, kv_len - nq + 1 - window) : begin;
    const int ntiles = end > lo ? (end - lo + BN - 1) / BN : 0;
    const int nit = ntiles > w ? (ntiles - w + NW - 1) / NW : 0;
    // the last key row slot j sees (a row past the group's: every key, its scores are never used)
    int lim[MM::NSLOT];
#pragma unroll
    for (int j = 0; j < MM::NSLOT; j++) {
        const int rr = rg * R + MM::slot_row(j, lane);
        lim[j] = rr < rows_total ? kv_len - nq + rr / G : kv_len - 1;
    }
    // a page of one kv head's rows, and the head's offset in a page (kept 64-bit: as int, gfx90a's hd256 MFMA
    // instance spilled SGPRs)
    const long long page_stride = (long long)hkv * page_size * HD, head_off = (long long)kvh * page_size * HD;
    const int* bt = block_tables + (long long)b * max_pages;
    const int shift = (page_size & (page_size - 1)) == 0 ? __ffs(page_size) - 1 : -1;
    // chunk v of a tile is row chunk_row(v) (its key's offset in the tile) and column group chunk_col(v); a
    // lane's column is the same in every chunk where the wave is a multiple of NV (the row steps then fold)
    auto chunk_row = [&](int v) { return RF_WAVE % NV == 0 ? lane / NV + (v - lane) / NV : v / NV; };
    auto chunk_col = [&](int v) { return RF_WAVE % NV == 0 ? lane % NV : v % NV; };
    // the key of chunk v of the tile at kt, and its page; a key past the split's end reads the split's last
    // key (its copy is zero-filled on NVIDIA, zeroed elsewhere)
    auto chunk_key = [&](int kt, int v) { return min(kt + chunk_row(v), end - 1); };
    auto page_of = [&](int key) { return shift >= 0 ? key >> shift : key / page_size; };
    // element offset (in either cache) of chunk v of the tile at kt, whose key is on page id `page`
    auto chunk_off = [&](int kt, int v, int page) -> long long {
        const int key = chunk_key(kt, v);
        const int row = shift >= 0 ? key & (page_size - 1) : key % page_size;
        return (long long)page * page_stride + (head_off + row * HD + chunk_col(v) * 8);
    };
    // The page ids of this lane's chunks of tile it, read one tile ahead: a copy's address then never
    // waits on a block-table load (ncu, eighth session: those loads held up each tile's issue).
    int pid[IT];
    auto fetch_pages = [&](int it) {
        if (it < nit) {
            const int kt = lo + (w + it * NW) * BN;
#pragma unroll
            for (int i = 0; i < IT; i++) {
                const int v = lane + i * RF_WAVE;
                pid[i] = CH % RF_WAVE == 0 || v < CH ? bt[page_of(chunk_key(kt, v))] : 0;
            }
        }
    };
    fetch_pages(0);
    // the append (on the last waves) and the rows' RoPE (from wave 0 on) side by side; the barrier below
    // publishes both
    dec_append<T, HD, false>(k_new, v_new, pos, rope, n_rot, log2_base, k_cache, v_cache, bt, page_size, b, nq, kvh, hkv, kv_len,
                             begin, end);
    qr.store(sQ, LD, rg, rows_total, rope, n_rot, log2_base);
    // a block that appends reads the new rows after the barrier; the others start their copies before it
    const bool appends = dec_appends(rope, nq, kv_len, begin, end);
#if defined(RF_MMA_SYNC)
    auto issue = [&](int it) {  // tile it of this wave into stage it % ST (an empty group past the last)
        if (it < nit) {
            const int kt = lo + (w + it * NW) * BN;
            T* const st = ring + (it % ST) * STAGE;
#pragma unroll
            for (int i = 0; i < IT; i++) {
                const int v = lane + i * RF_WAVE;
                if (CH % RF_WAVE == 0 || v < CH) {
                    const long long off = chunk_off(kt, v, pid[i]);
                    const int kr = chunk_row(v), n = kt + kr < end ? 16 : 0;
                    rf_cp_async16(st + kr * LD + chunk_col(v) * 8, k_cache + off, n);
                    rf_cp_async16(st + (BN + kr) * LD + chunk_col(v) * 8, v_cache + off, n);
                }
            }
        }
        rf_cp_async_commit();
        fetch_pages(it + 1);  // issue() runs for it = 0, 1, 2, ... in turn
    };
    if (!appends) {
#pragma unroll
        for (int i = 0; i < ST - 1; i++) issue(i);
    }
#endif
    __syncthreads();  // Q rows (and the appended K/V rows) stored
#if defined(RF_MMA_SYNC)
    if (appends) {
#pragma unroll
        for (int i = 0; i < ST - 1; i++) issue(i);
    }
#endif

    float o[MM::ON], m[MM::NSLOT], l[MM::NSLOT];
#pragma unroll
    for (int i = 0; i < MM::ON; i++) o[i] = 0.0f;
#pragma unroll
    for (int j = 0; j < MM::NSLOT; j++) {
        m[j] = RF_NEG_INF;
        l[j] = 0.0f;
    }
    for (int it = 0; it < nit; it++) {
        const int kt = lo + (w + it * NW) * BN;
        T* const st = ring + (it % ST) * STAGE;
#if defined(RF_MMA_SYNC)
        issue(it + ST - 1);  // into the stage of tile it - 1, which every lane of the wave is done with
        rf_cp_async_wait<ST - 1>();  // this lane's copies of tile it landed
#else
        // K, then V, DMC_BATCH chunks a lane at a time: registers for a few loads while O is live
#pragma unroll
        for (int part = 0; part < 2; part++) {
#pragma unroll
            for (int i0 = 0; i0 < IT; i0 += DMC_BATCH) {
                uint4 x[DMC_BATCH];
#pragma unroll
                for (int i = 0; i < DMC_BATCH; i++) {
                    const int v = lane + (i0 + i) * RF_WAVE;
                    x[i] = make_uint4(0, 0, 0, 0);
                    if (i0 + i < IT && (CH % RF_WAVE == 0 || v < CH) && kt + v / NV < end)
                        x[i] = *(const uint4*)((part ? v_cache : k_cache) + chunk_off(kt, v, pid[i0 + i < IT ? i0 + i : 0]));
                }
#pragma unroll
                for (int i = 0; i < DMC_BATCH; i++) {
                    const int v = lane + (i0 + i) * RF_WAVE;
                    if (i0 + i < IT && (CH % RF_WAVE == 0 || v < CH)) *(uint4*)(st + (part * BN + v / NV) * LD + (v % NV) * 8) = x[i];
                }
            }
        }
        fetch_pages(it + 1);
#endif
        RF_SYNC_WAVE();  // tile it is in shared memory for the whole wave
        float s[MM::SN];
        MM::qk(sQ, st, s, lane);
        const bool need_mask = kt + BN > end || kt + BN - 1 > kv_len - nq || (window > 0 && kt <= kv_len - 1 - window);
#pragma unroll
        for (int i = 0; i < MM::SN; i++) {
            float x = s[i] * scale;
            if (softcap > 0.0f) x = softcap * tanhf(x / softcap);
            x *= AP_LOG2E;
            if (need_mask) {
                const int key = kt + MM::scol(i, lane), lj = lim[MM::slot(i)];
                if (key >= end || key > lj || (window > 0 && key <= lj - window)) x = RF_NEG_INF;
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
        MM::pv(s, st + BN * LD, o, scratch, lane);
        RF_SYNC_WAVE();  // every lane is done with this stage before it is refilled
    }
#if defined(RF_MMA_SYNC)
    rf_cp_async_wait<0>();  // the ring's last (empty) groups
#endif
#pragma unroll
    for (int j = 0; j < MM::NSLOT; j++) l[j] = MM::row_sum(l[j]);
    __syncthreads();  // every wave is done with its stages: s_o and s_ml overlay them
    float* const s_o = (float*)(sQ + R * LD);  // [NW][R][HD]
    float* const s_ml = s_o + NW * R * HD;     // [NW][R][2]
#pragma unroll
    for (int i = 0; i < MM::ON; i++) s_o[(w * R + MM::orow(i, lane)) * HD + MM::ocol(i, lane)] = o[i];
#pragma unroll
    for (int j = 0; j < MM::NSLOT; j++) {  // the lanes of a row hold the same m and l
        s_ml[(w * R + MM::slot_row(j, lane)) * 2] = m[j];
        s_ml[(w * R + MM::slot_row(j, lane)) * 2 + 1] = l[j];
    }
    __syncthreads();
    dec_finish<T, HD, R, NW>(s_o, s_ml, b, kvh, rg, G, rows_total, nq, hq, o_part, ml_part, out, counters, fuse_merge, xq,
                             xs);
}
#endif
