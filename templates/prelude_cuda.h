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
// n threads, and at least b blocks resident per SM (ptxas then allows 64K / (n b) registers; with only
// n it may squeeze a kernel whose shared memory allows few blocks into a stack frame).
#define RF_LAUNCH_BOUNDS_MIN(n, b) __launch_bounds__(n, b)
#define RF_RESTRICT __restrict__
// First statement of every kernel (the *.inst files): on sm_90+, kernels may be launched as programmatic
// dependents of the previous kernel in the stream (ROCMFORGE_PDL, gpu/cuda): they let their own
// dependents launch at once, then wait here until the previous grid has completed and its writes are
// visible, so nothing a kernel reads can be stale. Without that launch attribute both are no-ops.
#if defined(RF_SM) && RF_SM >= 90
#define RF_KERNEL_PROLOGUE() do { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); asm volatile("griddepcontrol.wait;" ::: "memory"); } while (0)
// [p, p + bytes) into L2 (a hint: no data comes back, and none can be stale: L2 is where the previous
// kernel's writes land): one bulk prefetch by thread 0, over the range widened to 16-byte bounds (which
// stays in mapped memory: allocations, the pool's and the driver's, start 256-byte aligned and are
// mapped in whole pages).
RF_DEVICE void rf_prefetch_l2(const void* p, long long bytes) {
    if (threadIdx.x != 0 || bytes <= 0) return;
    const unsigned long long a = (unsigned long long)p & ~15ull;
    const unsigned n = (unsigned)(((unsigned long long)p + bytes - a + 15) & ~15ull);
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(a), "r"(n) : "memory");
}
// RF_KERNEL_PROLOGUE with statements between letting the dependents launch and waiting: only
// prefetches of data no kernel of the step writes (a GEMV's weights). PDL is off by default (it measured
// 5-8 % slower); the prefetch's gain in gemv_wave (docs/PERF.md, ninth session) was measured without it,
// so these statements run at the kernel's start and the two griddepcontrol instructions are no-ops.
#define RF_KERNEL_PROLOGUE_PREFETCH(...) do { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); __VA_ARGS__; asm volatile("griddepcontrol.wait;" ::: "memory"); } while (0)
#else
#define RF_KERNEL_PROLOGUE() do { } while (0)
RF_DEVICE void rf_prefetch_l2(const void*, long long) {}
#define RF_KERNEL_PROLOGUE_PREFETCH(...) do { } while (0)
#endif
// Warp shuffles take a lane mask on NVIDIA.
#define RF_SHFL_XOR(v, m) __shfl_xor_sync(0xffffffffu, (v), (m), RF_WAVE)
#define RF_SHFL(v, l) __shfl_sync(0xffffffffu, (v), (l), RF_WAVE)
#define RF_SYNC_WAVE() __syncwarp()
#define RF_ANY(p) __any_sync(0xffffffffu, (p))  // nonzero when p holds in any lane of the wave
typedef __half rf_half;
// Four signed-byte products added to c (dp4a, sm_61+).
RF_DEVICE int rf_dp4a(int a, int b, int c) { return __dp4a(a, b, c); }
#if defined(RF_SM) && RF_SM >= 80
// Asynchronous global -> shared copies (sm_80+): 16 bytes a call, of which the first `src_bytes` (0 or
// 16) are read from global memory and the rest zero-filled; completion is tracked per thread in commit
// groups (rf_cp_async_commit closes one; rf_cp_async_wait<N> returns when at most the N newest are still
// in flight). Other threads see the data only after a barrier that follows the wait.
RF_DEVICE void rf_cp_async16(void* smem, const void* gmem, int src_bytes) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
}
// the same on a shared-space byte address (lets ptxas fold a constant offset into the instruction)
RF_DEVICE void rf_cp_async16_s(unsigned s, const void* gmem, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
}
RF_DEVICE void rf_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> RF_DEVICE void rf_cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }
#endif
