// gemv_wave: the first fused dequant x vector kernel, kept as the batch-1 variant `rows 8` of
// rocmforge::ops::quantized::gemv (it measured faster at batch 1 than the staged SIMT kernel of
// gemv.hip for the 32-element formats; see docs/PERF_quant.md).
// y[b][r] = sum_k W[r][k] * x[b][k]. One group of LG lanes per R rows (LG = the wave: one wave per R
// rows), NW waves per block. Each lane takes U consecutive octets (8 elements) per step (U = 4: a whole
// block for the 32-element formats), dequantizes them with the format's dequant8 straight from global
// memory, reads the matching x through L1 and accumulates in f32; a butterfly reduction over the group
// ends each row. Smaller groups with U = 2 (family gemv_wave_g, rf_gemv_groups) are for short rows: 576
// columns keep 18 of 32 lanes busy one octet group a lane, and the output GEMV of a small model (49152 x
// 576, 262144 x 640) is bound by issue, not memory (docs/PERF.md, sixteenth session); 8 lanes of 2 octets
// keep 90-100 % of them busy.
// GLU (1 SiLU, 2 GELU-tanh): W is [gate; up], 2 * rows rows; a wave takes its R gate rows and the R
// matching up rows, and writes y = act(gate) * up (rows = rows of y).

// The weights a GEMV block reads, prefetched into L2 in its RF_KERNEL_PROLOGUE_PREFETCH: rows
// [row0, row0 + RB) of W (row0 = blockIdx.x * RB, clamped to `rows`), each (cols / QK) blocks of F, and with
// GLU the matching up rows rows + row0 .. of the stacked [gate; up]. Only gemv_wave (the batch-1 float
// GEMV of the small models' decode) does, and only for matrices of at most RF_PREFETCH_MAX_BYTES: a small
// GEMV waits on the latency of its few loads in flight, and the block's whole slice asked for at once
// shortens that (SmolLM2 decode +2-4 % on the H200); a large one is bound by bandwidth, which a second
// request stream only costs (Llama-3-8B decode -5 % with every matrix prefetched), and in gemv_q8 the
// inlined prologue alone cost the 8B's decode 8 % through ptxas' scheduling (docs/PERF.md, ninth session).
#ifndef RF_PREFETCH_MAX_BYTES
#define RF_PREFETCH_MAX_BYTES (4ll << 20)
#endif
template <typename F, int RB, int GLU>
RF_DEVICE void rf_gemv_prefetch(const unsigned char* w, int rows, int cols) {
    const long long row_bytes = (long long)(cols / F::QK) * F::BYTES;
    if ((long long)rows * (GLU != 0 ? 2 : 1) * row_bytes > RF_PREFETCH_MAX_BYTES) return;
    const int row0 = blockIdx.x * RB;
    const long long bytes = (long long)max(0, min(RB, rows - row0)) * row_bytes;
    rf_prefetch_l2(w + row0 * row_bytes, bytes);
    if (GLU != 0) rf_prefetch_l2(w + ((long long)rows + row0) * row_bytes, bytes);
}

