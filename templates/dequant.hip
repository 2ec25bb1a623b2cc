// Dequantize kernel: rows of a quantized matrix to f32 / f16 / bf16, bit-exact with the CPU (the
// format's dequant8). Whole tensor: a 256-thread block takes a tile of U * 256 octets (whole blocks,
// contiguous bytes of W; U <= 4 from the format, see rf_dq_tile): it copies the tile's bytes into shared memory with 16-byte loads
// (all of a thread's loads issued before any is used), then each thread decodes U octets from
// shared memory and writes each with one 16- or 32-byte store (consecutive threads, consecutive
// octets). Gather (`idx` given): output row r is source row idx[r], one octet per thread read from
// global memory; an index outside [0, n_src_rows) gives a row of NaN.

#define RF_DQ_BLOCK 256

template <typename TO>
RF_DEVICE void rf_store8(TO* RF_RESTRICT out, const float* v);
template <>
RF_DEVICE void rf_store8<float>(float* RF_RESTRICT out, const float* v) {
    float4* o = (float4*)out;
    o[0] = make_float4(v[0], v[1], v[2], v[3]);
    o[1] = make_float4(v[4], v[5], v[6], v[7]);
}
RF_DEVICE uint32_t rf_pack_half2(float a, float b) {
    rf_half ha = __float2half_rn(a), hb = __float2half_rn(b);
    return (uint32_t)(*(uint16_t*)&ha) | ((uint32_t)(*(uint16_t*)&hb) << 16);
}
template <>
RF_DEVICE void rf_store8<rf_half>(rf_half* RF_RESTRICT out, const float* v) {
    *(uint4*)out = make_uint4(rf_pack_half2(v[0], v[1]), rf_pack_half2(v[2], v[3]), rf_pack_half2(v[4], v[5]), rf_pack_half2(v[6], v[7]));
}
RF_DEVICE uint32_t rf_pack_bf162(float a, float b) {
    return (uint32_t)rf_f32_to_bf16(a).bits | ((uint32_t)rf_f32_to_bf16(b).bits << 16);
}
template <>
RF_DEVICE void rf_store8<rf_bf16>(rf_bf16* RF_RESTRICT out, const float* v) {
    *(uint4*)out = make_uint4(rf_pack_bf162(v[0], v[1]), rf_pack_bf162(v[2], v[3]), rf_pack_bf162(v[4], v[5]), rf_pack_bf162(v[6], v[7]));
}

// 16 bytes at p, of which only those below `end` are read (the rest are zero).
RF_DEVICE uint4 rf_load16_upto(const uint8_t* p, const uint8_t* end) {
    if (p + 16 <= end) return *(const uint4*)p;
    uint32_t v[4] = {0u, 0u, 0u, 0u};
#pragma unroll
    for (int i = 0; i < 16; ++i)
        if (p + i < end) v[i / 4] |= (uint32_t)p[i] << (8 * (i % 4));
    return make_uint4(v[0], v[1], v[2], v[3]);
}

// Octets per thread: as many (up to 4) as keep a tile within 8 KiB of W (same rule as the launcher's
// rocmforge::ops::quantized::dequant::tile_octets).
template <typename F>
struct rf_dq_tile {
    static constexpr int OPB = F::QK / 8;                     // octets per block
    static constexpr int U0 = 8192 / (RF_DQ_BLOCK * (F::BYTES / OPB));
    static constexpr int U = U0 < 1 ? 1 : (U0 > 4 ? 4 : U0);
    static constexpr int OCT = U * RF_DQ_BLOCK;               // octets per tile
    static constexpr int BLKS = OCT / OPB;                    // blocks per tile
    static constexpr int BYTES = BLKS * F::BYTES;             // bytes per tile
    static constexpr int VEC = BYTES / 16;                    // 16-byte vectors per tile
    static constexpr int VPT = (VEC + RF_DQ_BLOCK - 1) / RF_DQ_BLOCK;  // vectors per thread
    static_assert(OCT % OPB == 0 && BYTES % 16 == 0, "a tile is whole blocks of whole 16-byte vectors");
};

template <typename F, typename TO>
RF_DEVICE void rf_dequant(const uint8_t* RF_RESTRICT w, const int* RF_RESTRICT idx, int n_src_rows, int n_rows, int cols,
                          TO* RF_RESTRICT out) {
    constexpr int OPB = F::QK / 8;
    const int oct_per_row = cols / 8;
    const long long row_bytes = (long long)(cols / F::QK) * F::BYTES;
    const int total = n_rows * oct_per_row;  // the launcher checks it fits
    if (idx) {
        for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
            const int r = t / oct_per_row, k = t - r * oct_per_row;
            const int src = idx[r];
            float v[8];
            if (src >= 0 && src < n_src_rows) {
                F::dequant8(w + (long long)src * row_bytes + (long long)(k / OPB) * F::BYTES, (k % OPB) * 8, v);
            } else {
#pragma unroll
                for (int i = 0; i < 8; ++i) v[i] = __uint_as_float(0x7fc00000u);
            }
            rf_store8<TO>(out + (long long)t * 8, v);
        }
        return;
    }
    using TL = rf_dq_tile<F>;
    __shared__ uint4 tile[TL::VEC];
    const uint8_t* end = w + (long long)n_rows * row_bytes;
    const int n_tiles = (total + TL::OCT - 1) / TL::OCT;
    for (int tl = blockIdx.x; tl < n_tiles; tl += gridDim.x) {
        const uint8_t* src = w + (long long)tl * TL::BYTES;
        uint4 v[TL::VPT];
#pragma unroll
        for (int i = 0; i < TL::VPT; ++i) {
            const int k = i * RF_DQ_BLOCK + threadIdx.x;
            if (k < TL::VEC && src + 16 * k < end) v[i] = rf_load16_upto(src + 16 * k, end);
        }
#pragma unroll
        for (int i = 0; i < TL::VPT; ++i) {
            const int k = i * RF_DQ_BLOCK + threadIdx.x;
            if (k < TL::VEC && src + 16 * k < end) tile[k] = v[i];
        }
        __syncthreads();
        const uint8_t* tb = (const uint8_t*)tile;
#pragma unroll
        for (int u = 0; u < TL::U; ++u) {
            const int o = u * RF_DQ_BLOCK + threadIdx.x;
            const int t = tl * TL::OCT + o;
            if (t < total) {
                float e[8];
                F::dequant8(tb + (o / OPB) * F::BYTES, (o % OPB) * 8, e);
                rf_store8<TO>(out + (long long)t * 8, e);
            }
        }
        __syncthreads();
    }
}
