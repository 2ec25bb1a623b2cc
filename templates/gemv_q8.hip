// gemv_q8: y = W x with the activations x quantized to 8-bit integers and integer dot products
// (dp4a on NVIDIA, sdot4 / sudot4 on AMD), W in its GGUF block format read straight from global
// memory. Two kernels:
//
//  * rf_q8_act (family q8_act): x (batch x cols, f32/f16/bf16) -> per 32 elements d = amax / 127 and
//    q = rint(x * (127 / amax)) as int8 (xq, batch x cols), and per 16 elements the pair
//    (d, d * sum q) (xs, float2, batch x cols/16). The CPU reference (ops::quantized::gemv_q8)
//    does the same f32 operations, so xq and xs are bit-exact.
//  * rf_gemv_q8 (family gemv_q8): every block format is cut into lane units (rf_w8<F>): a unit is
//    NS segments of 16 consecutive elements whose weights are a * code + b with one (a, b) per
//    segment and integer codes that fit a signed byte. A segment against x costs four dp4a:
//    sum_i W_i x_i = a * d * sum_i code_i q_i + b * (d * sum_i q_i) = a * d * sumi + b * xs.y.
//    The NT = NW * wave threads of a block take the units of a row in turn (consecutive threads,
//    consecutive units: the weight loads of a wave cover contiguous bytes), R rows per block and
//    B right-hand sides per thread, and reduce through shuffles and shared memory.

// N little-endian words at p, whose alignment is known to be at least A bytes. Below 4 the words
// come from aligned loads joined by funnel shifts (never touching a word past the one that holds
// the last byte wanted).
RF_DEVICE uint32_t rf_funnel(uint32_t lo, uint32_t hi, uint32_t sh) {
    return (uint32_t)((((unsigned long long)hi << 32) | (unsigned long long)lo) >> sh);
}
template <int N, int A>
RF_DEVICE void rf_ldw(const uint8_t* p, uint32_t* w) {
    if constexpr (A >= 16 && N % 4 == 0) {
#pragma unroll
        for (int i = 0; i < N / 4; ++i) {
            const uint4 v = ((const uint4*)p)[i];
            w[4 * i] = v.x; w[4 * i + 1] = v.y; w[4 * i + 2] = v.z; w[4 * i + 3] = v.w;
        }
    } else if constexpr (A >= 4) {
#pragma unroll
        for (int i = 0; i < N; ++i) w[i] = ((const uint32_t*)p)[i];
    } else {
        const unsigned long long a = (unsigned long long)p;
        const uint32_t* b = (const uint32_t*)(p - (a & 3ull));
        const uint32_t sh = (uint32_t)(a & 3ull) * 8u;
        uint32_t r[N + 1];
#pragma unroll
        for (int i = 0; i < N; ++i) r[i] = b[i];
        r[N] = sh ? b[N] : 0u;
#pragma unroll
        for (int i = 0; i < N; ++i) w[i] = rf_funnel(r[i], r[i + 1], sh);
    }
}
RF_DEVICE float rf_ldh(const uint8_t* p) { return rf_h2f_bits(*(const uint16_t*)p); }
// Bits 0..3 of q to bit 0 of bytes 0..3 (the four shifted copies never overlap, so no carries).
RF_DEVICE uint32_t rf_spread4(uint32_t q) { return ((q & 15u) * 0x00204081u) & 0x01010101u; }
// Unsigned byte codes c (each < 128 + k) minus k per byte, as signed bytes.
template <uint32_t K>
RF_DEVICE uint32_t rf_sub_bytes(uint32_t c) { return ((c | 0x80808080u) - K * 0x01010101u) ^ 0x80808080u; }

template <typename F> struct rf_w8 { static constexpr bool OK = false; };

