// Fused dequant x vector: y[b][r] = sum_k W[r][k] * x[b][k] for b < batch (at most B), W quantized
// row-major (each row cols / QK blocks), never written out dequantized. x rows past `batch` are
// read as row batch-1 (valid memory) and their results dropped.
//
// Two paths, one kernel entry (rf_gemv_entry):
//  * SIMT (every target): a block of NW waves owns R rows; the waves split the row into chunks of
//    U * RF_WAVE octets (whole blocks) and take every NW-th chunk. A wave copies its chunk of RG
//    rows (RG = R, or 2 at a time for R = 16) into its own shared memory with 16-byte loads, the
//    next chunk's loads in flight while it decodes this one (register prefetch). Lane l decodes
//    octets l, l + RF_WAVE, ... of the chunk (so x is read coalesced through L1, once per octet for
//    all RG rows). Formats with a fast decoder (rf_gv below) give floats f and (a, b) with
//    sum W x = a * sum f x + b * sum x, which takes the block scale out of the inner loop; the rest
//    use the exact dequant8. Waves reduce with shuffles, the block through shared memory.
//  * MMA (NVIDIA, R = 16, f16/bf16 x, every format of quant_w8.h): 8 warps per block, each an
//    m16n8k16 tile of the 16 rows (M) and the 1..8 right-hand sides (N) over its share of the
//    row's units; the weights are dequantized in registers into the A fragment (see rf_gemv_mma).
//
// GLU epilogue (SIMT only; GLU 1 = SiLU, 2 = GELU-tanh): W is [gate; up] stacked, 2 * rows rows, and
// y[b][j] = act(gate_j . x_b) * (up_j . x_b) for j < rows. A block's R outputs take R gate rows and
// the R up rows rows + row0 .. (row groups over both halves, each clamped to its own half), and the
// activation is applied to the f32 sums before the one rounding to T.

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

// 16 bytes at p (16-byte aligned), of which only those below `end` are read (the rest are zero).
RF_DEVICE uint4 rf_gv_load16(const uint8_t* p, const uint8_t* end) {
    if (p + 16 <= end) return *(const uint4*)p;
    uint32_t v[4] = {0u, 0u, 0u, 0u};
#pragma unroll
    for (int i = 0; i < 16; ++i)
        if (p + i < end) v[i / 4] |= (uint32_t)p[i] << (8 * (i % 4));
    return make_uint4(v[0], v[1], v[2], v[3]);
}
// x shifted left by S bits (right by -S when S < 0).
template <int S>
RF_DEVICE uint32_t rf_shl(uint32_t x) {
    if constexpr (S >= 0) return x << S; else return x >> (-S);
}
// Low nibble q of byte I of w as the float 1 + q/16 (q in the top mantissa bits 19..22).
template <int I>
RF_DEVICE float rf_nib_f(uint32_t w) { return __uint_as_float(0x3F800000u | (rf_shl<19 - 8 * I>(w) & 0x00780000u)); }

