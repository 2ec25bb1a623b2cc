// ---- quant_dequant.h: device-side decoding of every block format ----
//
// Contract (used by the dequant and gemv families and by other families' fused kernels):
//   for each format a tag struct rf_fmt_<name> with
//     static constexpr int QK      elements per block (the float formats f32/f16/bf16 have no block:
//                                  their "block" here is 8 consecutive elements, QK = 8)
//     static constexpr int BYTES   bytes per block (QK elements)
//     RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out)
//                                  out[0..8) = elements j0..j0+7 of the block at `block`, j0 % 8 == 0,
//                                  bit-exactly what the CPU dequantizer (src/quant) gives.
//   `block` must be aligned as a block of a tensor of whole blocks starting at a 16-byte aligned
//   address: to gcd(BYTES, 16). Loads are as wide as that alignment allows.
// The block structs (`struct block_<name>`) are rendered from the Rust layout table by the family
// preamble (rocmforge::ops::quantized::quant_preamble); nothing here restates a layout.
//
// Bit-exactness: the CPU computes e.g. `d * q + m` with two roundings. NVRTC and hipRTC contract
// a*b+c into one FMA by default, so every product that feeds an add goes through RF_QMUL, which can
// never be contracted (CUDA: __fmul_rn; AMD: the product passes through an empty asm, which the
// optimizer cannot see through). Integer codes become floats through the exponent trick
// (0x4B000000 | q) - 2^23, exact for q < 2^23 and cheaper than an int->float conversion.

#if defined(RF_SM) || defined(RF_EMULATE)
#define RF_QMUL(a, b) __fmul_rn((a), (b))
#else
RF_DEVICE float rf_qmul_nocontract(float a, float b) {
    float p = a * b;
    asm("" : "+v"(p));
    return p;
}
#define RF_QMUL(a, b) rf_qmul_nocontract((a), (b))
#endif

// (float)q for 0 <= q < 2^23, and (float)(q - k) exactly for small q, k.
RF_DEVICE float rf_u2f(uint32_t q) { return __uint_as_float(0x4B000000u | q) - 8388608.0f; }
RF_DEVICE float rf_u2f_minus(uint32_t q, int k) { return __uint_as_float(0x4B000000u | q) - (8388608.0f + (float)k); }
RF_DEVICE float rf_i2f(int q) { return (float)q; }

RF_DEVICE float rf_h2f_bits(uint16_t h) {
    rf_half v;
    *(uint16_t*)&v = h;
    return __half2float(v);
}

constexpr int rf_qalign(int a) { return (a % 16 == 0) ? 16 : (a % 8 == 0) ? 8 : (a % 4 == 0) ? 4 : (a % 2 == 0) ? 2 : 1; }
constexpr int rf_qmin(int a, int b) { return a < b ? a : b; }
// Alignment of field FIELD of struct BLK inside blocks of BYTES bytes (rf_off_* come with the structs).
#define RF_FIELD_ALIGN(BLK, FIELD, BYTES) rf_qmin(rf_qalign(BYTES), rf_qalign(rf_off_##BLK##_##FIELD))

// Little-endian 32-bit word from p, using loads as wide as alignment A allows.
template <int A>
RF_DEVICE uint32_t rf_ld32(const uint8_t* p) {
    if constexpr (A >= 4) {
        return *(const uint32_t*)p;
    } else if constexpr (A == 2) {
        const uint16_t* q = (const uint16_t*)p;
        return (uint32_t)q[0] | ((uint32_t)q[1] << 16);
    } else {
        return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
    }
}
// 8 bytes as two words.
template <int A>
RF_DEVICE void rf_ld64(const uint8_t* p, uint32_t& lo, uint32_t& hi) {
    if constexpr (A >= 8) {
        uint2 v = *(const uint2*)p;
        lo = v.x;
        hi = v.y;
    } else {
        lo = rf_ld32<A>(p);
        hi = rf_ld32<A>(p + 4);
    }
}
RF_DEVICE uint32_t rf_byte(uint32_t w, int i) { return (w >> (8 * i)) & 0xffu; }

