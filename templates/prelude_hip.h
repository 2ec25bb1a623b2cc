// ---- prelude: AMD (hipRTC; hip_runtime and hip_fp16 are provided by hipRTC itself) ----
#define RF_DEVICE __device__ __forceinline__
#define RF_GLOBAL extern "C" __global__
#define RF_LAUNCH_BOUNDS(n) __launch_bounds__(n)
#define RF_RESTRICT __restrict__
// HIP shuffles take no mask; the width is the wave size.
#define RF_SHFL_XOR(v, m) __shfl_xor((v), (m), RF_WAVE)
#define RF_SHFL(v, l) __shfl((v), (l), RF_WAVE)
#define RF_SYNC_WAVE() __builtin_amdgcn_wave_barrier()
typedef __half rf_half;
// Vectors for the matrix-core builtins (clang ext_vector_type); f16 vector elements are _Float16.
// prelude_emu.h gives the same names to the emulation's vectors.
template <typename T, int N>
using rf_vec = T __attribute__((ext_vector_type(N)));
typedef _Float16 rf_f16_elem;