// ---- 32-element formats: one unit per block, segments = elements 0..15 and 16..31 ----
template <int UPB_, int NS_> struct rf_w8_geom {
    static constexpr bool OK = true;
    static constexpr int UPB = UPB_;  // units per block
    static constexpr int NS = NS_;    // 16-element segments per unit
};
template <> struct rf_w8<rf_fmt_q4_0> : rf_w8_geom<1, 2> {
    RF_DEVICE static int elem(int, int s) { return 16 * s; }
    RF_DEVICE static void unit(const uint8_t* blk, int, uint32_t (*c)[4], float* a, float* b) {
        uint32_t w[4];
        rf_ldw<4, rf_fmt_q4_0::AQ>(blk + rf_off_block_q4_0_qs, w);
        const float d = rf_ldh(blk + rf_off_block_q4_0_d);
#pragma unroll
        for (int i = 0; i < 4; ++i) { c[0][i] = w[i] & 0x0F0F0F0Fu; c[1][i] = (w[i] >> 4) & 0x0F0F0F0Fu; }
        a[0] = a[1] = d;
        b[0] = b[1] = -8.0f * d;
    }
};
template <> struct rf_w8<rf_fmt_q4_1> : rf_w8_geom<1, 2> {
    RF_DEVICE static int elem(int, int s) { return 16 * s; }
    RF_DEVICE static void unit(const uint8_t* blk, int, uint32_t (*c)[4], float* a, float* b) {
        uint32_t w[4];
        rf_ldw<4, rf_fmt_q4_1::AQ>(blk + rf_off_block_q4_1_qs, w);
        const float d = rf_ldh(blk + rf_off_block_q4_1_d), m = rf_ldh(blk + rf_off_block_q4_1_m);
#pragma unroll
        for (int i = 0; i < 4; ++i) { c[0][i] = w[i] & 0x0F0F0F0Fu; c[1][i] = (w[i] >> 4) & 0x0F0F0F0Fu; }
        a[0] = a[1] = d;
        b[0] = b[1] = m;
    }
};
// 5-bit codes: nibble of qs[j] plus bit j (low segment) or 16 + j (high segment) of qh.
template <typename FMT, int OQS, int OQH>
RF_DEVICE void rf_w8_q5(const uint8_t* blk, uint32_t (*c)[4]) {
    uint32_t w[4], h[1];
    rf_ldw<4, FMT::AQ>(blk + OQS, w);
    rf_ldw<1, FMT::AH>(blk + OQH, h);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        c[0][i] = (w[i] & 0x0F0F0F0Fu) | (rf_spread4(h[0] >> (4 * i)) << 4);
        c[1][i] = ((w[i] >> 4) & 0x0F0F0F0Fu) | (rf_spread4(h[0] >> (16 + 4 * i)) << 4);
    }
}
template <> struct rf_w8<rf_fmt_q5_0> : rf_w8_geom<1, 2> {
    RF_DEVICE static int elem(int, int s) { return 16 * s; }
    RF_DEVICE static void unit(const uint8_t* blk, int, uint32_t (*c)[4], float* a, float* b) {
        rf_w8_q5<rf_fmt_q5_0, rf_off_block_q5_0_qs, rf_off_block_q5_0_qh>(blk, c);
        const float d = rf_ldh(blk + rf_off_block_q5_0_d);
        a[0] = a[1] = d;
        b[0] = b[1] = -16.0f * d;
    }
};
template <> struct rf_w8<rf_fmt_q5_1> : rf_w8_geom<1, 2> {
    RF_DEVICE static int elem(int, int s) { return 16 * s; }
    RF_DEVICE static void unit(const uint8_t* blk, int, uint32_t (*c)[4], float* a, float* b) {
        rf_w8_q5<rf_fmt_q5_1, rf_off_block_q5_1_qs, rf_off_block_q5_1_qh>(blk, c);
        a[0] = a[1] = rf_ldh(blk + rf_off_block_q5_1_d);
        b[0] = b[1] = rf_ldh(blk + rf_off_block_q5_1_m);
    }
};
template <> struct rf_w8<rf_fmt_q8_0> : rf_w8_geom<1, 2> {
    RF_DEVICE static int elem(int, int s) { return 16 * s; }
    RF_DEVICE static void unit(const uint8_t* blk, int, uint32_t (*c)[4], float* a, float* b) {
        uint32_t w[8];
        rf_ldw<8, rf_fmt_q8_0::AQ>(blk + rf_off_block_q8_0_qs, w);
#pragma unroll
        for (int i = 0; i < 4; ++i) { c[0][i] = w[i]; c[1][i] = w[4 + i]; }
        a[0] = a[1] = rf_ldh(blk + rf_off_block_q8_0_d);
        b[0] = b[1] = 0.0f;
    }
};
// E2M1 codes (four nibbles in the low nibbles of bytes) -> signed bytes 2 * value:
// magnitudes 0 1 2 3 4 6 8 12 for m = 0..7, negated where bit 3 is set (never a carry: -0 stays 0).
RF_DEVICE uint32_t rf_e2m1_bytes(uint32_t v) {
    const uint32_t m = v & 0x07070707u;
    const uint32_t ge5 = ((m + 0x03030303u) >> 3) & 0x01010101u;
    const uint32_t ge7 = ((m + 0x01010101u) >> 3) & 0x01010101u;
    const uint32_t nz = ((m + 0x07070707u) >> 3) & 0x01010101u;
    const uint32_t mag = m + ((m & 0x03030303u) & (ge5 * 0xFFu)) + (ge7 << 1);
    const uint32_t sg = (v >> 3) & nz;
    return (mag ^ (sg * 0xFFu)) + sg;
}
template <> struct rf_w8<rf_fmt_mxfp4> : rf_w8_geom<1, 2> {
    RF_DEVICE static int elem(int, int s) { return 16 * s; }
    RF_DEVICE static void unit(const uint8_t* blk, int, uint32_t (*c)[4], float* a, float* b) {
        uint32_t w[4];
        rf_ldw<4, rf_fmt_mxfp4::AQ>(blk + rf_off_block_mxfp4_qs, w);
#pragma unroll
        for (int i = 0; i < 4; ++i) { c[0][i] = rf_e2m1_bytes(w[i]); c[1][i] = rf_e2m1_bytes(w[i] >> 4); }
        a[0] = a[1] = rf_e8m0_half(blk[rf_off_block_mxfp4_e]);
        b[0] = b[1] = 0.0f;
    }
};