// ---------------- float formats (QK = 8: eight consecutive elements) ----------------
struct rf_fmt_f32 {
    static constexpr int QK = 8;
    static constexpr int BYTES = 8 * (int)sizeof(block_f32);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        const float4* p = (const float4*)(block + 4 * j0);
        float4 a = p[0], b = p[1];
        out[0] = a.x; out[1] = a.y; out[2] = a.z; out[3] = a.w;
        out[4] = b.x; out[5] = b.y; out[6] = b.z; out[7] = b.w;
    }
};
struct rf_fmt_f16 {
    static constexpr int QK = 8;
    static constexpr int BYTES = 8 * (int)sizeof(block_f16);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        uint4 v = *(const uint4*)(block + 2 * j0);
        uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            out[2 * i] = rf_h2f_bits((uint16_t)(w[i] & 0xffffu));
            out[2 * i + 1] = rf_h2f_bits((uint16_t)(w[i] >> 16));
        }
    }
};
struct rf_fmt_bf16 {
    static constexpr int QK = 8;
    static constexpr int BYTES = 8 * (int)sizeof(block_bf16);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        uint4 v = *(const uint4*)(block + 2 * j0);
        uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            out[2 * i] = __uint_as_float(w[i] << 16);
            out[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
        }
    }
};

// ---------------- legacy 32-element formats ----------------
// Nibbles of element j0..j0+7: low nibbles of qs[j0..j0+8) for j0 < 16, high nibbles of qs[j0-16..) after.
template <typename BLK, int A>
RF_DEVICE void rf_nibbles8(const uint8_t* qs, int j0, uint32_t* q) {
    uint32_t lo, hi;
    rf_ld64<A>(qs + (j0 & 15), lo, hi);
    const int sh = j0 >= 16 ? 4 : 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        q[i] = (lo >> (8 * i + sh)) & 15u;
        q[i + 4] = (hi >> (8 * i + sh)) & 15u;
    }
}

struct rf_fmt_q4_0 {
    static constexpr int QK = 32;
    static constexpr int BYTES = (int)sizeof(block_q4_0);
    static constexpr int AQ = RF_FIELD_ALIGN(block_q4_0, qs, BYTES);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        const block_q4_0* b = (const block_q4_0*)block;
        const float d = __half2float(b->d);
        uint32_t q[8];
        rf_nibbles8<block_q4_0, AQ>(b->qs, j0, q);
#pragma unroll
        for (int i = 0; i < 8; ++i) out[i] = d * rf_u2f_minus(q[i], 8);
    }
};
struct rf_fmt_q4_1 {
    static constexpr int QK = 32;
    static constexpr int BYTES = (int)sizeof(block_q4_1);
    static constexpr int AQ = RF_FIELD_ALIGN(block_q4_1, qs, BYTES);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        const block_q4_1* b = (const block_q4_1*)block;
        const float d = __half2float(b->d), m = __half2float(b->m);
        uint32_t q[8];
        rf_nibbles8<block_q4_1, AQ>(b->qs, j0, q);
#pragma unroll
        for (int i = 0; i < 8; ++i) out[i] = RF_QMUL(d, rf_u2f(q[i])) + m;
    }
};
// 5-bit codes: nibbles plus bit (j) of qh for element j.
template <typename BLK, int AQ, int AH>
RF_DEVICE void rf_q5_codes(const BLK* b, int j0, uint32_t* q) {
    rf_nibbles8<BLK, AQ>(b->qs, j0, q);
    const uint32_t qh = rf_ld32<AH>(b->qh) >> j0;
#pragma unroll
    for (int i = 0; i < 8; ++i) q[i] |= ((qh >> i) & 1u) << 4;
}
struct rf_fmt_q5_0 {
    static constexpr int QK = 32;
    static constexpr int BYTES = (int)sizeof(block_q5_0);
    static constexpr int AQ = RF_FIELD_ALIGN(block_q5_0, qs, BYTES);
    static constexpr int AH = RF_FIELD_ALIGN(block_q5_0, qh, BYTES);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        const block_q5_0* b = (const block_q5_0*)block;
        const float d = __half2float(b->d);
        uint32_t q[8];
        rf_q5_codes<block_q5_0, AQ, AH>(b, j0, q);
#pragma unroll
        for (int i = 0; i < 8; ++i) out[i] = d * rf_u2f_minus(q[i], 16);
    }
};
struct rf_fmt_q5_1 {
    static constexpr int QK = 32;
    static constexpr int BYTES = (int)sizeof(block_q5_1);
    static constexpr int AQ = RF_FIELD_ALIGN(block_q5_1, qs, BYTES);
    static constexpr int AH = RF_FIELD_ALIGN(block_q5_1, qh, BYTES);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        const block_q5_1* b = (const block_q5_1*)block;
        const float d = __half2float(b->d), m = __half2float(b->m);
        uint32_t q[8];
        rf_q5_codes<block_q5_1, AQ, AH>(b, j0, q);
#pragma unroll
        for (int i = 0; i < 8; ++i) out[i] = RF_QMUL(d, rf_u2f(q[i])) + m;
    }
};
template <typename BLK, int AQ>
RF_DEVICE void rf_q8_dequant8(const BLK* b, int j0, float* out) {
    const float d = __half2float(b->d);
    uint32_t lo, hi;
    rf_ld64<AQ>((const uint8_t*)b->qs + j0, lo, hi);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        out[i] = rf_i2f((int)(signed char)rf_byte(lo, i)) * d;
        out[i + 4] = rf_i2f((int)(signed char)rf_byte(hi, i)) * d;
    }
}
struct rf_fmt_q8_0 {
    static constexpr int QK = 32;
    static constexpr int BYTES = (int)sizeof(block_q8_0);
    static constexpr int AQ = RF_FIELD_ALIGN(block_q8_0, qs, BYTES);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) { rf_q8_dequant8<block_q8_0, AQ>((const block_q8_0*)block, j0, out); }
};
struct rf_fmt_q8_1 {
    static constexpr int QK = 32;
    static constexpr int BYTES = (int)sizeof(block_q8_1);
    static constexpr int AQ = RF_FIELD_ALIGN(block_q8_1, qs, BYTES);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) { rf_q8_dequant8<block_q8_1, AQ>((const block_q8_1*)block, j0, out); }
};

