// Dequantize kernel: rows of a quantized matrix to f32 / f16 / bf16. One thread per 8 output
// elements (one dequant8 call and one 16- or 32-byte store); consecutive threads take consecutive
// octets, so the block bytes of a warp are contiguous. With `idx` the output row r is the source row
// idx[r] (embedding lookup); an index outside [0, n_src_rows) gives a row of NaN.

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

template <typename F, typename TO>
RF_DEVICE void rf_dequant(const uint8_t* RF_RESTRICT w, const int* RF_RESTRICT idx, int n_src_rows, int n_rows, int cols,
                          TO* RF_RESTRICT out) {
    constexpr int OPB = F::QK / 8;  // octets per block
    const int oct_per_row = cols / 8;
    const long long row_bytes = (long long)(cols / F::QK) * F::BYTES;
    const int total = n_rows * oct_per_row;  // the launcher checks it fits
    for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
        const int r = t / oct_per_row, k = t - r * oct_per_row;
        const int src = idx ? idx[r] : r;
        float v[8];
        if (src >= 0 && src < n_src_rows) {
            F::dequant8(w + (long long)src * row_bytes + (long long)(k / OPB) * F::BYTES, (k % OPB) * 8, v);
        } else {
#pragma unroll
            for (int i = 0; i < 8; ++i) v[i] = __uint_as_float(0x7fc00000u);
        }
        rf_store8<TO>(out + (long long)t * 8, v);
    }
}