// ---- K-quants (256-element super-blocks) ----
// q4_K / q5_K: unit u = 16 bytes of qs at 32p + 16h (p = u / 2, h = u % 2): its low nibbles are
// elements 64p + 16h + k (sub-block 2p), its high nibbles 64p + 32 + 16h + k (sub-block 2p + 1).
// Scales and mins of sub-blocks 2p, 2p + 1 (6 bits each, llama.cpp's get_scale_min_k4 packing) as
// the two bytes of sc and mn, from 16-bit words of the 12-byte array.
RF_DEVICE void rf_k4_scales(const uint8_t* scales, int p, uint32_t& sc, uint32_t& mn) {
    const uint16_t* s = (const uint16_t*)scales;
    if (p < 2) {
        sc = s[p] & 0x3F3Fu;
        mn = s[p + 2] & 0x3F3Fu;
    } else {
        const uint32_t hi = s[p + 2], lo = s[p - 2], mid = s[p];
        sc = (hi & 0x0F0Fu) | ((lo & 0xC0C0u) >> 2);
        mn = ((hi >> 4) & 0x0F0Fu) | ((mid & 0xC0C0u) >> 2);
    }
}
template <typename FMT, int OD, int ODMIN, int OSC>
RF_DEVICE void rf_w8_k45_scales(const uint8_t* blk, int p, float* a, float* b) {
    uint32_t sc, mn;
    rf_k4_scales(blk + OSC, p, sc, mn);
    const float d = rf_ldh(blk + OD), dmin = rf_ldh(blk + ODMIN);
    a[0] = d * (float)(sc & 0xFFu);
    a[1] = d * (float)(sc >> 8);
    b[0] = -dmin * (float)(mn & 0xFFu);
    b[1] = -dmin * (float)(mn >> 8);
}
template <> struct rf_w8<rf_fmt_q4_K> : rf_w8_geom<8, 2> {
    RF_DEVICE static int elem(int u, int s) { return 64 * (u >> 1) + 32 * s + 16 * (u & 1); }
    RF_DEVICE static void unit(const uint8_t* blk, int u, uint32_t (*c)[4], float* a, float* b) {
        const int p = u >> 1, h = u & 1;
        uint32_t w[4];
        rf_ldw<4, rf_fmt_q4_K::AQ>(blk + rf_off_block_q4_K_qs + 32 * p + 16 * h, w);
#pragma unroll
        for (int i = 0; i < 4; ++i) { c[0][i] = w[i] & 0x0F0F0F0Fu; c[1][i] = (w[i] >> 4) & 0x0F0F0F0Fu; }
        rf_w8_k45_scales<rf_fmt_q4_K, rf_off_block_q4_K_d, rf_off_block_q4_K_dmin, rf_off_block_q4_K_scales>(blk, p, a, b);
    }
};
template <> struct rf_w8<rf_fmt_q5_K> : rf_w8_geom<8, 2> {
    RF_DEVICE static int elem(int u, int s) { return 64 * (u >> 1) + 32 * s + 16 * (u & 1); }
    RF_DEVICE static void unit(const uint8_t* blk, int u, uint32_t (*c)[4], float* a, float* b) {
        const int p = u >> 1, h = u & 1;
        uint32_t w[4], q[4];
        rf_ldw<4, rf_fmt_q5_K::AQ>(blk + rf_off_block_q5_K_qs + 32 * p + 16 * h, w);
        rf_ldw<4, rf_fmt_q5_K::AH>(blk + rf_off_block_q5_K_qh + 16 * h, q);  // bit e / 32 of qh[e % 32]
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            c[0][i] = (w[i] & 0x0F0F0F0Fu) | (((q[i] >> (2 * p)) & 0x01010101u) << 4);
            c[1][i] = ((w[i] >> 4) & 0x0F0F0F0Fu) | (((q[i] >> (2 * p + 1)) & 0x01010101u) << 4);
        }
        rf_w8_k45_scales<rf_fmt_q5_K, rf_off_block_q5_K_d, rf_off_block_q5_K_dmin, rf_off_block_q5_K_scales>(blk, p, a, b);
    }
};
// q6_K: unit u = 16 bytes of ql at 64H + 16j (H = u / 4, j = u % 4): low nibbles are elements
// 128H + 16j + k, high nibbles 128H + 64 + 16j + k; their 2 high bits are in qh[32H + 16(j % 2) + k]
// at bit 2(j / 2) and 2(j / 2) + 4. Codes are 6-bit minus 32.
template <> struct rf_w8<rf_fmt_q6_K> : rf_w8_geom<8, 2> {
    RF_DEVICE static int elem(int u, int s) { return 128 * (u >> 2) + 64 * s + 16 * (u & 3); }
    RF_DEVICE static void unit(const uint8_t* blk, int u, uint32_t (*c)[4], float* a, float* b) {
        const int H = u >> 2, j = u & 3;
        uint32_t l[4], q[4];
        rf_ldw<4, rf_fmt_q6_K::AL>(blk + rf_off_block_q6_K_ql + 64 * H + 16 * j, l);
        rf_ldw<4, rf_fmt_q6_K::AH>(blk + rf_off_block_q6_K_qh + 32 * H + 16 * (j & 1), q);
        const int hs = 2 * (j >> 1);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            c[0][i] = rf_sub_bytes<32>((l[i] & 0x0F0F0F0Fu) | (((q[i] >> hs) & 0x03030303u) << 4));
            c[1][i] = rf_sub_bytes<32>(((l[i] >> 4) & 0x0F0F0F0Fu) | (((q[i] >> (hs + 4)) & 0x03030303u) << 4));
        }
        const signed char* sc = (const signed char*)(blk + rf_off_block_q6_K_scales) + 8 * H + j;
        const float d = rf_ldh(blk + rf_off_block_q6_K_d);
        a[0] = d * (float)(int)sc[0];
        a[1] = d * (float)(int)sc[4];
        b[0] = b[1] = 0.0f;
    }
};
// q2_K / q3_K: unit u = 16 bytes of qs at 32n + 16q (n = u / 2, q = u % 2); crumb s (bits 2s, 2s+1)
// of byte k is element 128n + 32s + 16q + k, in scale group 8n + 2s + q.
template <> struct rf_w8<rf_fmt_q2_K> : rf_w8_geom<4, 4> {
    RF_DEVICE static int elem(int u, int s) { return 128 * (u >> 1) + 32 * s + 16 * (u & 1); }
    RF_DEVICE static void unit(const uint8_t* blk, int u, uint32_t (*c)[4], float* a, float* b) {
        const int n = u >> 1, q = u & 1;
        uint32_t w[4], sw[2];
        rf_ldw<4, rf_fmt_q2_K::AQ>(blk + rf_off_block_q2_K_qs + 32 * n + 16 * q, w);
        rf_ldw<2, rf_qmin(rf_qalign(rf_fmt_q2_K::BYTES), rf_qalign(rf_off_block_q2_K_scales))>(blk + rf_off_block_q2_K_scales + 8 * n, sw);
        const float d = rf_ldh(blk + rf_off_block_q2_K_d), dmin = rf_ldh(blk + rf_off_block_q2_K_dmin);
#pragma unroll
        for (int s = 0; s < 4; ++s) {
#pragma unroll
            for (int i = 0; i < 4; ++i) c[s][i] = (w[i] >> (2 * s)) & 0x03030303u;
            const uint32_t sc = (sw[s >> 1] >> (8 * (2 * (s & 1) + q))) & 0xFFu;  // byte 2s + q of the 8
            a[s] = d * (float)(sc & 15u);
            b[s] = -dmin * (float)(sc >> 4);
        }
    }
};
template <> struct rf_w8<rf_fmt_q3_K> : rf_w8_geom<4, 4> {
    RF_DEVICE static int elem(int u, int s) { return 128 * (u >> 1) + 32 * s + 16 * (u & 1); }
    RF_DEVICE static void unit(const uint8_t* blk, int u, uint32_t (*c)[4], float* a, float* b) {
        const int n = u >> 1, q = u & 1;
        uint32_t w[4], hm[4], sw[3];
        rf_ldw<4, rf_fmt_q3_K::AQ>(blk + rf_off_block_q3_K_qs + 32 * n + 16 * q, w);
        rf_ldw<4, rf_fmt_q3_K::AH>(blk + rf_off_block_q3_K_hmask + 16 * q, hm);  // bit e / 32 of hmask[e % 32]
        rf_ldw<3, rf_qmin(rf_qalign(rf_fmt_q3_K::BYTES), rf_qalign(rf_off_block_q3_K_scales))>(blk + rf_off_block_q3_K_scales, sw);
        const float d = rf_ldh(blk + rf_off_block_q3_K_d);
#pragma unroll
        for (int s = 0; s < 4; ++s) {
#pragma unroll
            for (int i = 0; i < 4; ++i)
                c[s][i] = rf_sub_bytes<4>(((w[i] >> (2 * s)) & 0x03030303u) | (((hm[i] >> (4 * n + s)) & 0x01010101u) << 2));
            // group j = 8n + 2s + q: low 4 bits in byte (2s + q) (low nibble for n = 0, high for n = 1),
            // high 2 bits in byte 8 + (2s + q) % 4 at bit 2 (j / 4) = 2 (2n + s / 2)
            const int k = 2 * (s & 1) + q;
            const uint32_t lo4 = ((sw[s >> 1] >> (8 * k)) >> (4 * n)) & 15u;
            const uint32_t hi2 = ((sw[2] >> (8 * k)) >> (2 * (2 * n + (s >> 1)))) & 3u;
            a[s] = d * (float)((int)(lo4 | (hi2 << 4)) - 32);
            b[s] = 0.0f;
        }
    }
};