// ---------------- K-quants (256-element super-blocks) ----------------
// 2-bit codes of elements e..e+7 (e % 8 == 0): (qs[32*(e/128) + e%32 + i] >> (2*((e%128)/32))) & 3.
template <int A>
RF_DEVICE void rf_k_2bit8(const uint8_t* qs, int e, uint32_t* q) {
    uint32_t lo, hi;
    rf_ld64<A>(qs + 32 * (e / 128) + (e % 32), lo, hi);
    const int sh = 2 * ((e % 128) / 32);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        q[i] = (lo >> (8 * i + sh)) & 3u;
        q[i + 4] = (hi >> (8 * i + sh)) & 3u;
    }
}
struct rf_fmt_q2_K {
    static constexpr int QK = 256;
    static constexpr int BYTES = (int)sizeof(block_q2_K);
    static constexpr int AQ = RF_FIELD_ALIGN(block_q2_K, qs, BYTES);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        const block_q2_K* b = (const block_q2_K*)block;
        const float d = __half2float(b->d), dmin = __half2float(b->dmin);
        const uint32_t sc = b->scales[j0 / 16];
        const float dl = d * rf_u2f(sc & 15u), ml = RF_QMUL(dmin, rf_u2f(sc >> 4));
        uint32_t q[8];
        rf_k_2bit8<AQ>(b->qs, j0, q);
#pragma unroll
        for (int i = 0; i < 8; ++i) out[i] = RF_QMUL(dl, rf_u2f(q[i])) - ml;
    }
};
struct rf_fmt_q3_K {
    static constexpr int QK = 256;
    static constexpr int BYTES = (int)sizeof(block_q3_K);
    static constexpr int AQ = RF_FIELD_ALIGN(block_q3_K, qs, BYTES);
    static constexpr int AH = RF_FIELD_ALIGN(block_q3_K, hmask, BYTES);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        const block_q3_K* b = (const block_q3_K*)block;
        const float d = __half2float(b->d);
        const int j = j0 / 16;
        const uint32_t lo4 = j < 8 ? (b->scales[j] & 15u) : (uint32_t)(b->scales[j - 8] >> 4);
        const int sc = (int)(lo4 | (((uint32_t)(b->scales[8 + j % 4] >> (2 * (j / 4))) & 3u) << 4)) - 32;
        const float dl = d * rf_i2f(sc);
        uint32_t q[8];
        rf_k_2bit8<AQ>(b->qs, j0, q);
        uint32_t hlo, hhi;
        rf_ld64<AH>(b->hmask + (j0 % 32), hlo, hhi);
        const int hs = j0 / 32;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t h0 = (hlo >> (8 * i + hs)) & 1u, h1 = (hhi >> (8 * i + hs)) & 1u;
            out[i] = dl * rf_u2f_minus(q[i] + 4u * h0, 4);
            out[i + 4] = dl * rf_u2f_minus(q[i + 4] + 4u * h1, 4);
        }
    }
};
// 6-bit scale and min j of the q4_K / q5_K 12-byte scale array (llama.cpp get_scale_min_k4).
RF_DEVICE void rf_scale_min_k4(int j, const uint8_t* q, uint32_t& s, uint32_t& m) {
    if (j < 4) {
        s = q[j] & 63u;
        m = q[j + 4] & 63u;
    } else {
        s = (q[j + 4] & 0xFu) | ((uint32_t)(q[j - 4] >> 6) << 4);
        m = (uint32_t)(q[j + 4] >> 4) | ((uint32_t)(q[j] >> 6) << 4);
    }
}
// 4-bit codes of elements e..e+7: (qs[32*(e/64) + e%32 + i] >> (4*((e/32)%2))) & 15.
template <int A>
RF_DEVICE void rf_k_4bit8(const uint8_t* qs, int e, uint32_t* q) {
    uint32_t lo, hi;
    rf_ld64<A>(qs + 32 * (e / 64) + (e % 32), lo, hi);
    const int sh = 4 * ((e / 32) % 2);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        q[i] = (lo >> (8 * i + sh)) & 15u;
        q[i + 4] = (hi >> (8 * i + sh)) & 15u;
    }
}
struct rf_fmt_q4_K {
    static constexpr int QK = 256;
    static constexpr int BYTES = (int)sizeof(block_q4_K);
    static constexpr int AQ = RF_FIELD_ALIGN(block_q4_K, qs, BYTES);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        const block_q4_K* b = (const block_q4_K*)block;
        const float d = __half2float(b->d), dmin = __half2float(b->dmin);
        uint32_t s, m;
        rf_scale_min_k4(j0 / 32, b->scales, s, m);
        const float dl = d * rf_u2f(s), ml = RF_QMUL(dmin, rf_u2f(m));
        uint32_t q[8];
        rf_k_4bit8<AQ>(b->qs, j0, q);
#pragma unroll
        for (int i = 0; i < 8; ++i) out[i] = RF_QMUL(dl, rf_u2f(q[i])) - ml;
    }
};
struct rf_fmt_q5_K {
    static constexpr int QK = 256;
    static constexpr int BYTES = (int)sizeof(block_q5_K);
    static constexpr int AQ = RF_FIELD_ALIGN(block_q5_K, qs, BYTES);
    static constexpr int AH = RF_FIELD_ALIGN(block_q5_K, qh, BYTES);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        const block_q5_K* b = (const block_q5_K*)block;
        const float d = __half2float(b->d), dmin = __half2float(b->dmin);
        uint32_t s, m;
        rf_scale_min_k4(j0 / 32, b->scales, s, m);
        const float dl = d * rf_u2f(s), ml = RF_QMUL(dmin, rf_u2f(m));
        uint32_t q[8];
        rf_k_4bit8<AQ>(b->qs, j0, q);
        uint32_t hlo, hhi;
        rf_ld64<AH>(b->qh + (j0 % 32), hlo, hhi);
        const int hs = j0 / 32;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            q[i] |= ((hlo >> (8 * i + hs)) & 1u) << 4;
            q[i + 4] |= ((hhi >> (8 * i + hs)) & 1u) << 4;
        }