// ---------------- SIMT fast decoders: f[8], a, b with sum_i W_i x_i = a * sum_i f_i x_i + b * sum_i x_i
template <typename F>
struct rf_gv {
    static constexpr bool HAS_B = false;
    RF_DEVICE static void decode(const uint8_t* blk, int j0, float* f, float& a, float& b) {
        F::dequant8(blk, j0, f);
        a = 1.0f;
        b = 0.0f;
    }
};
// 4-bit codes q of octet j0 in q4_0 nibble order as f = 1 + q/16.
template <int A>
RF_DEVICE void rf_gv_nib8(const uint8_t* qs, int j0, float* f) {
    uint32_t lo, hi;
    rf_ld64<A>(qs + (j0 & 15), lo, hi);
    const int sh = (j0 & 16) >> 2;
    lo >>= sh;
    hi >>= sh;
    f[0] = rf_nib_f<0>(lo); f[1] = rf_nib_f<1>(lo); f[2] = rf_nib_f<2>(lo); f[3] = rf_nib_f<3>(lo);
    f[4] = rf_nib_f<0>(hi); f[5] = rf_nib_f<1>(hi); f[6] = rf_nib_f<2>(hi); f[7] = rf_nib_f<3>(hi);
}
template <>
struct rf_gv<rf_fmt_q4_0> {
    static constexpr bool HAS_B = true;
    RF_DEVICE static void decode(const uint8_t* blk, int j0, float* f, float& a, float& b) {
        const block_q4_0* p = (const block_q4_0*)blk;
        const float d = __half2float(p->d);
        rf_gv_nib8<rf_fmt_q4_0::AQ>(p->qs, j0, f);
        a = 16.0f * d;  // d (q - 8) = 16d f - 24d
        b = -24.0f * d;
    }
};
template <>
struct rf_gv<rf_fmt_q4_1> {
    static constexpr bool HAS_B = true;
    RF_DEVICE static void decode(const uint8_t* blk, int j0, float* f, float& a, float& b) {
        const block_q4_1* p = (const block_q4_1*)blk;
        const float d = __half2float(p->d), m = __half2float(p->m);
        rf_gv_nib8<rf_fmt_q4_1::AQ>(p->qs, j0, f);
        a = 16.0f * d;  // d q + m = 16d f + (m - 16d)
        b = m - 16.0f * d;
    }
};
template <>
struct rf_gv<rf_fmt_q8_0> {
    static constexpr bool HAS_B = false;
    RF_DEVICE static void decode(const uint8_t* blk, int j0, float* f, float& a, float& b) {
        const block_q8_0* p = (const block_q8_0*)blk;
        uint32_t lo, hi;
        rf_ld64<rf_fmt_q8_0::AQ>((const uint8_t*)p->qs + j0, lo, hi);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            f[i] = (float)(int)(signed char)rf_byte(lo, i);
            f[i + 4] = (float)(int)(signed char)rf_byte(hi, i);
        }
        a = __half2float(p->d);
        b = 0.0f;
    }
};
// E2M1 code c (low nibble of byte I of w) as an f16 whose value is kvalue(c) * 2^-15: magnitude
// bits at 9..11 (exponent 0 gives the subnormals 0 and 2^-15), sign at 15.
template <int I>
RF_DEVICE float rf_e2m1_f(uint32_t w) {
    const uint32_t c = w >> (8 * I);
    return rf_h2f_bits((uint16_t)(((c & 7u) << 9) | ((c & 8u) << 12)));
}
template <>
struct rf_gv<rf_fmt_mxfp4> {
    static constexpr bool HAS_B = false;
    RF_DEVICE static void decode(const uint8_t* blk, int j0, float* f, float& a, float& b) {
        const block_mxfp4* p = (const block_mxfp4*)blk;
        uint32_t lo, hi;
        rf_ld64<rf_fmt_mxfp4::AQ>(p->qs + (j0 & 15), lo, hi);
        const int sh = (j0 & 16) >> 2;
        lo >>= sh;
        hi >>= sh;
        f[0] = rf_e2m1_f<0>(lo); f[1] = rf_e2m1_f<1>(lo); f[2] = rf_e2m1_f<2>(lo); f[3] = rf_e2m1_f<3>(lo);
        f[4] = rf_e2m1_f<0>(hi); f[5] = rf_e2m1_f<1>(hi); f[6] = rf_e2m1_f<2>(hi); f[7] = rf_e2m1_f<3>(hi);
        a = rf_e8m0_half(p->e) * 32768.0f;
        b = 0.0f;
    }
};
template <>
struct rf_gv<rf_fmt_q4_K> {
    static constexpr bool HAS_B = true;
    RF_DEVICE static void decode(const uint8_t* blk, int j0, float* f, float& a, float& b) {
        const block_q4_K* p = (const block_q4_K*)blk;
        const float d = __half2float(p->d), dmin = __half2float(p->dmin);
        uint32_t s, m;
        rf_scale_min_k4(j0 / 32, p->scales, s, m);
        const float dl = d * rf_u2f(s), ml = dmin * rf_u2f(m);
        uint32_t lo, hi;
        rf_ld64<rf_fmt_q4_K::AQ>(p->qs + 32 * (j0 / 64) + (j0 % 32), lo, hi);
        const int sh = 4 * ((j0 / 32) % 2);
        lo >>= sh;
        hi >>= sh;
        f[0] = rf_nib_f<0>(lo); f[1] = rf_nib_f<1>(lo); f[2] = rf_nib_f<2>(lo); f[3] = rf_nib_f<3>(lo);
        f[4] = rf_nib_f<0>(hi); f[5] = rf_nib_f<1>(hi); f[6] = rf_nib_f<2>(hi); f[7] = rf_nib_f<3>(hi);
        a = 16.0f * dl;  // dl q - ml = 16 dl f - (16 dl + ml)
        b = -(16.0f * dl + ml);
    }
};
// 6-bit code (nibble of byte I of l, two bits of byte I of h) as f = 1 + code/64 (mantissa bits 17..22).
template <int I>
RF_DEVICE float rf_q6_f(uint32_t l, uint32_t h) {
    return __uint_as_float(0x3F800000u | (rf_shl<17 - 8 * I>(l) & 0x001E0000u) | (rf_shl<21 - 8 * I>(h) & 0x00600000u));
}
template <>
struct rf_gv<rf_fmt_q6_K> {
    static constexpr bool HAS_B = true;
    RF_DEVICE static void decode(const uint8_t* blk, int j0, float* f, float& a, float& b) {
        const block_q6_K* p = (const block_q6_K*)blk;
        const float dl = __half2float(p->d) * (float)(int)p->scales[j0 / 16];
        const int h = j0 / 128, r = j0 % 128;
        uint32_t llo, lhi, hlo, hhi;
        rf_ld64<rf_fmt_q6_K::AL>(p->ql + 64 * h + (r % 64), llo, lhi);
        rf_ld64<rf_fmt_q6_K::AH>(p->qh + 32 * h + (r % 32), hlo, hhi);
        const int ls = 4 * (r / 64), hs = 2 * (r / 32);
        llo >>= ls; lhi >>= ls; hlo >>= hs; hhi >>= hs;
        f[0] = rf_q6_f<0>(llo, hlo); f[1] = rf_q6_f<1>(llo, hlo); f[2] = rf_q6_f<2>(llo, hlo); f[3] = rf_q6_f<3>(llo, hlo);
        f[4] = rf_q6_f<0>(lhi, hhi); f[5] = rf_q6_f<1>(lhi, hhi); f[6] = rf_q6_f<2>(lhi, hhi); f[7] = rf_q6_f<3>(lhi, hhi);
        a = 64.0f * dl;  // dl (code - 32) = 64 dl f - 96 dl
        b = -96.0f * dl;
    }
};

