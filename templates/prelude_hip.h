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