#pragma unroll
        for (int i = 0; i < 8; ++i) out[i] = RF_QMUL(dl, rf_u2f(q[i])) - ml;
    }
};
struct rf_fmt_q6_K {
    static constexpr int QK = 256;
    static constexpr int BYTES = (int)sizeof(block_q6_K);
    static constexpr int AL = RF_FIELD_ALIGN(block_q6_K, ql, BYTES);
    static constexpr int AH = RF_FIELD_ALIGN(block_q6_K, qh, BYTES);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        const block_q6_K* b = (const block_q6_K*)block;
        const float d = __half2float(b->d);
        const float dl = d * rf_i2f((int)b->scales[j0 / 16]);
        const int h = j0 / 128, r = j0 % 128;
        uint32_t llo, lhi, hlo, hhi;
        rf_ld64<AL>(b->ql + 64 * h + (r % 64), llo, lhi);
        rf_ld64<AH>(b->qh + 32 * h + (r % 32), hlo, hhi);
        const int ls = 4 * (r / 64), hs = 2 * (r / 32);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t a = ((llo >> (8 * i + ls)) & 15u) | (((hlo >> (8 * i + hs)) & 3u) << 4);
            const uint32_t c = ((lhi >> (8 * i + ls)) & 15u) | (((hhi >> (8 * i + hs)) & 3u) << 4);
            out[i] = dl * rf_u2f_minus(a, 32);
            out[i + 4] = dl * rf_u2f_minus(c, 32);
        }
    }
};
struct rf_fmt_q8_K {
    static constexpr int QK = 256;
    static constexpr int BYTES = (int)sizeof(block_q8_K);
    static constexpr int AQ = RF_FIELD_ALIGN(block_q8_K, qs, BYTES);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        const block_q8_K* b = (const block_q8_K*)block;
        const float d = b->d;
        uint32_t lo, hi;
        rf_ld64<AQ>((const uint8_t*)b->qs + j0, lo, hi);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            out[i] = d * rf_i2f((int)(signed char)rf_byte(lo, i));
            out[i + 4] = d * rf_i2f((int)(signed char)rf_byte(hi, i));
        }
    }
};