// Chunk geometry shared by the SIMT loader and kernel.
template <typename F, int RG>
struct rf_gv_chunk {
    static constexpr int OPB = F::QK / 8;
    static constexpr int OCTB = F::BYTES / OPB > 0 ? F::BYTES / OPB : 1;  // bytes per octet (rounded down)
    static constexpr int U0 = 2304 / (RG * RF_WAVE * OCTB);
    static constexpr int U = U0 < 1 ? 1 : (U0 > 4 ? 4 : U0);  // octets per lane per chunk
    static constexpr int CO = U * RF_WAVE;                     // octets per chunk and row
    static constexpr int CB = CO / OPB;                        // blocks per chunk and row
    static constexpr int CBYTES = CB * F::BYTES;
    static constexpr int RV = (CBYTES + 15) / 16 + 1;          // 16-byte vectors per staged row (+1: alignment lead)
    static constexpr int NPL = (RG * RV + RF_WAVE - 1) / RF_WAVE;  // vectors per lane
    static_assert(CO % OPB == 0, "a chunk is whole blocks");
};

// Loads of one chunk (blocks [c*CB, c*CB + CB) of rows row0 .. row0+NR-1, clamped to the last row)
// into v: vector k of the warp's chunk is bytes [16j, 16j+16) from the 16-byte aligned address at
// or below the chunk start of row k / RV. w must be 16-byte aligned.
template <int NR, int RV, int NPL>
RF_DEVICE void rf_gv_load(uint4* v, const uint8_t* w, const uint8_t* wend, long long row_bytes, int rows, int row0,
                          long long chunk_off, int chunk_bytes, int lane) {
#pragma unroll
    for (int i = 0; i < NPL; ++i) {
        const int k = i * RF_WAVE + lane;
        const int r = k / RV, j = k - r * RV;
        v[i] = make_uint4(0u, 0u, 0u, 0u);
        if (k < NR * RV) {
            const long long off = (long long)min(row0 + r, rows - 1) * row_bytes + chunk_off;
            const uint8_t* p = w + (off & ~15ll) + 16 * j;
            if (p < w + off + chunk_bytes) v[i] = rf_gv_load16(p, wend);
        }
    }
}
template <int NR, int RV, int NPL>
RF_DEVICE void rf_gv_store(uint4* st, const uint4* v, int lane) {
#pragma unroll
    for (int i = 0; i < NPL; ++i) {
        const int k = i * RF_WAVE + lane;
        if (k < NR * RV) st[k] = v[i];
    }
}

