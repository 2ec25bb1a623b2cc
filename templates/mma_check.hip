// Checks of the matrix-core instructions and AMD lane primitives that the kernels use, one wave per
// WAVES-th of a block, per lane in and out: run natively on AMD they check the layout tables of
// tests/data/amd_layouts against the hardware; emulated on NVIDIA (templates/prelude_emu.h) they check
// the emulation against the same tables and the ISA's semantics (tests/gpu_emulate.rs).
//
// mma: lane l of wave w reads its A, B and C vector elements from a/b/c[(w * RF_WAVE + l) * len + j]
// (A and B as f32 holding values exact in f16/bf16) and writes D likewise, for the 16x16x16
// f32 <- f16/bf16 instruction the templates use on this target (as attn_prefill.hip and qgemm.hip
// call it).
#if defined(RF_MFMA) || defined(RF_WMMA)
#if defined(RF_WMMA) && RF_GFX < 0x1200
#define MC_KPL 16
#else
#define MC_KPL (16 * 16 / RF_WAVE)
#endif
#define MC_CPT (256 / RF_WAVE)
typedef rf_vec<short, MC_KPL> mc_vs;
typedef rf_vec<rf_f16_elem, MC_KPL> mc_vh;
typedef rf_vec<float, MC_CPT> mc_vf;

RF_DEVICE mc_vf mc_mma(mc_vs a, mc_vs b, mc_vf c, rf_half*) {
#if defined(RF_MFMA)
    return __builtin_amdgcn_mfma_f32_16x16x16f16(__builtin_bit_cast(mc_vh, a), __builtin_bit_cast(mc_vh, b), c, 0, 0, 0);
#elif RF_GFX >= 0x1200
    return __builtin_amdgcn_wmma_f32_16x16x16_f16_w32_gfx12(__builtin_bit_cast(mc_vh, a), __builtin_bit_cast(mc_vh, b), c);
#else
    return __builtin_amdgcn_wmma_f32_16x16x16_f16_w32(__builtin_bit_cast(mc_vh, a), __builtin_bit_cast(mc_vh, b), c);
#endif
}
RF_DEVICE mc_vf mc_mma(mc_vs a, mc_vs b, mc_vf c, rf_bf16*) {
#if defined(RF_MFMA)
    return __builtin_amdgcn_mfma_f32_16x16x16bf16_1k(a, b, c, 0, 0, 0);
#elif RF_GFX >= 0x1200
    return __builtin_amdgcn_wmma_f32_16x16x16_bf16_w32_gfx12(a, b, c);
#else
    return __builtin_amdgcn_wmma_f32_16x16x16_bf16_w32(a, b, c);
#endif
}
RF_DEVICE short mc_bits(float x, rf_half*) { return (short)__half_as_ushort(__float2half_rn(x)); }
RF_DEVICE short mc_bits(float x, rf_bf16*) { return (short)rf_f32_to_bf16(x).bits; }

template <typename T>
RF_DEVICE void mma_check(const float* RF_RESTRICT a, const float* RF_RESTRICT b, const float* RF_RESTRICT c, float* RF_RESTRICT d) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    mc_vs va, vb;
    mc_vf vc;
#pragma unroll
    for (int j = 0; j < MC_KPL; j++) {
        va[j] = mc_bits(a[t * MC_KPL + j], (T*)nullptr);
        vb[j] = mc_bits(b[t * MC_KPL + j], (T*)nullptr);
    }
#pragma unroll
    for (int j = 0; j < MC_CPT; j++) vc[j] = c[t * MC_CPT + j];
    const mc_vf vd = mc_mma(va, vb, vc, (T*)nullptr);
#pragma unroll
    for (int j = 0; j < MC_CPT; j++) d[t * MC_CPT + j] = vd[j];
}
#endif

// lanes: per lane, the cross-lane primitives of the prelude with lane-dependent arguments, so a
// wrong lane mapping (or a missing barrier between the two warps of an emulated wave64) shows:
// out[t * 4 + 0] = RF_SHFL_XOR(x, m), m = 1 + (t / RF_WAVE) % (RF_WAVE - 1) (the wave's own mask)
// out[t * 4 + 1] = RF_SHFL(x, (lane * 7 + 3) % RF_WAVE), out[t * 4 + 2] = rf_wave_sum(x),
// out[t * 4 + 3] = rf_wave_max(x).
RF_DEVICE void lanes_check(const float* RF_RESTRICT x, float* RF_RESTRICT out) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const int lane = threadIdx.x % RF_WAVE, w = threadIdx.x / RF_WAVE;
    const float v = x[t];
    out[t * 4 + 0] = RF_SHFL_XOR(v, 1 + w % (RF_WAVE - 1));
    out[t * 4 + 1] = RF_SHFL(v, (lane * 7 + 3) % RF_WAVE);
    out[t * 4 + 2] = rf_wave_sum(v);
    out[t * 4 + 3] = rf_wave_max(v);
}

#if defined(RF_EMULATE)
// dot4 (emulation only): out[i * 4 + 0..4) = sdot4(a, b, c, false), sdot4(a, b, c, true),
// udot4(a, b, c, true), sudot4(true, a, false, b, c, false) for element i.
RF_DEVICE void dot4_check(int n, const int* RF_RESTRICT a, const int* RF_RESTRICT b, const int* RF_RESTRICT c, int* RF_RESTRICT out) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[i * 4 + 0] = rf_emu_sdot4(a[i], b[i], c[i], false);
    out[i * 4 + 1] = rf_emu_sdot4(a[i], b[i], c[i], true);
    out[i * 4 + 2] = (int)rf_emu_udot4((unsigned int)a[i], (unsigned int)b[i], (unsigned int)c[i], true);
    out[i * 4 + 3] = rf_emu_sudot4(true, a[i], false, b[i], c[i], false);
}
#endif