// ---------------- MX formats ----------------
// GGUF mxfp4: d = 2^(e-128) (ggml_e8m0_to_fp32_half), x = d * kvalue[code], q4_0 nibble order.
RF_DEVICE float rf_e8m0_half(uint32_t e) { return __uint_as_float(e < 2 ? (0x00200000u << e) : ((e - 1u) << 23)); }
RF_DEVICE float rf_mxfp4_kvalue(uint32_t c) {
    // doubled E2M1 magnitudes {0,1,2,3,4,6,8,12}, one per nibble; code 8 is +0 as in ggml's table
    const int mag = (int)((0xC8643210u >> (4 * (c & 7u))) & 15u);
    return rf_i2f((c & 8u) ? -mag : mag);
}
struct rf_fmt_mxfp4 {
    static constexpr int QK = 32;
    static constexpr int BYTES = (int)sizeof(block_mxfp4);
    static constexpr int AQ = RF_FIELD_ALIGN(block_mxfp4, qs, BYTES);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        const block_mxfp4* b = (const block_mxfp4*)block;
        const float d = rf_e8m0_half(b->e);
        uint32_t q[8];
        rf_nibbles8<block_mxfp4, AQ>(b->qs, j0, q);
#pragma unroll
        for (int i = 0; i < 8; ++i) out[i] = d * rf_mxfp4_kvalue(q[i]);
    }
};

// OCP MX element decode: EB exponent bits, MB mantissa bits, BIAS; NaN/Inf as OCP MX v1.0
// (E4M3: S.1111.111 is NaN, no Inf; E5M2: IEEE-like; FP4/FP6: all codes finite). Exact in f32.
template <int EB, int MB, int BIAS>
RF_DEVICE float rf_mx_decode(uint32_t code) {
    const uint32_t e = (code >> MB) & ((1u << EB) - 1u), m = code & ((1u << MB) - 1u);
    const bool neg = (code >> (EB + MB)) & 1u;
    float mag;
    if (EB == 4 && e == 15u && m == 7u) {
        mag = __uint_as_float(0x7fc00000u);
    } else if (EB == 5 && e == 31u) {
        mag = __uint_as_float(m == 0u ? 0x7f800000u : 0x7fc00000u);
    } else if (e == 0u) {
        mag = rf_u2f(m) * __uint_as_float((uint32_t)(127 + 1 - BIAS - MB) << 23);
    } else {
        mag = __uint_as_float(((e + (uint32_t)(127 - BIAS)) << 23) | (m << (23 - MB)));
    }
    return neg ? -mag : mag;
}
// 2^(e-127) as f32 (e = 0 gives the subnormal 2^-127); e = 255 is handled by the caller (NaN).
RF_DEVICE float rf_e8m0(uint32_t e) { return __uint_as_float(e == 0u ? 0x00400000u : (e << 23)); }