template <typename F, typename T, int B, int R, int RG, int NW, int GLU>
RF_DEVICE void rf_gemv_simt(const uint8_t* RF_RESTRICT w, const T* RF_RESTRICT x, T* RF_RESTRICT y, int rows, int cols, int batch) {
    using G = rf_gv<F>;
    using C = rf_gv_chunk<F, RG>;
    static_assert(R % RG == 0, "row groups");
    static_assert(GLU >= 0 && GLU <= 2, "GLU: 0 none, 1 SiLU, 2 GELU-tanh");
    constexpr int NR = GLU ? 2 * R : R;  // rows of W per block: R outputs (GLU: R gate + R up rows)
    __shared__ uint4 stage[NW][RG * C::RV];
    __shared__ float red[NW][NR * B];
    const int lane = threadIdx.x % RF_WAVE, wid = threadIdx.x / RF_WAVE;
    const int row0 = blockIdx.x * R;
    const int nb = cols / F::QK, n_oct = nb * C::OPB;
    const int nchunks = (nb + C::CB - 1) / C::CB;
    const long long row_bytes = (long long)nb * F::BYTES;
    const uint8_t* wend = w + (long long)(GLU ? 2 * rows : rows) * row_bytes;
    const T* xb[B];
#pragma unroll
    for (int b = 0; b < B; ++b) xb[b] = x + (long long)min(b, batch - 1) * cols;
    uint4* st = stage[wid];
    const uint8_t* sb = (const uint8_t*)st;

    for (int rg = 0; rg < NR; rg += RG) {
        // GLU: groups rg >= R are up rows (rows + row0 + rg - R ...), clamped to the up half's last row
        const bool upg = GLU && rg >= R;
        const int grow0 = upg ? rows + row0 + (rg - R) : row0 + rg;
        const int lim = upg ? 2 * rows : rows;  // rows below which grow0 + r is clamped
        float acc[RG][B];
#pragma unroll
        for (int r = 0; r < RG; ++r)
#pragma unroll
            for (int b = 0; b < B; ++b) acc[r][b] = 0.0f;
        uint4 v[C::NPL];
        int c = wid;
        if (c < nchunks)
            rf_gv_load<RG, C::RV, C::NPL>(v, w, wend, row_bytes, lim, grow0, (long long)c * C::CBYTES,
                                          min(C::CB, nb - c * C::CB) * F::BYTES, lane);
        for (; c < nchunks; c += NW) {
            RF_SYNC_WAVE();  // the previous chunk's reads are done
            rf_gv_store<RG, C::RV, C::NPL>(st, v, lane);
            RF_SYNC_WAVE();
            const int cn = c + NW;
            if (cn < nchunks)
                rf_gv_load<RG, C::RV, C::NPL>(v, w, wend, row_bytes, lim, grow0, (long long)cn * C::CBYTES,
                                              min(C::CB, nb - cn * C::CB) * F::BYTES, lane);
            int lead[RG];
#pragma unroll
            for (int r = 0; r < RG; ++r)
                lead[r] = r * C::RV * 16 + (int)(((long long)min(grow0 + r, lim - 1) * row_bytes + (long long)c * C::CBYTES) & 15);
#pragma unroll
            for (int u = 0; u < C::U; ++u) {
                const int o = u * RF_WAVE + lane;
                const int go = c * C::CO + o;
                if (go < n_oct) {
                    float xv[B][8], sx[B];
#pragma unroll
                    for (int b = 0; b < B; ++b) {
                        rf_load8<T>(xb[b] + (long long)go * 8, xv[b]);
                        sx[b] = ((xv[b][0] + xv[b][1]) + (xv[b][2] + xv[b][3])) + ((xv[b][4] + xv[b][5]) + (xv[b][6] + xv[b][7]));
                    }
#pragma unroll
                    for (int r = 0; r < RG; ++r) {
                        float f[8], fa, fb;
                        G::decode(sb + lead[r] + (o / C::OPB) * F::BYTES, (o % C::OPB) * 8, f, fa, fb);
#pragma unroll
                        for (int b = 0; b < B; ++b) {
                            float p = 0.0f;
#pragma unroll
                            for (int i = 0; i < 8; ++i) p = fmaf(f[i], xv[b][i], p);
                            acc[r][b] = fmaf(fa, p, acc[r][b]);
                            if (G::HAS_B) acc[r][b] = fmaf(fb, sx[b], acc[r][b]);
                        }
                    }
                }
            }
        }
#pragma unroll
        for (int r = 0; r < RG; ++r)
#pragma unroll
            for (int b = 0; b < B; ++b) {
                const float s = rf_wave_sum(acc[r][b]);
                if (lane == 0) red[wid][(rg + r) * B + b] = s;
            }
    }
    __syncthreads();
    for (int t = threadIdx.x; t < R * B; t += NW * RF_WAVE) {
        const int r = t / B, b = t % B;
        float s = 0.0f;
#pragma unroll
        for (int q = 0; q < NW; ++q) s += red[q][t];
        if constexpr (GLU != 0) {
            float u = 0.0f;
#pragma unroll
            for (int q = 0; q < NW; ++q) u += red[q][R * B + t];
            s = rf_glu_act<GLU>(s) * u;
        }
        if (row0 + r < rows && b < batch) y[(long long)b * rows + row0 + r] = rf_from_f32<T>(s);
    }
}

