// Integer decoders of every GGUF block format for the integer-dot and matrix-core GEMVs
// (gemv_q8.hip, gemv.hip): a format is cut into lane units (rf_w8<F>): a unit is NS segments of 16
// consecutive elements whose weights are a * code + b with one (a, b) per segment and integer codes
// that fit a signed byte. unit<N>(blk, u, t0, c, a, b, end) gives words t0 .. t0 + N - 1 of each
// segment's 16 codes (word i = codes of elements 4i .. 4i + 3, little-endian bytes): N = 4 is the
// whole unit (one lane's work in gemv_q8), N = 1 one word (a matrix-fragment lane in gemv's mma tile).

// N little-endian words at p, whose alignment is known to be at least A bytes. Below 4 the words
// come from aligned loads joined by funnel shifts; the aligned word holding the last byte wanted
// is read byte by byte when it would reach past `end` (the end of the matrix). end == nullptr:
// that word is readable whatever it holds (a padded shared-memory copy), so no test at all.
RF_DEVICE uint32_t rf_funnel(uint32_t lo, uint32_t hi, uint32_t sh) {
#if defined(__CUDACC_RTC__) || defined(__CUDACC__)
    return __funnelshift_r(lo, hi, sh);
#else
    return (uint32_t)((((unsigned long long)hi << 32) | (unsigned long long)lo) >> sh);
#endif
}
template <int N, int A>
RF_DEVICE void rf_ldw(const uint8_t* p, uint32_t* w, const uint8_t* end) {
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
        r[N] = 0u;
        if (end == nullptr) {
            r[N] = b[N];
        } else if (sh) {
            const uint8_t* t = (const uint8_t*)(b + N);
            if (t + 4 <= end) {
                r[N] = b[N];
            } else {
                for (int i = 0; i < 4 && t + i < end; ++i) r[N] |= (uint32_t)t[i] << (8 * i);
            }
        }
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
    template <int N>
    RF_DEVICE static void unit(const uint8_t* blk, int, int t0, uint32_t (*c)[N], float* a, float* b, const uint8_t* end) {
        uint32_t w[N];
        rf_ldw<N, rf_fmt_q4_0::AQ>(blk + rf_off_block_q4_0_qs + 4 * t0, w, end);
        const float d = rf_ldh(blk + rf_off_block_q4_0_d);
#pragma unroll
        for (int i = 0; i < N; ++i) { c[0][i] = w[i] & 0x0F0F0F0Fu; c[1][i] = (w[i] >> 4) & 0x0F0F0F0Fu; }
        a[0] = a[1] = d;
        b[0] = b[1] = -8.0f * d;
    }
};
template <> struct rf_w8<rf_fmt_q4_1> : rf_w8_geom<1, 2> {
    RF_DEVICE static int elem(int, int s) { return 16 * s; }
    template <int N>
    RF_DEVICE static void unit(const uint8_t* blk, int, int t0, uint32_t (*c)[N], float* a, float* b, const uint8_t* end) {
        uint32_t w[N];
        rf_ldw<N, rf_fmt_q4_1::AQ>(blk + rf_off_block_q4_1_qs + 4 * t0, w, end);
        const float d = rf_ldh(blk + rf_off_block_q4_1_d), m = rf_ldh(blk + rf_off_block_q4_1_m);
#pragma unroll
        for (int i = 0; i < N; ++i) { c[0][i] = w[i] & 0x0F0F0F0Fu; c[1][i] = (w[i] >> 4) & 0x0F0F0F0Fu; }
        a[0] = a[1] = d;
        b[0] = b[1] = m;
    }
};
// 5-bit codes: nibble of qs[j] plus bit j (low segment) or 16 + j (high segment) of qh.
template <typename FMT, int OQS, int OQH, int N>
RF_DEVICE void rf_w8_q5(const uint8_t* blk, int t0, uint32_t (*c)[N], const uint8_t* end) {
    uint32_t w[N], h[1];
    rf_ldw<N, FMT::AQ>(blk + OQS + 4 * t0, w, end);
    rf_ldw<1, FMT::AH>(blk + OQH, h, end);
#pragma unroll
    for (int i = 0; i < N; ++i) {
        c[0][i] = (w[i] & 0x0F0F0F0Fu) | (rf_spread4(h[0] >> (4 * (t0 + i))) << 4);
        c[1][i] = ((w[i] >> 4) & 0x0F0F0F0Fu) | (rf_spread4(h[0] >> (16 + 4 * (t0 + i))) << 4);
    }
}
template <> struct rf_w8<rf_fmt_q5_0> : rf_w8_geom<1, 2> {
    RF_DEVICE static int elem(int, int s) { return 16 * s; }
    template <int N>
    RF_DEVICE static void unit(const uint8_t* blk, int, int t0, uint32_t (*c)[N], float* a, float* b, const uint8_t* end) {
        rf_w8_q5<rf_fmt_q5_0, rf_off_block_q5_0_qs, rf_off_block_q5_0_qh, N>(blk, t0, c, end);
        const float d = rf_ldh(blk + rf_off_block_q5_0_d);
        a[0] = a[1] = d;
        b[0] = b[1] = -16.0f * d;
    }
};
template <> struct rf_w8<rf_fmt_q5_1> : rf_w8_geom<1, 2> {
    RF_DEVICE static int elem(int, int s) { return 16 * s; }
    template <int N>
    RF_DEVICE static void unit(const uint8_t* blk, int, int t0, uint32_t (*c)[N], float* a, float* b, const uint8_t* end) {
        rf_w8_q5<rf_fmt_q5_1, rf_off_block_q5_1_qs, rf_off_block_q5_1_qh, N>(blk, t0, c, end);
        a[0] = a[1] = rf_ldh(blk + rf_off_block_q5_1_d);
        b[0] = b[1] = rf_ldh(blk + rf_off_block_q5_1_m);
    }
};
template <> struct rf_w8<rf_fmt_q8_0> : rf_w8_geom<1, 2> {
    RF_DEVICE static int elem(int, int s) { return 16 * s; }
    template <int N>
    RF_DEVICE static void unit(const uint8_t* blk, int, int t0, uint32_t (*c)[N], float* a, float* b, const uint8_t* end) {
        if constexpr (N == 4) {
            uint32_t w[8];
            rf_ldw<8, rf_fmt_q8_0::AQ>(blk + rf_off_block_q8_0_qs, w, end);
#pragma unroll
            for (int i = 0; i < 4; ++i) { c[0][i] = w[i]; c[1][i] = w[4 + i]; }
        } else {
            rf_ldw<N, rf_fmt_q8_0::AQ>(blk + rf_off_block_q8_0_qs + 4 * t0, c[0], end);
            rf_ldw<N, rf_fmt_q8_0::AQ>(blk + rf_off_block_q8_0_qs + 16 + 4 * t0, c[1], end);
        }
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
    template <int N>
    RF_DEVICE static void unit(const uint8_t* blk, int, int t0, uint32_t (*c)[N], float* a, float* b, const uint8_t* end) {
        uint32_t w[N];
        rf_ldw<N, rf_fmt_mxfp4::AQ>(blk + rf_off_block_mxfp4_qs + 4 * t0, w, end);
#pragma unroll
        for (int i = 0; i < N; ++i) { c[0][i] = rf_e2m1_bytes(w[i]); c[1][i] = rf_e2m1_bytes(w[i] >> 4); }
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
    template <int N>
    RF_DEVICE static void unit(const uint8_t* blk, int u, int t0, uint32_t (*c)[N], float* a, float* b, const uint8_t* end) {
        const int p = u >> 1, h = u & 1;
        uint32_t w[N];
        rf_ldw<N, rf_fmt_q4_K::AQ>(blk + rf_off_block_q4_K_qs + 32 * p + 16 * h + 4 * t0, w, end);
#pragma unroll
        for (int i = 0; i < N; ++i) { c[0][i] = w[i] & 0x0F0F0F0Fu; c[1][i] = (w[i] >> 4) & 0x0F0F0F0Fu; }
        rf_w8_k45_scales<rf_fmt_q4_K, rf_off_block_q4_K_d, rf_off_block_q4_K_dmin, rf_off_block_q4_K_scales>(blk, p, a, b);
    }
};
template <> struct rf_w8<rf_fmt_q5_K> : rf_w8_geom<8, 2> {
    RF_DEVICE static int elem(int u, int s) { return 64 * (u >> 1) + 32 * s + 16 * (u & 1); }
    template <int N>
    RF_DEVICE static void unit(const uint8_t* blk, int u, int t0, uint32_t (*c)[N], float* a, float* b, const uint8_t* end) {
        const int p = u >> 1, h = u & 1;
        uint32_t w[N], q[N];
        rf_ldw<N, rf_fmt_q5_K::AQ>(blk + rf_off_block_q5_K_qs + 32 * p + 16 * h + 4 * t0, w, end);
        rf_ldw<N, rf_fmt_q5_K::AH>(blk + rf_off_block_q5_K_qh + 16 * h + 4 * t0, q, end);  // bit e / 32 of qh[e % 32]
#pragma unroll
        for (int i = 0; i < N; ++i) {
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
    template <int N>
    RF_DEVICE static void unit(const uint8_t* blk, int u, int t0, uint32_t (*c)[N], float* a, float* b, const uint8_t* end) {
        const int H = u >> 2, j = u & 3;
        uint32_t l[N], q[N];
        rf_ldw<N, rf_fmt_q6_K::AL>(blk + rf_off_block_q6_K_ql + 64 * H + 16 * j + 4 * t0, l, end);
        rf_ldw<N, rf_fmt_q6_K::AH>(blk + rf_off_block_q6_K_qh + 32 * H + 16 * (j & 1) + 4 * t0, q, end);
        const int hs = 2 * (j >> 1);
#pragma unroll
        for (int i = 0; i < N; ++i) {
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
    template <int N>
    RF_DEVICE static void unit(const uint8_t* blk, int u, int t0, uint32_t (*c)[N], float* a, float* b, const uint8_t* end) {
        const int n = u >> 1, q = u & 1;
        uint32_t w[N], sw[2];
        rf_ldw<N, rf_fmt_q2_K::AQ>(blk + rf_off_block_q2_K_qs + 32 * n + 16 * q + 4 * t0, w, end);
        rf_ldw<2, rf_qmin(rf_qalign(rf_fmt_q2_K::BYTES), rf_qalign(rf_off_block_q2_K_scales))>(blk + rf_off_block_q2_K_scales + 8 * n, sw, end);
        const float d = rf_ldh(blk + rf_off_block_q2_K_d), dmin = rf_ldh(blk + rf_off_block_q2_K_dmin);
#pragma unroll
        for (int s = 0; s < 4; ++s) {
#pragma unroll
            for (int i = 0; i < N; ++i) c[s][i] = (w[i] >> (2 * s)) & 0x03030303u;
            const uint32_t sc = (sw[s >> 1] >> (8 * (2 * (s & 1) + q))) & 0xFFu;  // byte 2s + q of the 8
            a[s] = d * (float)(sc & 15u);
            b[s] = -dmin * (float)(sc >> 4);
        }
    }
};
template <> struct rf_w8<rf_fmt_q3_K> : rf_w8_geom<4, 4> {
    RF_DEVICE static int elem(int u, int s) { return 128 * (u >> 1) + 32 * s + 16 * (u & 1); }
    template <int N>
    RF_DEVICE static void unit(const uint8_t* blk, int u, int t0, uint32_t (*c)[N], float* a, float* b, const uint8_t* end) {
        const int n = u >> 1, q = u & 1;
        uint32_t w[N], hm[N], sw[3];
        rf_ldw<N, rf_fmt_q3_K::AQ>(blk + rf_off_block_q3_K_qs + 32 * n + 16 * q + 4 * t0, w, end);
        rf_ldw<N, rf_fmt_q3_K::AH>(blk + rf_off_block_q3_K_hmask + 16 * q + 4 * t0, hm, end);  // bit e / 32 of hmask[e % 32]
        rf_ldw<3, rf_qmin(rf_qalign(rf_fmt_q3_K::BYTES), rf_qalign(rf_off_block_q3_K_scales))>(blk + rf_off_block_q3_K_scales, sw, end);
        const float d = rf_ldh(blk + rf_off_block_q3_K_d);
#pragma unroll
        for (int s = 0; s < 4; ++s) {
#pragma unroll
            for (int i = 0; i < N; ++i)
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

