// Decode attention over the paged KV cache (flash-decoding): a few query tokens per sequence, GQA-aware.
//
// q [nseq * nq][hq][HD]; cache [pages][hkv][page][HD] (kv_cache.hip); kv_lens[b] includes the new tokens.
// Query token i (0 <= i < nq) of sequence b sits at position kv_lens[b] - nq + i and sees keys up to it
// (and, with window > 0, only keys > pos - window).
// Block = (split, kv head x row group, sequence), NW waves. The block's rows are the G = hq/hkv query heads
// of its kv head times the nq tokens (up to R of them), so every K/V page is read once for all of them.
// The split's tokens are dealt to the waves in tiles of RF_WAVE tokens; each wave keeps its own online
// softmax state and writes an unnormalized partial (o, m, l) for part = split * NW + wave; attn_merge
// combines the parts. Scores are f32 (log2 domain); output of the merge is T.
//
// K phase: lane = token; the lane reads its key row in 16-byte pieces and dots it with the R query rows
// (broadcast from shared memory). V phase: lanes own 8 dims each (HD/8 lanes per token, RF_WAVE/(HD/8)
// tokens at a time); probabilities go through shared memory.

#define DEC_NW 4

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

template <typename T, int HD, int R>
RF_DEVICE void attn_decode(const T* RF_RESTRICT q, const T* RF_RESTRICT k_cache, const T* RF_RESTRICT v_cache,
                           const int* RF_RESTRICT block_tables, const int* RF_RESTRICT kv_lens, int max_pages, int page_size,
                           int nq, int hq, int hkv, float scale, float softcap, int window, int split_tokens,
                           float* RF_RESTRICT o_part, float* RF_RESTRICT ml_part) {
    static_assert(HD % 8 == 0 && HD / 8 <= RF_WAVE, "head_dim");
    constexpr int NV = HD / 8;            // lanes per V row
    constexpr int NG = RF_WAVE / NV;      // V rows per step
    __shared__ float sq[R][HD];
    __shared__ float sp[DEC_NW][R][RF_WAVE];
    __shared__ int spage[DEC_NW][RF_WAVE];
    // V rows a lane loads per tile; prefetched with K (one memory round trip per tile) when they fit
    constexpr int VT = (RF_WAVE + NG - 1) / NG;
    constexpr bool VPRE = HD <= 128;

    const int split = blockIdx.x, b = blockIdx.z;
    const int G = hq / hkv;
    const int rows_total = G * nq;
    const int groups = (rows_total + R - 1) / R;
    const int kvh = blockIdx.y / groups, rg = blockIdx.y % groups;
    const int lane = threadIdx.x % RF_WAVE, w = threadIdx.x / RF_WAVE;
    const int kv_len = kv_lens[b];
    const int nparts = gridDim.x * DEC_NW;
    const int part = split * DEC_NW + w;

    // Stage the R query rows (row r: token r / G, head kvh * G + r % G) as f32, pre-scaled.
    for (int e = threadIdx.x; e < R * HD; e += DEC_NW * RF_WAVE) {
        const int r = e / HD, d = e % HD, rr = rg * R + r;
        float v = 0.0f;
        if (rr < rows_total) v = rf_to_f32(q[((long long)(b * nq + rr / G) * hq + kvh * G + rr % G) * HD + d]);
        sq[r][d] = v;
    }
    __syncthreads();

    int lim[R];  // last key each row may see
#pragma unroll
    for (int r = 0; r < R; r++) lim[r] = kv_len - nq + ((rg * R + r) / G);

    float m[R], lsum[R], o[R][8];
#pragma unroll
    for (int r = 0; r < R; r++) {
        m[r] = RF_NEG_INF;
        lsum[r] = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; j++) o[r][j] = 0.0f;
    }
    const int begin = split * split_tokens;
    const int end = min(begin + split_tokens, kv_len);
    const long long head_off = (long long)kvh * page_size * HD;
    const long long page_stride = (long long)hkv * page_size * HD;
    const int* bt = block_tables + (long long)b * max_pages;

    // page of this lane's token, loaded one tile ahead so K/V loads never wait on the block table
    int pg = begin + w * RF_WAVE + lane < end ? bt[(begin + w * RF_WAVE + lane) / page_size] : 0;
    const int grp = lane / NV, vec = lane % NV;
    for (int tile = begin + w * RF_WAVE; tile < end; tile += DEC_NW * RF_WAVE) {
        // ---- scores: lane = token
        const int t = tile + lane;
        const int tn = t + DEC_NW * RF_WAVE;
        const int pg_next = tn < end ? bt[tn / page_size] : 0;
        spage[w][lane] = pg;
        RF_SYNC_WAVE();
        uint4 vv[VPRE ? VT : 1];
        if (VPRE && grp < NG) {
#pragma unroll
            for (int i = 0; i < VT; i++) {
                const int tt = grp + i * NG, tv = tile + tt;
                if (tt < RF_WAVE && tv < end)
                    vv[i] = ((const uint4*)(v_cache + spage[w][tt] * page_stride + head_off + (long long)(tv % page_size) * HD))[vec];
            }
        }
        float acc[R];
#pragma unroll
        for (int r = 0; r < R; r++) acc[r] = 0.0f;
        if (t < end) {
            const T* kr = k_cache + pg * page_stride + head_off + (long long)(t % page_size) * HD;
            uint4 kv[NV];
#pragma unroll
            for (int c = 0; c < NV; c++) kv[c] = ((const uint4*)kr)[c];
#pragma unroll
            for (int c = 0; c < NV; c++) {
                float kf[8];
                dec_unpack8(kv[c], kf, (T*)nullptr);
#pragma unroll
                for (int r = 0; r < R; r++) {
#pragma unroll
                    for (int j = 0; j < 8; j++) acc[r] = fmaf(sq[r][c * 8 + j], kf[j], acc[r]);
                }
            }
        }
        float alpha[R];
#pragma unroll
        for (int r = 0; r < R; r++) {
            float s = acc[r] * scale;
            if (softcap > 0.0f) s = softcap * tanhf(s / softcap);
            s *= 1.4426950408889634f;  // log2(e): exp2 below
            const bool ok = t < end && t <= lim[r] && (window <= 0 || t > lim[r] - window);
            s = ok ? s : RF_NEG_INF;
            const float mt = rf_wave_max(s);
            const float mn = fmaxf(m[r], mt);
            const float mu = mn == RF_NEG_INF ? 0.0f : mn;
            alpha[r] = exp2f(m[r] - mu);
            const float p = exp2f(s - mu);
            m[r] = mn;
            lsum[r] = lsum[r] * alpha[r] + p;
            sp[w][r][lane] = p;
        }
        RF_SYNC_WAVE();
        // ---- values: lanes own 8 dims
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int j = 0; j < 8; j++) o[r][j] *= alpha[r];
        if (grp < NG) {
#pragma unroll
            for (int i = 0; i < VT; i++) {
                const int tt = grp + i * NG, tv = tile + tt;
                if (tt < RF_WAVE && tv < end) {
                    float vf[8];
                    if (VPRE) dec_unpack8(vv[VPRE ? i : 0], vf, (T*)nullptr);
                    else dec_unpack8(((const uint4*)(v_cache + spage[w][tt] * page_stride + head_off + (long long)(tv % page_size) * HD))[vec], vf, (T*)nullptr);
#pragma unroll
                    for (int r = 0; r < R; r++) {
                        const float p = sp[w][r][tt];
#pragma unroll
                        for (int j = 0; j < 8; j++) o[r][j] = fmaf(p, vf[j], o[r][j]);
                    }
                }
            }
        }
        RF_SYNC_WAVE();
        pg = pg_next;
    }
    // ---- reduce the V groups into group 0, the row sums over the wave; write the part.
#pragma unroll
    for (int r = 0; r < R; r++) {
        lsum[r] = rf_wave_sum(lsum[r]);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            float v = o[r][j];
            for (int g = 1; g < NG; g++) v += RF_SHFL(o[r][j], (lane + g * NV) % RF_WAVE);
            o[r][j] = v;
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int rr = rg * R + r;
        if (rr >= rows_total) continue;
        const long long row = (long long)(b * nq + rr / G) * hq + kvh * G + rr % G;
        if (grp == 0) {
            float* dst = o_part + (row * nparts + part) * HD + vec * 8;
            *(float4*)dst = make_float4(o[r][0], o[r][1], o[r][2], o[r][3]);
            *(float4*)(dst + 4) = make_float4(o[r][4], o[r][5], o[r][6], o[r][7]);
        }
        if (lane == 0) {
            ml_part[(row * nparts + part) * 2] = m[r];
            ml_part[(row * nparts + part) * 2 + 1] = lsum[r];
        }
    }
}
