// ---- prelude: NVIDIA (NVRTC) ----
#include <cuda_fp16.h>
#include <cuda_bf16.h>
typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef short int16_t;
typedef unsigned short uint16_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef long long int64_t;
typedef unsigned long long uint64_t;
#define RF_DEVICE __device__ __forceinline__
#define RF_GLOBAL extern "C" __global__
#define RF_LAUNCH_BOUNDS(n) __launch_bounds__(n)
#define RF_RESTRICT __restrict__
// Warp shuffles take a lane mask on NVIDIA.
#define RF_SHFL_XOR(v, m) __shfl_xor_sync(0xffffffffu, (v), (m), RF_WAVE)
#define RF_SHFL(v, l) __shfl_sync(0xffffffffu, (v), (l), RF_WAVE)
#define RF_SYNC_WAVE() __syncwarp()
typedef __half rf_half;
// Four signed-byte products added to c (dp4a, sm_61+).
RF_DEVICE int rf_dp4a(int a, int b, int c) { return __dp4a(a, b, c); }
