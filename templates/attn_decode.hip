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

template <typename T, int HD, int R>
RF_DEVICE void attn_decode(const T* RF_RESTRICT q, const T* RF_RESTRICT k_cache, const T* RF_RESTRICT v_cache,
                           const int* RF_RESTRICT block_tables, const int* RF_RESTRICT kv_lens, int max_pages, int page_size,
                           int nq, int hq, int hkv, float scale, float softcap, int window, int split_tokens,
                           float* RF_RESTRICT o_part, float* RF_RESTRICT ml_part, T* RF_RESTRICT out, int* RF_RESTRICT counters,
                           int fuse_merge) {
    constexpr int NV = HD / 8, NVP = DecPow2<NV>::v, TPW = RF_WAVE / NVP;
    constexpr int KT = R >= 8 ? 2 : 4;  // tokens per lane per iteration (fewer with many rows: registers)
    constexpr int CH = TPW * KT;        // tokens per wave iteration
    static_assert(HD % 8 == 0 && NVP <= RF_WAVE, "head_dim");
    __shared__ float s_o[DEC_NW][R][HD];
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
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int rr = rg * R + r;
        lim[r] = rr < rows_total ? kv_len - nq + rr / G : -1;
        uint4 u = make_uint4(0, 0, 0, 0);
        if (rr < rows_total && act) u = ((const uint4*)(q + ((long long)(b * nq + rr / G) * hq + kvh * G + rr % G) * HD))[vec];
        dec_unpack8(u, qf[r], (T*)nullptr);
#pragma unroll
        for (int j = 0; j < 8; j++) qf[r][j] *= qs;
    }
    float m[R], l[R], o[R][8];
#pragma unroll
    for (int r = 0; r < R; r++) {
        m[r] = RF_NEG_INF;
        l[r] = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; j++) o[r][j] = 0.0f;
    }
    const int begin = split * split_tokens;
    const int end = min(begin + split_tokens, kv_len);
    const long long page_stride = (long long)hkv * page_size * HD;
    const T* kb = k_cache + (long long)kvh * page_size * HD + vec * 8;
    const T* vb = v_cache + (long long)kvh * page_size * HD + vec * 8;
    const int* bt = block_tables + (long long)b * max_pages;
    const bool p2 = (page_size & (page_size - 1)) == 0;
    const int shift = __ffs(page_size) - 1;

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
            *(float4*)&s_o[w][r][vec * 8] = make_float4(o[r][0], o[r][1], o[r][2], o[r][3]);
            *(float4*)&s_o[w][r][vec * 8 + 4] = make_float4(o[r][4], o[r][5], o[r][6], o[r][7]);
            if (vec == 0) {
                s_ml[w][r][0] = m[r];
                s_ml[w][r][1] = l[r];
            }
        }
    }
    __syncthreads();
    // ---- merge the waves; write the split's part (or, with one split, the output)
    const int nsplit = gridDim.x;
    for (int e = threadIdx.x; e < R * HD; e += DEC_NW * RF_WAVE) {
        const int r = e / HD, d = e % HD, rr = rg * R + r;
        if (rr >= rows_total) continue;
        float M = RF_NEG_INF;
#pragma unroll
        for (int i = 0; i < DEC_NW; i++) M = fmaxf(M, s_ml[i][r][0]);
        const float mu = M == RF_NEG_INF ? 0.0f : M;
        float L = 0.0f, acc = 0.0f;
#pragma unroll
        for (int i = 0; i < DEC_NW; i++) {
            const float c = exp2f(s_ml[i][r][0] - mu);
            L += c * s_ml[i][r][1];
            acc += c * s_o[i][r][d];
        }
        const long long row = (long long)(b * nq + rr / G) * hq + kvh * G + rr % G;
        if (nsplit == 1) {
            out[row * HD + d] = rf_from_f32<T>(L > 0.0f ? acc / L : 0.0f);
        } else {
            o_part[(row * nsplit + split) * HD + d] = acc;
            if (d == 0) {
                ml_part[(row * nsplit + split) * 2] = M;
                ml_part[(row * nsplit + split) * 2 + 1] = L;
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
    for (int e = threadIdx.x; e < R * D4; e += DEC_NW * RF_WAVE) {
        const int r = e / D4, d4 = e % D4, rr = rg * R + r;
        if (rr >= rows_total) continue;
        const long long row = (long long)(b * nq + rr / G) * hq + kvh * G + rr % G;
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
        T* o = out + row * HD + 4 * d4;
        o[0] = rf_from_f32<T>(acc.x * inv);
        o[1] = rf_from_f32<T>(acc.y * inv);
        o[2] = rf_from_f32<T>(acc.z * inv);
        o[3] = rf_from_f32<T>(acc.w * inv);
    }
}