template <typename BLK, int EB, int MB, int BIAS>
struct rf_fmt_mx_base {
    RF_DEVICE static void finish(uint32_t e, const uint32_t* code, float* out) {
        const float s = rf_e8m0(e);
#pragma unroll
        for (int i = 0; i < 8; ++i) out[i] = e == 255u ? __uint_as_float(0x7fc00000u) : rf_mx_decode<EB, MB, BIAS>(code[i]) * s;
    }
};
struct rf_fmt_mx_fp4 : rf_fmt_mx_base<block_mx_fp4, 2, 1, 1> {
    static constexpr int QK = 32;
    static constexpr int BYTES = (int)sizeof(block_mx_fp4);
    static constexpr int AQ = RF_FIELD_ALIGN(block_mx_fp4, qs, BYTES);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        const block_mx_fp4* b = (const block_mx_fp4*)block;
        const uint32_t w = rf_ld32<AQ>(b->qs + j0 / 2);  // elements 2i, 2i+1 in byte i
        uint32_t c[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) c[i] = (w >> (4 * i)) & 15u;
        finish(b->e, c, out);
    }
};
template <typename BLK, int AQ>
RF_DEVICE void rf_fp6_codes8(const BLK* b, int j0, uint32_t* c) {
    // elements 4g..4g+3 in bytes 3g..3g+2 (little-endian 24-bit word), 6 bits each
    const uint8_t* p = b->qs + 3 * (j0 / 4);
    uint32_t w0, w1;
    if constexpr (AQ >= 2) {
        const uint16_t* h = (const uint16_t*)p;  // 3*(j0/4) is even as j0 % 8 == 0
        const uint32_t a = h[0], bb = h[1], cc = h[2];
        w0 = a | ((bb & 0xffu) << 16);
        w1 = (bb >> 8) | (cc << 8);
    } else {
        w0 = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16);
        w1 = (uint32_t)p[3] | ((uint32_t)p[4] << 8) | ((uint32_t)p[5] << 16);
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        c[k] = (w0 >> (6 * k)) & 63u;
        c[k + 4] = (w1 >> (6 * k)) & 63u;
    }
}
struct rf_fmt_mx_fp6_e2m3 : rf_fmt_mx_base<block_mx_fp6_e2m3, 2, 3, 1> {
    static constexpr int QK = 32;
    static constexpr int BYTES = (int)sizeof(block_mx_fp6_e2m3);
    static constexpr int AQ = RF_FIELD_ALIGN(block_mx_fp6_e2m3, qs, BYTES);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        const block_mx_fp6_e2m3* b = (const block_mx_fp6_e2m3*)block;
        uint32_t c[8];
        rf_fp6_codes8<block_mx_fp6_e2m3, AQ>(b, j0, c);
        finish(b->e, c, out);
    }
};
struct rf_fmt_mx_fp6_e3m2 : rf_fmt_mx_base<block_mx_fp6_e3m2, 3, 2, 3> {
    static constexpr int QK = 32;
    static constexpr int BYTES = (int)sizeof(block_mx_fp6_e3m2);
    static constexpr int AQ = RF_FIELD_ALIGN(block_mx_fp6_e3m2, qs, BYTES);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        const block_mx_fp6_e3m2* b = (const block_mx_fp6_e3m2*)block;
        uint32_t c[8];
        rf_fp6_codes8<block_mx_fp6_e3m2, AQ>(b, j0, c);
        finish(b->e, c, out);
    }
};
template <typename BLK, int AQ>
RF_DEVICE void rf_fp8_codes8(const BLK* b, int j0, uint32_t* c) {
    uint32_t lo, hi;
    rf_ld64<AQ>(b->qs + j0, lo, hi);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        c[i] = rf_byte(lo, i);
        c[i + 4] = rf_byte(hi, i);
    }
}
struct rf_fmt_mx_fp8_e4m3 : rf_fmt_mx_base<block_mx_fp8_e4m3, 4, 3, 7> {
    static constexpr int QK = 32;
    static constexpr int BYTES = (int)sizeof(block_mx_fp8_e4m3);
    static constexpr int AQ = RF_FIELD_ALIGN(block_mx_fp8_e4m3, qs, BYTES);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        const block_mx_fp8_e4m3* b = (const block_mx_fp8_e4m3*)block;
        uint32_t c[8];
        rf_fp8_codes8<block_mx_fp8_e4m3, AQ>(b, j0, c);
        finish(b->e, c, out);
    }
};
struct rf_fmt_mx_fp8_e5m2 : rf_fmt_mx_base<block_mx_fp8_e5m2, 5, 2, 15> {
    static constexpr int QK = 32;
    static constexpr int BYTES = (int)sizeof(block_mx_fp8_e5m2);
    static constexpr int AQ = RF_FIELD_ALIGN(block_mx_fp8_e5m2, qs, BYTES);
    RF_DEVICE static void dequant8(const uint8_t* block, int j0, float* out) {
        const block_mx_fp8_e5m2* b = (const block_mx_fp8_e5m2*)block;
        uint32_t c[8];
        rf_fp8_codes8<block_mx_fp8_e5m2, AQ>(b, j0, c);
        finish(b->e, c, out);
    }
};