// The input of a batch-1 GEMV made in its own blocks (gemv_wave `norm rms` / `rms_post`): the residual
// add and RMSNorm of glue.hip's resid_norm for one row, v = x + post_norm(r), h = f16(RMSNorm(v) * nw),
// with the same f32 operations (the reductions' order differs: NT threads here). Every block computes
// the whole row into shared memory (hs) and block 0 writes v to x_out (another buffer than x: the other
// blocks still read x). A decode step of a small model then spends no launch and no memory round trip
// between the projection that produces r and the GEMV that consumes the norm; the weights this block
// reads are being prefetched into L2 meanwhile (rf_gemv_prefetch). A thread's RF_GEMV_NORM_EPT
// elements stay in registers: rows of at most RF_GEMV_NORM_EPT * NT elements (checked by the caller).
#define RF_GEMV_NORM_EPT 8
template <int NT, int POST>
RF_DEVICE void rf_gemv_norm_in(const float* RF_RESTRICT x, const rf_half* RF_RESTRICT r, const float* RF_RESTRICT post_w,
                               const float* RF_RESTRICT nw, float* RF_RESTRICT x_out, rf_half* hs, int cols, float eps) {
    __shared__ float scratch[NT / RF_WAVE];
    constexpr int E = RF_GEMV_NORM_EPT;
    float xv[E], rv[E], pv[E], wv[E];
#pragma unroll
    for (int k = 0; k < E; ++k) {
        const int i = threadIdx.x + k * NT;
        const bool ok = i < cols;
        xv[k] = ok ? x[i] : 0.0f;
        rv[k] = ok ? rf_to_f32(r[i]) : 0.0f;
        pv[k] = ok && POST ? post_w[i] : 0.0f;
        wv[k] = ok ? nw[i] : 0.0f;
    }
    float post = 1.0f;
    if constexpr (POST != 0) {
        float acc = 0.0f;
#pragma unroll
        for (int k = 0; k < E; ++k) acc += rv[k] * rv[k];
        post = rsqrtf(rf_block_sum<NT>(acc, scratch) / (float)cols + eps);
    }
    float acc = 0.0f;
#pragma unroll
    for (int k = 0; k < E; ++k) {
        float a = rv[k];
        if constexpr (POST != 0) a = a * post * pv[k];
        xv[k] = xv[k] + a;
        acc += xv[k] * xv[k];
    }
    if (blockIdx.x == 0) {
#pragma unroll
        for (int k = 0; k < E; ++k) {
            const int i = threadIdx.x + k * NT;
            if (i < cols) x_out[i] = xv[k];
        }
    }
    const float inv = rsqrtf(rf_block_sum<NT>(acc, scratch) / (float)cols + eps);
#pragma unroll
    for (int k = 0; k < E; ++k) {
        const int i = threadIdx.x + k * NT;
        if (i < cols) hs[i] = rf_from_f32<rf_half>(xv[k] * inv * wv[k]);
    }
    __syncthreads();
}

