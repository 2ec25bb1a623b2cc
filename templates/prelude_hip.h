// ---- prelude: AMD (hipRTC; hip_runtime and hip_fp16 are provided by hipRTC itself) ----
#define RF_DEVICE __device__ __forceinline__
#define RF_GLOBAL extern "C" __global__
// First statement of every kernel (programmatic dependent launch on NVIDIA; nothing on AMD).
#define RF_KERNEL_PROLOGUE() do { } while (0)
// RF_KERNEL_PROLOGUE_PREFETCH's L2 prefetches (cp.async.bulk, NVIDIA sm_90) are dropped here.
#define RF_KERNEL_PROLOGUE_PREFETCH(...) do { } while (0)
RF_DEVICE void rf_prefetch_l2(const void*, long long) {}
#define RF_LAUNCH_BOUNDS(n) __launch_bounds__(n)
// HIP's second __launch_bounds__ argument means waves per execution unit, not blocks per SM: unused.
#define RF_LAUNCH_BOUNDS_MIN(n, b) __launch_bounds__(n)
#define RF_RESTRICT __restrict__
// HIP shuffles take no mask; the width is the wave size.
#define RF_SHFL_XOR(v, m) __shfl_xor((v), (m), RF_WAVE)
#define RF_SHFL(v, l) __shfl((v), (l), RF_WAVE)
#define RF_SYNC_WAVE() __builtin_amdgcn_wave_barrier()
#define RF_ANY(p) __any((p))  // nonzero when p holds in any lane of the wave
typedef __half rf_half;
// Four signed-byte products added to c: v_dot4_i32_i8 on gfx906 / CDNA (dot1-insts) and RDNA2,
// v_dot4_i32_iu8 with both operands signed on RDNA3/4, four multiply-adds elsewhere.
RF_DEVICE int rf_dp4a(int a, int b, int c) {
#if RF_GFX >= 0x1100
    return __builtin_amdgcn_sudot4(true, a, true, b, c, false);
#elif RF_GFX == 0x906 || RF_GFX == 0x908 || RF_GFX == 0x90a || (RF_GFX >= 0x940 && RF_GFX <= 0x950) || \
    (RF_GFX >= 0x1030 && RF_GFX <= 0x1036)
    return __builtin_amdgcn_sdot4(a, b, c, false);
#else
#pragma unroll
    for (int i = 0; i < 4; ++i) c += (int)(signed char)(a >> (8 * i)) * (int)(signed char)(b >> (8 * i));
    return c;
#endif
}
// Vectors for the matrix-core builtins (clang ext_vector_type); f16 vector elements are _Float16.
// prelude_emu.h gives the same names to the emulation's vectors.
template <typename T, int N>
using rf_vec = T __attribute__((ext_vector_type(N)));
typedef _Float16 rf_f16_elem;
