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
// at bit 2(j / 2) and 2(j / 2) + 4. The weight is a * (code - 32): the 6-bit codes stay unsigned and
// the -32 goes into b = -32 a, as q4_0's -8 does (three byte operations fewer a word).
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
            c[0][i] = (l[i] & 0x0F0F0F0Fu) | (((q[i] >> hs) & 0x03030303u) << 4);
            c[1][i] = ((l[i] >> 4) & 0x0F0F0F0Fu) | (((q[i] >> (hs + 4)) & 0x03030303u) << 4);
        }
        const signed char* sc = (const signed char*)(blk + rf_off_block_q6_K_scales) + 8 * H + j;
        const float d = rf_ldh(blk + rf_off_block_q6_K_d);
        a[0] = d * (float)(int)sc[0];
        a[1] = d * (float)(int)sc[4];
        b[0] = -32.0f * a[0];
        b[1] = -32.0f * a[1];
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
                c[s][i] = ((w[i] >> (2 * s)) & 0x03030303u) | (((hm[i] >> (4 * n + s)) & 0x01010101u) << 2);
            // group j = 8n + 2s + q: low 4 bits in byte (2s + q) (low nibble for n = 0, high for n = 1),
            // high 2 bits in byte 8 + (2s + q) % 4 at bit 2 (j / 4) = 2 (2n + s / 2)
            const int k = 2 * (s & 1) + q;
            const uint32_t lo4 = ((sw[s >> 1] >> (8 * k)) >> (4 * n)) & 15u;
            const uint32_t hi2 = ((sw[2] >> (8 * k)) >> (2 * (2 * n + (s >> 1)))) & 3u;
            a[s] = d * (float)((int)(lo4 | (hi2 << 4)) - 32);
            b[s] = -4.0f * a[s];  // the weight is a * (code - 4), codes 0..7 kept unsigned
        }
    }
};


