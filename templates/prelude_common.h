// ---- prelude: common to both vendors ----
// bf16 is kept as raw 16-bit storage (HIP 5.2's hipRTC has no bfloat16 type).
struct rf_bf16 { unsigned short bits; };

RF_DEVICE float rf_bf16_to_f32(rf_bf16 v) { return __uint_as_float(((unsigned int)v.bits) << 16); }
RF_DEVICE rf_bf16 rf_f32_to_bf16(float f) {
    unsigned int u = __float_as_uint(f);
    rf_bf16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) { r.bits = (unsigned short)((u >> 16) | 0x40u); return r; }  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
    r.bits = (unsigned short)(u >> 16);
    return r;
}

RF_DEVICE float rf_to_f32(float v) { return v; }
RF_DEVICE float rf_to_f32(rf_half v) { return __half2float(v); }
RF_DEVICE float rf_to_f32(rf_bf16 v) { return rf_bf16_to_f32(v); }

template <typename T> RF_DEVICE T rf_from_f32(float v);
template <> RF_DEVICE float rf_from_f32<float>(float v) { return v; }
template <> RF_DEVICE rf_half rf_from_f32<rf_half>(float v) { return __float2half_rn(v); }
template <> RF_DEVICE rf_bf16 rf_from_f32<rf_bf16>(float v) { return rf_f32_to_bf16(v); }

static constexpr int RF_WAVE_SIZE = RF_WAVE;
#define RF_NEG_INF __int_as_float(0xff800000)
#define RF_POS_INF __int_as_float(0x7f800000)

// Butterfly reductions over one wave; every lane gets the result.
RF_DEVICE float rf_wave_sum(float v) {
#pragma unroll
    for (int m = RF_WAVE / 2; m > 0; m >>= 1) v += RF_SHFL_XOR(v, m);
    return v;
}
RF_DEVICE float rf_wave_max(float v) {
#pragma unroll
    for (int m = RF_WAVE / 2; m > 0; m >>= 1) v = fmaxf(v, RF_SHFL_XOR(v, m));
    return v;
}

// Block-wide sum for BLOCK threads (a multiple of the wave size). Every thread gets the result.
// `scratch` holds at least BLOCK / RF_WAVE floats of shared memory.
template <int BLOCK>
RF_DEVICE float rf_block_sum(float v, float* scratch) {
    static_assert(BLOCK % RF_WAVE == 0, "block must be a whole number of waves");
    constexpr int NW = BLOCK / RF_WAVE;
    v = rf_wave_sum(v);
    const int lane = threadIdx.x % RF_WAVE, wid = threadIdx.x / RF_WAVE;
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[wid] = v;
    __syncthreads();
    float t = lane < NW ? scratch[lane] : 0.0f;
    return rf_wave_sum(t);
}
template <int BLOCK>
RF_DEVICE float rf_block_max(float v, float* scratch) {
    constexpr int NW = BLOCK / RF_WAVE;
    v = rf_wave_max(v);
    const int lane = threadIdx.x % RF_WAVE, wid = threadIdx.x / RF_WAVE;
    __syncthreads();
    if (lane == 0) scratch[wid] = v;
    __syncthreads();
    float t = lane < NW ? scratch[lane] : RF_NEG_INF;
    return rf_wave_max(t);
}

// Quantize consecutive values to 8 bits, one per lane of an aligned group of 32 lanes: every lane of
// the group calls it (v = 0, valid = false where there is no element). Per 16 elements, d = amax / 127
// and codes q = rint(v * 127 / amax) go to xq[at], and (d, d * sum q) to xs[at / 16]: the input of the
// gemv_q8 kernels (reference: rocmforge::ops::quantized::gemv_q8::quantize_x_ref). 16-element
// scales keep an outlier from coarsening more than its own half of a 32-block.
RF_DEVICE void rf_q8_put(float v, bool valid, long long at, signed char* xq, float2* xs) {
    float amax = fabsf(v);
#pragma unroll
    for (int m = 8; m > 0; m >>= 1) amax = fmaxf(amax, RF_SHFL_XOR(amax, m));
    const float d = amax / 127.0f;
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    const int q = (int)rintf(v * id);
    int s = q;
#pragma unroll
    for (int m = 8; m > 0; m >>= 1) s += RF_SHFL_XOR(s, m);
    if (valid) {
        xq[at] = (signed char)q;
        if ((at & 15) == 0) xs[at >> 4] = make_float2(d, d * (float)s);
    }
}

// rf_q8_put for four consecutive elements a lane (at a multiple of 4): the 16 elements of a scale are the
// four lanes 4k..4k+3, which are valid together. Bit-equal to four rf_q8_put calls.
RF_DEVICE void rf_q8_put4(float4 v, bool valid, long long at, signed char* xq, float2* xs) {
    float amax = fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
#pragma unroll
    for (int m = 2; m > 0; m >>= 1) amax = fmaxf(amax, RF_SHFL_XOR(amax, m));
    const float d = amax / 127.0f;
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    const int q0 = (int)rintf(v.x * id), q1 = (int)rintf(v.y * id), q2 = (int)rintf(v.z * id), q3 = (int)rintf(v.w * id);
    int s = q0 + q1 + q2 + q3;
#pragma unroll
    for (int m = 2; m > 0; m >>= 1) s += RF_SHFL_XOR(s, m);
    if (valid) {
        *(unsigned int*)(xq + at) = (unsigned)(q0 & 255) | (unsigned)(q1 & 255) << 8 | (unsigned)(q2 & 255) << 16 | (unsigned)(q3 & 255) << 24;
        if ((at & 15) == 0) xs[at >> 4] = make_float2(d, d * (float)s);
    }
}

// The gated activations of the GEMV GLU epilogues (gemv, gemv_wave): GLU 1 = SiLU, 2 = GELU-tanh, the
// arithmetic of glue.hip's glue_silu / glue_gelu_tanh.
template <int GLU>
RF_DEVICE float rf_glu_act(float g) {
    if constexpr (GLU == 2) {
        const float k = 0.7978845608028654f;  // sqrt(2 / pi)
        return 0.5f * g * (1.0f + tanhf(k * (g + 0.044715f * g * g * g)));
    } else {
        return g / (1.0f + __expf(-g));
    }
}