template <typename T>
RF_DEVICE void rf_q8_act(const T* RF_RESTRICT x, signed char* RF_RESTRICT xq, float2* RF_RESTRICT xs, int cols) {
    const int row = blockIdx.y;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const long long at = (long long)row * cols + i;
    rf_q8_put(i < cols ? rf_to_f32(x[at]) : 0.0f, i < cols, at, xq, xs);
}

template <typename F, typename T, int B, int R, int NW>
RF_DEVICE void rf_gemv_q8(const uint8_t* RF_RESTRICT w, const int8_t* RF_RESTRICT xq, const float2* RF_RESTRICT xs,
                          T* RF_RESTRICT y, int rows, int cols, int batch) {
    using W = rf_w8<F>;
    constexpr int NT = NW * RF_WAVE;
    constexpr int NS = W::NS;
    __shared__ float red[NW][R * B];
    const int nb = cols / F::QK;
    const int nu = nb * W::UPB;
    const long long row_bytes = (long long)nb * F::BYTES;
    const int row0 = blockIdx.x * R;
    const uint8_t* wr[R];
#pragma unroll
    for (int r = 0; r < R; ++r) wr[r] = w + (long long)min(row0 + r, rows - 1) * row_bytes;
    const int8_t* xb[B];
    const float2* sb[B];
#pragma unroll
    for (int b = 0; b < B; ++b) {
        const long long xr = (long long)min(b, batch - 1) * cols;
        xb[b] = xq + xr;
        sb[b] = xs + (xr >> 4);
    }
    float acc[R][B];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int b = 0; b < B; ++b) acc[r][b] = 0.0f;

    for (int g = threadIdx.x; g < nu; g += NT) {
        const int blk = g / W::UPB, u = g % W::UPB;
#pragma unroll
        for (int r = 0; r < R; ++r) {
            uint32_t c[NS][4];
            float a[NS], bo[NS];
            W::unit(wr[r] + (long long)blk * F::BYTES, u, c, a, bo);
#pragma unroll
            for (int s = 0; s < NS; ++s) {
                const int el = blk * F::QK + W::elem(u, s);
#pragma unroll
                for (int b = 0; b < B; ++b) {
                    const int4 xv = *(const int4*)(xb[b] + el);
                    const float2 xd = sb[b][el >> 4];
                    int sumi = rf_dp4a((int)c[s][0], xv.x, 0);
                    sumi = rf_dp4a((int)c[s][1], xv.y, sumi);
                    sumi = rf_dp4a((int)c[s][2], xv.z, sumi);
                    sumi = rf_dp4a((int)c[s][3], xv.w, sumi);
                    acc[r][b] = fmaf(a[s] * xd.x, (float)sumi, fmaf(bo[s], xd.y, acc[r][b]));
                }
            }
        }
    }
    const int lane = threadIdx.x % RF_WAVE, wid = threadIdx.x / RF_WAVE;
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int b = 0; b < B; ++b) {
            const float v = rf_wave_sum(acc[r][b]);
            if (lane == 0) red[wid][r * B + b] = v;
        }
    __syncthreads();
    for (int t = threadIdx.x; t < R * B; t += NT) {
        const int r = t / B, b = t % B;
        float v = 0.0f;
#pragma unroll
        for (int k = 0; k < NW; ++k) v += red[k][t];
        if (row0 + r < rows && b < batch) y[(long long)b * rows + row0 + r] = rf_from_f32<T>(v);
    }
}