template <typename T>
RF_DEVICE void rf_load8(const T* RF_RESTRICT p, float* v);
template <>
RF_DEVICE void rf_load8<float>(const float* RF_RESTRICT p, float* v) {
    const float4 a = ((const float4*)p)[0], b = ((const float4*)p)[1];
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}
template <>
RF_DEVICE void rf_load8<rf_half>(const rf_half* RF_RESTRICT p, float* v) {
    const uint4 a = *(const uint4*)p;
    const uint32_t w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        v[2 * i] = rf_h2f_bits((uint16_t)(w[i] & 0xffffu));
        v[2 * i + 1] = rf_h2f_bits((uint16_t)(w[i] >> 16));
    }
}
template <>
RF_DEVICE void rf_load8<rf_bf16>(const rf_bf16* RF_RESTRICT p, float* v) {
    const uint4 a = *(const uint4*)p;
    const uint32_t w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        v[2 * i] = __uint_as_float(w[i] << 16);
        v[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}

// Butterfly sum over aligned groups of L lanes (L = the wave: rf_wave_sum); every lane of a group gets
// its group's sum.
template <int L>
RF_DEVICE float rf_lanes_sum(float v) {
#pragma unroll
    for (int m = L / 2; m > 0; m >>= 1) v += RF_SHFL_XOR(v, m);
    return v;
}

// gemv_wave_g's row groups for format F, 32 rows a block of 4 waves either way: 8 lanes and 2 rows a
// group (a quarter wave), or for the formats of 8 bits a weight or more 16 lanes and 4 rows a group
// (H200, sixteenth session, call F: q8_0 262144 x 640 65.6 us against 67.7, 49152 x 576 17.2 against 20.5;
// q4_1 and q5_0 are 10-20 % slower so).
template <typename F>
struct rf_gemv_groups {
    static constexpr bool WIDE = F::BYTES >= F::QK;
    static constexpr int R = WIDE ? 4 : 2;
    static constexpr int LG = WIDE ? RF_WAVE / 2 : RF_WAVE / 4;
};

template <typename F, typename T, int B, int R, int NW, int GLU, int LG = RF_WAVE, int U = 4>
RF_DEVICE void rf_gemv(const uint8_t* RF_RESTRICT w, const T* RF_RESTRICT x, T* RF_RESTRICT y, int rows, int cols, int batch) {
    static_assert(GLU >= 0 && GLU <= 2, "GLU: 0 none, 1 SiLU, 2 GELU-tanh");
    static_assert(RF_WAVE % LG == 0 && LG >= 4, "a row group is a power-of-two part of the wave");
    constexpr int NR = GLU ? 2 * R : R;  // rows of W per group (GLU: R gate rows, then their R up rows)
    constexpr int OPB = F::QK / 8;
    constexpr int G = RF_WAVE / LG;  // row groups per wave
    const int lane = threadIdx.x % RF_WAVE, wid = threadIdx.x / RF_WAVE;
    const int sl = lane % LG;
    const int wbase = (blockIdx.x * NW + wid) * G * R;
    if (wbase >= rows) return;  // wave-uniform; no block-wide synchronization below
    // a group past the last row reads the last row again (clamped below) and writes nothing
    const int rbase = wbase + (lane / LG) * R;
    const int n_oct = cols / 8;
    const long long row_bytes = (long long)(cols / F::QK) * F::BYTES;
    const uint8_t* wr[NR];
#pragma unroll
    for (int r = 0; r < NR; ++r) {
        const int rr = r < R ? min(rbase + r, rows - 1) : rows + min(rbase + r - R, rows - 1);
        wr[r] = w + (long long)rr * row_bytes;
    }
    const T* xb[B];
#pragma unroll
    for (int b = 0; b < B; ++b) xb[b] = x + (long long)min(b, batch - 1) * cols;
    float acc[NR][B];
#pragma unroll
    for (int r = 0; r < NR; ++r)
#pragma unroll
        for (int b = 0; b < B; ++b) acc[r][b] = 0.0f;

    for (int c = sl * U; c < n_oct; c += LG * U) {
        float wv[U][NR][8];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int o = c + u;
            // whole blocks of >= U octets: c < n_oct implies o < n_oct
            if (OPB % U == 0 || o < n_oct) {
#pragma unroll
                for (int r = 0; r < NR; ++r) F::dequant8(wr[r] + (long long)(o / OPB) * F::BYTES, (o % OPB) * 8, wv[u][r]);
            } else {
#pragma unroll
                for (int r = 0; r < NR; ++r)
#pragma unroll
                    for (int i = 0; i < 8; ++i) wv[u][r][i] = 0.0f;
            }
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int o = (OPB % U == 0 || c + u < n_oct) ? c + u : c;
#pragma unroll
            for (int b = 0; b < B; ++b) {
                float xv[8];
                rf_load8<T>(xb[b] + (long long)o * 8, xv);
#pragma unroll
                for (int r = 0; r < NR; ++r)
#pragma unroll
                    for (int i = 0; i < 8; ++i) acc[r][b] += wv[u][r][i] * xv[i];
            }
        }
    }
#pragma unroll
    for (int r = 0; r < NR; ++r)
#pragma unroll
        for (int b = 0; b < B; ++b) acc[r][b] = rf_lanes_sum<LG>(acc[r][b]);
    if (sl == 0) {
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
            for (int b = 0; b < B; ++b) {
                float v = acc[r][b];
                if constexpr (GLU != 0) v = rf_glu_act<GLU>(v) * acc[r + (GLU ? R : 0)][b];
                if (rbase + r < rows && b < batch) y[(long long)b * rows + rbase + r] = rf_from_f32<T>(v);
            }
    }
}