template <typename T> struct rf_is_f32 { static constexpr bool value = false; };
template <typename T> struct rf_is_half { static constexpr bool value = false; };
template <> struct rf_is_half<rf_half> { static constexpr bool value = true; };
template <> struct rf_is_f32<float> { static constexpr bool value = true; };

#if defined(RF_MMA_SYNC)
// ---------------- NVIDIA mma.sync tile (rows 16, 1..8 right-hand sides, f16/bf16 x) ----------------
// Every format, through the integer decoders of quant_w8.h. Lane (g, t) of a warp (g = lane / 4,
// t = lane % 4) decodes word t of each 16-element segment of rows g and g + 8 (codes of elements
// 4t .. 4t + 3) from its warp's shared-memory ring, turns it into the dequantized weights
// a * code + b as f16 pairs (bf16: hi and lo parts) and feeds them to mma.m16n8k16 as the A fragment. The fragment's k slots
// 2t, 2t + 1, 2t + 8, 2t + 9 hold elements 4t, 4t + 2, 4t + 1, 4t + 3 (any order of k serves, if
// A and B share it), so the B fragment of right-hand side g is x[g][4t .. 4t + 3] from one 8-byte
// load, swizzled. The weights are scaled before the product, so the accumulators run over the whole
// row with no per-group fix-up; f32 accumulation. The NW warps of a block take the row's chunks of
// 256 columns in turn; a warp copies chunk c + NW of its 16 rows global -> shared with cp.async (the
// 16-byte vectors covering each row's bytes, so any block alignment works) while it multiplies chunk
// c, whose x values it loaded into registers before waiting. x rows past `batch` are not read
// (zero), so one to eight right-hand sides cost the same W traffic.
// The fragment helpers (rf_mma16816, rf_mm_*) are in quant_w8.h, shared with qgemm's register tile.
template <typename F, typename T, int NW>
RF_DEVICE void rf_gemv_mma(const uint8_t* RF_RESTRICT w, const T* RF_RESTRICT x, T* RF_RESTRICT y, int rows, int cols, int batch) {
    using W = rf_w8<F>;
    static_assert(RF_WAVE == 32, "mma.sync needs 32-lane warps");
    constexpr int NS = W::NS;
    constexpr int CB = F::QK >= 256 ? 1 : 256 / F::QK;  // blocks per chunk (256 columns)
    constexpr int CU = CB * W::UPB;                     // units per chunk
    constexpr int CBYTES = CB * F::BYTES;
    constexpr int RV = (CBYTES + 34) / 16;              // 16-byte vectors covering a row's chunk at any alignment,
                                                        // and the aligned word after its last byte
    extern __shared__ uint4 rf_gemv_ring[];  // [NW][2][16 * RV], sized by the launcher (gemv::mma_shared_bytes)
    uint4 (*ring)[2][16 * RV] = (uint4 (*)[2][16 * RV])rf_gemv_ring;
    __shared__ float red[NW][16 * 8];
    const int lane = threadIdx.x % 32, wid = threadIdx.x / 32;
    const int g = lane >> 2, t = lane & 3;
    const int row0 = blockIdx.x * 16;
    const int nb = cols / F::QK, nch = (nb + CB - 1) / CB;
    const long long row_bytes = (long long)nb * F::BYTES;
    const uint8_t* end = w + (long long)rows * row_bytes;
    const bool xon = g < batch;
    const T* xr = x + (long long)min(g, batch - 1) * cols + 4 * t;
    // chunk c of the 16 rows into stage st: per row the 16-byte vectors covering its bytes, by cp.async
    // (the vector holding the end of W, if any, byte by byte with zeros after it)
    auto issue = [&](int c, int st) {
        for (int i = lane; i < 16 * RV; i += 32) {
            const int r = i / RV, v = i - r * RV;
            const uint8_t* base = w + (long long)min(row0 + r, rows - 1) * row_bytes + (long long)c * CBYTES;
            const uint8_t* src = (const uint8_t*)((unsigned long long)base & ~15ull) + 16 * v;
            const long long left = end - src;
            if (left >= 16) {
                rf_cp_async16(&ring[wid][st][i], src, 16);
            } else {  // the matrix ends inside this vector (or before it): bytes one by one, zeros after
                uint8_t* d = (uint8_t*)&ring[wid][st][i];
                for (int k = 0; k < 16; ++k) d[k] = k < left ? src[k] : (uint8_t)0;
            }
        }
        rf_cp_async_commit();
    };
    float acc[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};  // two chains of dependent mma
    int c = wid, it = 0;
    if (c < nch) issue(c, 0);
    for (; c < nch; c += NW, ++it) {
        const int st = it & 1;
        if (c + NW < nch) issue(c + NW, st ^ 1);
        else rf_cp_async_commit();  // an empty group keeps the count of groups in flight uniform
        const int cb = min(CB, nb - c * CB);
        uint2 xv[CU * NS];
#pragma unroll
        for (int q = 0; q < CU; ++q) {
            const int bi = q / W::UPB, u = q % W::UPB;
#pragma unroll
            for (int s = 0; s < NS; ++s) {
                xv[q * NS + s] = make_uint2(0u, 0u);
                if (xon && bi < cb) xv[q * NS + s] = *(const uint2*)(xr + (long long)(c * CB + bi) * F::QK + W::elem(u, s));
            }
        }
        rf_cp_async_wait<1>();
        RF_SYNC_WAVE();
        const uint8_t* sa = (const uint8_t*)&ring[wid][st][g * RV] +
                            (((long long)min(row0 + g, rows - 1) * row_bytes + (long long)c * CBYTES) & 15);
        const uint8_t* sb = (const uint8_t*)&ring[wid][st][(g + 8) * RV] +
                            (((long long)min(row0 + g + 8, rows - 1) * row_bytes + (long long)c * CBYTES) & 15);
#pragma unroll
        for (int q = 0; q < CU; ++q) {
            const int bi = q / W::UPB, u = q % W::UPB;
            if (bi < cb) {
                uint32_t ca[NS][1], cbw[NS][1];
                float aa[NS], ba[NS], ab[NS], bb[NS];
                W::template unit<1>(sa + bi * F::BYTES, u, t, ca, aa, ba, nullptr);
                W::template unit<1>(sb + bi * F::BYTES, u, t, cbw, ab, bb, nullptr);
                constexpr bool FAST = rf_is_half<T>::value && !rf_mm_min<F>::V;
                constexpr bool EXACT = rf_is_half<T>::value && rf_mm_min<F>::V;
                constexpr int NSC = F::QK == 32 ? 1 : NS;  // distinct scales per unit (32-element formats share)
                __half2 ha[FAST ? NSC : 1][2], hb[FAST ? NSC : 1][2];
                if constexpr (FAST) {
#pragma unroll
                    for (int s = 0; s < NSC; ++s) {
                        ha[s][0] = __float2half2_rn(aa[s]); hb[s][0] = __float2half2_rn(ba[s]);
                        ha[s][1] = __float2half2_rn(ab[s]); hb[s][1] = __float2half2_rn(bb[s]);
                    }
                }
#pragma unroll
                for (int s = 0; s < NS; ++s) {
                    const uint2 v = xv[q * NS + s];
                    const uint32_t b0 = __byte_perm(v.x, v.y, 0x5410), b1 = __byte_perm(v.x, v.y, 0x7632);
                    uint32_t a[4];
                    float* ac = acc[(q * NS + s) & 1];
                    if constexpr (EXACT) {
                        // codes exact in f16, the segment's product scaled in f32: acc += a * (code . x)
                        // + b * (sum x), the sums of x from a tile of ones
                        rf_mm_codes_h(ca[s][0], true, a[0], a[2]);
                        rf_mm_codes_h(cbw[s][0], true, a[1], a[3]);
                        float cx[4] = {0.0f, 0.0f, 0.0f, 0.0f}, sx[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                        rf_mma16816(cx, a, b0, b1, (T*)nullptr);
                        uint32_t ones[4];
                        ones[0] = ones[1] = ones[2] = ones[3] = 0x3C003C00u;  // f16 pairs (1, 1)
                        rf_mma16816(sx, ones, b0, b1, (T*)nullptr);
                        ac[0] = fmaf(aa[s], cx[0], fmaf(ba[s], sx[0], ac[0]));
                        ac[1] = fmaf(aa[s], cx[1], fmaf(ba[s], sx[1], ac[1]));
                        ac[2] = fmaf(ab[s], cx[2], fmaf(bb[s], sx[2], ac[2]));
                        ac[3] = fmaf(ab[s], cx[3], fmaf(bb[s], sx[3], ac[3]));
                    } else if constexpr (FAST) {
                        const int sc = NSC == 1 ? 0 : s;
                        rf_mm_pairs_h(ca[s][0], ha[sc][0], hb[sc][0], rf_mm_uns<F>::V, a[0], a[2]);
                        rf_mm_pairs_h(cbw[s][0], ha[sc][1], hb[sc][1], rf_mm_uns<F>::V, a[1], a[3]);
                        rf_mma16816(ac, a, b0, b1, (T*)nullptr);
                    } else {  // bf16: the hi parts, then the lo parts on the other chain
                        rf_mm_pairs_bf<0>(ca[s][0], aa[s], ba[s], a[0], a[2]);
                        rf_mm_pairs_bf<0>(cbw[s][0], ab[s], bb[s], a[1], a[3]);
                        rf_mma16816(ac, a, b0, b1, (T*)nullptr);
                        rf_mm_pairs_bf<1>(ca[s][0], aa[s], ba[s], a[0], a[2]);
                        rf_mm_pairs_bf<1>(cbw[s][0], ab[s], bb[s], a[1], a[3]);
                        rf_mma16816(acc[(q * NS + s + 1) & 1], a, b0, b1, (T*)nullptr);
                    }
                }
            }
        }
        RF_SYNC_WAVE();  // the stage is refilled two iterations on
    }
    rf_cp_async_wait<0>();
    red[wid][g * 8 + 2 * t] = acc[0][0] + acc[1][0];
    red[wid][g * 8 + 2 * t + 1] = acc[0][1] + acc[1][1];
    red[wid][(g + 8) * 8 + 2 * t] = acc[0][2] + acc[1][2];
    red[wid][(g + 8) * 8 + 2 * t + 1] = acc[0][3] + acc[1][3];
    __syncthreads();
    for (int k = threadIdx.x; k < 16 * 8; k += NW * 32) {
        const int r = k / 8, n = k % 8;
        float s = 0.0f;
#pragma unroll
        for (int v = 0; v < NW; ++v) s += red[v][k];
        if (row0 + r < rows && n < batch) y[(long long)n * rows + row0 + r] = rf_from_f32<T>(s);
    }
}
#endif

// Waves per block of the rows-16 configuration (gemv::MMA_WAVES): the mma tile on NVIDIA, the SIMT
// kernel elsewhere.
#define RF_GEMV_MMA_WAVES 8

// rows: rows of y (GLU: half the rows of W).
template <typename F, typename T, int B, int R, int GLU>
RF_DEVICE void rf_gemv_entry(const uint8_t* RF_RESTRICT w, const T* RF_RESTRICT x, T* RF_RESTRICT y, int rows, int cols, int batch) {
#if defined(RF_MMA_SYNC)
    if constexpr (GLU == 0 && R == 16 && rf_w8<F>::OK && !rf_is_f32<T>::value) {
        rf_gemv_mma<F, T, RF_GEMV_MMA_WAVES>(w, x, y, rows, cols, batch);
        return;
    } else
#endif
    {
        rf_gemv_simt<F, T, B, R, (R > 4 ? 2 : R), (R == 16 ? RF_GEMV_MMA_WAVES : 4), GLU>(w, x, y, rows, cols, batch);
    }
}