#if defined(RF_MMA_SYNC)
// ---- mma.sync m16n8k16 A-fragment helpers (gemv's rows-16 tile, qgemm's register tile) ----
// A lane's word of four byte codes c0..c3 (elements 4t .. 4t + 3 of a segment) fills the fragment's
// k slots 2t, 2t + 1, 2t + 8, 2t + 9 with elements 4t, 4t + 2, 4t + 1, 4t + 3: pair p0 = (c0, c2),
// p1 = (c1, c3). The B fragment takes the same order (one 8-byte load of x, two byte permutes).
RF_DEVICE void rf_mma16816(float* c, const uint32_t* a, uint32_t b0, uint32_t b1, rf_half*) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
RF_DEVICE void rf_mma16816(float* c, const uint32_t* a, uint32_t b0, uint32_t b1, rf_bf16*) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// Formats whose weights carry a minimum (a * code + b with b independent of a, codes unsigned):
// folding a and b into f16 weights would cost up to 2^-11 of |b| per weight, far more than of |w|
// where a * code and b nearly cancel. With f16 x their codes go into the product exactly and each
// segment is scaled in f32 (a * (code . x) + b * (sum x), the sums from a tile of ones); with bf16
// x their pairs are formed in f32 and split into hi and lo.
template <typename F> struct rf_mm_min { static constexpr bool V = false; };
template <> struct rf_mm_min<rf_fmt_q4_1> { static constexpr bool V = true; };
template <> struct rf_mm_min<rf_fmt_q5_1> { static constexpr bool V = true; };
template <> struct rf_mm_min<rf_fmt_q2_K> { static constexpr bool V = true; };
template <> struct rf_mm_min<rf_fmt_q4_K> { static constexpr bool V = true; };
template <> struct rf_mm_min<rf_fmt_q5_K> { static constexpr bool V = true; };
// Formats whose codes are never negative (the f16 path then needs no bias).
template <typename F> struct rf_mm_uns { static constexpr bool V = false; };
template <> struct rf_mm_uns<rf_fmt_q4_0> { static constexpr bool V = true; };
template <> struct rf_mm_uns<rf_fmt_q5_0> { static constexpr bool V = true; };
template <> struct rf_mm_uns<rf_fmt_q6_K> { static constexpr bool V = true; };
template <> struct rf_mm_uns<rf_fmt_q3_K> { static constexpr bool V = true; };
// The four signed-byte codes of word c as exact floats: 2^23 + 128 + c from the bit pattern
// 0x4B0000uu (uu = c + 128), minus 2^23 + 128.
RF_DEVICE void rf_mm_codes(uint32_t c, float* f) {
    const uint32_t u = c ^ 0x80808080u;
    f[0] = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7650)) - 8388736.0f;
    f[1] = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7651)) - 8388736.0f;
    f[2] = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7652)) - 8388736.0f;
    f[3] = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7653)) - 8388736.0f;
}
// Word c of four byte codes (c0 c1 c2 c3) as exact f16 pairs p0 = (c0, c2), p1 = (c1, c3): 0x6400 | u
// is 1024 + u, with u = c + 128 for signed codes (0x6480 = 1152 subtracted) or u = c when every code
// is non-negative (UNS; 1024 subtracted). The pair order is the fragment's k-slot order (above).
RF_DEVICE void rf_mm_codes_h(uint32_t c, bool uns, uint32_t& p0, uint32_t& p1) {
    const uint32_t u = uns ? c : c ^ 0x80808080u;
    const unsigned short bb = uns ? (unsigned short)0x6400u : (unsigned short)0x6480u;
    const __half2 bias = __halves2half2(__ushort_as_half(bb), __ushort_as_half(bb));
    const uint32_t e0 = __byte_perm(u, 0x64646464u, 0x4240), e1 = __byte_perm(u, 0x64646464u, 0x4341);
    const __half2 h0 = __hsub2(*(const __half2*)&e0, bias), h1 = __hsub2(*(const __half2*)&e1, bias);
    p0 = *(const uint32_t*)&h0;
    p1 = *(const uint32_t*)&h1;
}
// The weights a * c + b as f16 pairs (formats without a minimum): one fused multiply-add on the exact
// codes rounds each weight once (a, and b = a times a power of two or zero, rounded to f16 first: a
// relative 2^-11 of w).
RF_DEVICE void rf_mm_pairs_h(uint32_t c, __half2 a2, __half2 b2, bool uns, uint32_t& p0, uint32_t& p1) {
    rf_mm_codes_h(c, uns, p0, p1);
    const __half2 h0 = __hfma2(*(const __half2*)&p0, a2, b2), h1 = __hfma2(*(const __half2*)&p1, a2, b2);
    p0 = *(const uint32_t*)&h0;
    p1 = *(const uint32_t*)&h1;
}
// bf16 (whose 8-bit significand cannot hold c + 128 for every byte): the weights a * c + b in f32,
// as two parts, hi = bf16(w) and lo = bf16(w - hi) (PART 0, 1), each multiplied: w to about 16 bits.
RF_DEVICE uint32_t rf_mm_bf2(float lo, float hi, int part) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    if (part == 1) h = __floats2bfloat162_rn(lo - __low2float(h), hi - __high2float(h));
    return *(uint32_t*)&h;
}
template <int PART>
RF_DEVICE void rf_mm_pairs_bf(uint32_t c, float a, float b, uint32_t& p0, uint32_t& p1) {
    float f[4];
    rf_mm_codes(c, f);
    p0 = rf_mm_bf2(fmaf(a, f[0], b), fmaf(a, f[2], b), PART);
    p1 = rf_mm_bf2(fmaf(a, f[1], b), fmaf(a, f[3], b), PART);
}

// The weights a * c + b computed in f32 and rounded once to f16 pairs (as dequantize + f16 GEMM
// rounds them): the accurate form for formats with a minimum, where a * c and b nearly cancel.
RF_DEVICE void rf_mm_pairs_f(uint32_t c, float a, float b, uint32_t& p0, uint32_t& p1) {
    float f[4];
    rf_mm_codes(c, f);
    const __half2 h0 = __floats2half2_rn(fmaf(a, f[0], b), fmaf(a, f[2], b));
    const __half2 h1 = __floats2half2_rn(fmaf(a, f[1], b), fmaf(a, f[3], b));
    p0 = *(const uint32_t*)&h0;
    p1 = *(const uint32_t*)&h1;
}
#endif
